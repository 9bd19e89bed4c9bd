variable "project_id" {
  type        = string
  description = "Google Cloud project to deploy into."
}

variable "region" {
  type        = string
  description = "Region of Cloud Run, Cloud SQL, Memorystore and Cloud Scheduler."
  default     = "europe-west1"
}

variable "environment" {
  type        = string
  description = "Environment name, part of every resource name (e.g. dev, prod)."
  default     = "prod"
}

variable "image" {
  type        = string
  description = "Artifact Registry image built from the repository's Dockerfile, e.g. europe-west1-docker.pkg.dev/PROJECT/ordinaut/ordinaut:<git sha>."
}

variable "labels" {
  type        = map(string)
  description = "Extra labels on every resource (merged into the provider's default_labels)."
  default     = {}
}

variable "log_level" {
  type        = string
  description = "ORDINAUT_LOG_LEVEL of every container."
  default     = "INFO"
}

variable "network_cidr" {
  type        = string
  description = "Primary range of the subnet Cloud Run egresses through (Direct VPC egress)."
  default     = "10.50.0.0/24"
}

variable "public_api" {
  type        = bool
  description = "Let anyone reach the API service (Ordinaut authenticates every request but health with bearer tokens); false keeps it behind Cloud Run IAM."
  default     = true
}

variable "api_min_instances" {
  type        = number
  description = "API instances kept warm."
  default     = 1
}

variable "api_max_instances" {
  type        = number
  description = "Most API instances (each holds a database pool of ORDINAUT_DB_POOL_MAX connections)."
  default     = 10
}

variable "worker_instances" {
  type        = number
  description = "Long-running worker instances (always-on CPU; each runs ORDINAUT_WORKER_CONCURRENCY pipelines)."
  default     = 2
}

variable "db_tier" {
  type        = string
  description = "Cloud SQL machine tier."
  default     = "db-custom-2-7680"
}

variable "db_availability_type" {
  type        = string
  description = "REGIONAL (high availability standby) or ZONAL."
  default     = "REGIONAL"
}

variable "db_backup_retention_count" {
  type        = number
  description = "Daily backups kept (point-in-time recovery is on)."
  default     = 14
}

variable "deletion_protection" {
  type        = bool
  description = "Protect Cloud SQL, the Cloud Run services and jobs from deletion (set false, apply, then destroy)."
  default     = true
}

variable "redis_tier" {
  type        = string
  description = "Memorystore tier: STANDARD_HA (replica, failover) or BASIC."
  default     = "STANDARD_HA"
}

variable "redis_memory_gb" {
  type        = number
  description = "Memorystore capacity in GiB."
  default     = 1
}
