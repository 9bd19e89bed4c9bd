variable "name" {
  type        = string
  description = "Name prefix, e.g. ordinaut-prod; functions are <name>-worker and <name>-events."
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
  description = "Private subnets of the functions."
}

variable "security_group_id" {
  type        = string
  description = "Security group of the functions."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key for logs and the function environments."
}

variable "runtime_secret_arns" {
  type        = list(string)
  description = "Secrets the functions read at run time: ARNs only."
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

variable "database_connection" {
  type        = map(string)
  description = "Non-secret PostgreSQL connection settings merged into the environment (ORDINAUT_DATABASE_HOST, _PORT, _NAME, _SSLMODE), from the data module."
}

variable "migration_marker" {
  type        = string
  description = "Output of the data module's migration; referencing it updates the functions only after the migration succeeded."
}

variable "log_level" {
  type        = string
  description = "ORDINAUT_LOG_LEVEL."
  default     = "INFO"
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the functions' log groups, in days."
}

variable "worker_memory_size" {
  type        = number
  description = "Worker function memory in MiB."
  default     = 1024
}

variable "worker_timeout" {
  type        = number
  description = "Worker time budget in seconds; drain() stops leasing ORDINAUT_DRAIN_MARGIN_S before it ends. Step timeouts must fit inside it."
  default     = 300

  validation {
    condition     = var.worker_timeout >= 60 && var.worker_timeout <= 900
    error_message = "worker_timeout must be between 60 and 900 seconds."
  }
}

variable "worker_drain_margin_seconds" {
  type        = number
  description = "Seconds before the time limit at which a worker stops leasing new work (ORDINAUT_DRAIN_MARGIN_S)."
  default     = 30

  validation {
    condition     = var.worker_drain_margin_seconds >= 5
    error_message = "worker_drain_margin_seconds must leave at least 5 seconds to hand back unstarted work."
  }
}

variable "worker_safety_margin_seconds" {
  type        = number
  description = "Seconds kept free after the longest run (completing it, flushing metrics): ORDINAUT_MAX_RUN_DURATION_S = worker_timeout - worker_drain_margin_seconds - this."
  default     = 15

  validation {
    condition     = var.worker_safety_margin_seconds >= 5
    error_message = "worker_safety_margin_seconds must be at least 5 seconds."
  }
}

variable "worker_max_concurrency" {
  type        = number
  description = "Most worker instances at once (event source maximum_concurrency): with the pool size it bounds database connections."
  default     = 10

  validation {
    condition     = var.worker_max_concurrency >= 2 && var.worker_max_concurrency <= 1000
    error_message = "SQS event source maximum_concurrency must be between 2 and 1000."
  }
}

variable "worker_reserved_concurrency" {
  type        = number
  description = "Reserved concurrency of the worker function, or null for none (a new account's limit admits no reservation). When set, at least worker_max_concurrency, so Lambda never throttles the event source."
  default     = null

  validation {
    condition     = var.worker_reserved_concurrency == null || try(var.worker_reserved_concurrency >= var.worker_max_concurrency, false)
    error_message = "worker_reserved_concurrency must be null or at least worker_max_concurrency."
  }
}

variable "worker_concurrency" {
  type        = number
  description = "Runs one worker instance executes at once (ORDINAUT_WORKER_CONCURRENCY)."
  default     = 8
}

variable "events_timeout" {
  type        = number
  description = "Events function time limit in seconds."
  default     = 60
}

variable "events_max_concurrency" {
  type        = number
  description = "Most events-ingress instances at once (event source maximum_concurrency)."
  default     = 5

  validation {
    condition     = var.events_max_concurrency >= 2 && var.events_max_concurrency <= 1000
    error_message = "SQS event source maximum_concurrency must be between 2 and 1000."
  }
}

variable "events_reserved_concurrency" {
  type        = number
  description = "Reserved concurrency of the events function, or null for none. When set, at least events_max_concurrency: a smaller reservation would throttle SQS batches back to the queue and, after max_receive_count, into the DLQ."
  default     = null

  validation {
    condition     = var.events_reserved_concurrency == null || try(var.events_reserved_concurrency >= var.events_max_concurrency, false)
    error_message = "events_reserved_concurrency must be null or at least events_max_concurrency."
  }
}

variable "max_receive_count" {
  type        = number
  description = "Deliveries of one message before SQS moves it to the queue's DLQ."
  default     = 5
}

variable "event_pattern" {
  type        = any
  description = "EventBridge pattern of the events (on this deployment's bus) that become Ordinaut events; the default matches every event on the bus."
  default     = { source = [{ prefix = "" }] }
}
