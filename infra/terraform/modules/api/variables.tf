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

variable "integration_timeout_seconds" {
  type        = number
  description = "Seconds API Gateway waits for the function before answering 504 (HTTP APIs allow at most 30; 29 matches REST APIs and CloudFront's defaults)."
  default     = 29

  validation {
    condition     = var.integration_timeout_seconds >= 1 && var.integration_timeout_seconds <= 30
    error_message = "API Gateway HTTP APIs wait between 1 and 30 seconds for an integration."
  }
}

variable "timeout" {
  type        = number
  description = "API function time limit in seconds: no longer than the integration timeout (API Gateway would have given up)."
  default     = 29

  validation {
    condition     = var.timeout <= var.integration_timeout_seconds
    error_message = "The API function's time limit must not exceed integration_timeout_seconds."
  }
}

variable "sse_max_seconds" {
  type        = number
  description = "Longest GET /events/stream response (ORDINAUT_SSE_MAX_SECONDS); below the integration timeout and the function's time limit, so the stream ends cleanly and the client resumes with Last-Event-ID."
  default     = 25

  validation {
    condition     = var.sse_max_seconds >= 1 && var.sse_max_seconds < var.integration_timeout_seconds && var.sse_max_seconds < var.timeout
    error_message = "sse_max_seconds must be below integration_timeout_seconds and the function's timeout."
  }
}

variable "reserved_concurrency" {
  type        = number
  description = "Reserved (and most) simultaneous API instances, each with a pool of at most db_pool_max connections; null reserves nothing (a new account's limit admits no reservation)."
  default     = null
}

variable "work_queue_arn" {
  type        = string
  description = "ARN of the worker queue the API wakes workers through."
}

variable "work_queue_url" {
  type        = string
  description = "URL of the worker queue (ORDINAUT_WORK_QUEUE_URL)."
}

variable "worker_fanout_max" {
  type        = number
  description = "Most wake-up messages one request sends (ORDINAUT_WORKER_FANOUT_MAX)."
  default     = 10
}

variable "max_run_duration_seconds" {
  type        = number
  description = "Longest run a worker can finish (ORDINAUT_MAX_RUN_DURATION_S, from the workers module): tasks whose runs could take longer are refused when written."
}

variable "database_connection" {
  type        = map(string)
  description = "Non-secret PostgreSQL connection settings merged into the environment (ORDINAUT_DATABASE_HOST, _PORT, _NAME, _SSLMODE), from the data module."
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
