variable "name" {
  type        = string
  description = "Name prefix, e.g. ordinaut-prod; the function is <name>-scheduler."
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
  description = "Secrets the tick reads at run time: ARNs only."
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

variable "work_queue_arn" {
  type        = string
  description = "ARN of the worker queue the tick wakes workers through."
}

variable "work_queue_url" {
  type        = string
  description = "URL of the worker queue (ORDINAUT_WORK_QUEUE_URL)."
}

variable "worker_fanout_max" {
  type        = number
  description = "Most wake-up messages one tick sends to the worker queue (ORDINAUT_WORKER_FANOUT_MAX); the worker concurrency cap is the useful maximum."
  default     = 10
}

variable "database_connection" {
  type        = map(string)
  description = "Non-secret PostgreSQL connection settings merged into the environment (ORDINAUT_DATABASE_HOST, _PORT, _NAME, _SSLMODE), from the data module."
}

variable "reserved_concurrency" {
  type        = number
  description = "Reserved concurrency of the tick function: 1 keeps ticks from overlapping; null reserves nothing (for accounts whose concurrency limit admits no reservation)."
  default     = null

  validation {
    condition     = var.reserved_concurrency == null || var.reserved_concurrency == 1
    error_message = "The tick reserves exactly one instance, or none."
  }
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
  description = "Retention of the function's log group, in days."
}

variable "memory_size" {
  type        = number
  description = "Scheduler function memory in MiB."
  default     = 512
}

variable "timeout" {
  type        = number
  description = "Scheduler function time limit in seconds; below the one-minute rate so ticks do not pile up."
  default     = 55

  validation {
    condition     = var.timeout < 60
    error_message = "A tick must end before the next one is due."
  }
}

variable "enabled" {
  type        = bool
  description = "Whether the one-minute schedule is enabled (disable to pause materialization)."
  default     = true
}
