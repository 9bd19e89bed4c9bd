variable "name" {
  type        = string
  description = "Name prefix, e.g. ordinaut-prod; the function is <name>-api."
}

variable "image_uri" {
  type        = string
  description = "ECR image URI of the Ordinaut image."
}

variable "architecture" {
  type        = string
  description = "Instruction set the image was built for: x86_64 or arm64."
  default     = "x86_64"
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets of the function."
}

variable "security_group_id" {
  type        = string
  description = "Security group of the functions."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key for logs and the function environment."
}

variable "runtime_secret_arns" {
  type        = list(string)
  description = "Secrets the API reads at run time (database, Redis, secrets key): ARNs only."
}

variable "database_secret_arn" {
  type        = string
  description = "ARN of the PostgreSQL credential."
}

variable "redis_secret_arn" {
  type        = string
  description = "ARN of the Redis credential."
}

variable "secrets_key_arn" {
  type        = string
  description = "ARN of the secret holding the tool-secrets encryption key."
}

variable "migration_marker" {
  type        = string
  description = "Output of the data module's migration; referencing it updates the function only after the migration succeeded."
}

variable "log_level" {
  type        = string
  description = "ORDINAUT_LOG_LEVEL."
  default     = "INFO"
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the function and access log groups, in days."
}

variable "memory_size" {
  type        = number
  description = "API function memory in MiB."
  default     = 1024
}

variable "timeout" {
  type        = number
  description = "API function time limit in seconds (API Gateway gives up after 30)."
  default     = 29

  validation {
    condition     = var.timeout <= 30
    error_message = "API Gateway HTTP APIs wait at most 30 seconds for an integration."
  }
}

variable "reserved_concurrency" {
  type        = number
  description = "Maximum simultaneous API instances; each holds a pool of at most db_pool_max connections."
  default     = 50
}

variable "db_pool_max" {
  type        = number
  description = "Connections per warm API container (ORDINAUT_DB_POOL_MAX)."
  default     = 2
}

variable "throttling_rate_limit" {
  type        = number
  description = "Steady-state requests per second the $default stage admits."
  default     = 200
}

variable "throttling_burst_limit" {
  type        = number
  description = "Burst of requests the $default stage admits."
  default     = 400
}
