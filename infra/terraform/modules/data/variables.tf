variable "name" {
  type        = string
  description = "Name prefix for every data resource, e.g. ordinaut-prod."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets for the database, RDS Proxy, Redis and the migrate function."
}

variable "database_security_group_id" {
  type        = string
  description = "Security group of the RDS instance."
}

variable "database_proxy_security_group_id" {
  type        = string
  description = "Security group of RDS Proxy."
}

variable "redis_security_group_id" {
  type        = string
  description = "Security group of the ElastiCache replication group."
}

variable "functions_security_group_id" {
  type        = string
  description = "Security group of the Lambda functions (used by the migrate function)."
}

variable "image_uri" {
  type        = string
  description = "ECR image URI of the Ordinaut image; a new value re-runs the migration before the functions are updated."
}

variable "architecture" {
  type        = string
  description = "Instruction set the image was built for: x86_64 or arm64."
  default     = "x86_64"
}

variable "log_level" {
  type        = string
  description = "ORDINAUT_LOG_LEVEL of the migrate function."
  default     = "INFO"
}

variable "log_retention_days" {
  type        = number
  description = "CloudWatch Logs retention for the data tier's logs, in days."
}

variable "postgres_engine_version" {
  type        = string
  description = "RDS PostgreSQL engine version (major 16; minor versions upgrade automatically)."
  default     = "16"

  validation {
    condition     = can(regex("^16(\\.[0-9]+)?$", var.postgres_engine_version))
    error_message = "Ordinaut targets PostgreSQL 16."
  }
}

variable "db_instance_class" {
  type        = string
  description = "RDS instance class."
  default     = "db.t4g.micro"
}

variable "db_allocated_storage" {
  type        = number
  description = "Initial gp3 storage in GiB."
  default     = 20
}

variable "db_max_allocated_storage" {
  type        = number
  description = "Storage autoscaling ceiling in GiB."
  default     = 100
}

variable "db_multi_az" {
  type        = bool
  description = "Run a synchronous standby in a second zone."
  default     = false
}

variable "db_backup_retention_days" {
  type        = number
  description = "Automated backup (point-in-time recovery) retention in days."
  default     = 7

  validation {
    condition     = var.db_backup_retention_days >= 1 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be between 1 and 35 so backups stay on."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the database from deletion and take a final snapshot when it is destroyed."
  default     = true
}

variable "proxy_max_connections_percent" {
  type        = number
  description = "Share of the database's max_connections RDS Proxy may open."
  default     = 90
}

variable "redis_node_type" {
  type        = string
  description = "ElastiCache node type."
  default     = "cache.t4g.micro"
}

variable "redis_engine_version" {
  type        = string
  description = "ElastiCache Redis engine version."
  default     = "7.1"
}

variable "redis_replicas" {
  type        = number
  description = "Read replicas besides the primary (1 or more enables automatic failover and Multi-AZ)."
  default     = 0
}

variable "redis_snapshot_retention_days" {
  type        = number
  description = "Days of daily Redis snapshots kept."
  default     = 1
}

variable "secret_recovery_window_days" {
  type        = number
  description = "Days a deleted secret can be restored (0 deletes at once, for throw-away environments)."
  default     = 30
}

variable "migrate_reserved_concurrency" {
  type        = number
  description = "Reserved concurrency of the migrate function, or null for none (migrations serialize on an advisory lock anyway)."
  default     = null
}

variable "migrate_timeout" {
  type        = number
  description = "Time limit in seconds of the migrate function."
  default     = 300
}
