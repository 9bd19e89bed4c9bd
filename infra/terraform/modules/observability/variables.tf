variable "name" {
  type        = string
  description = "Name prefix of alarms, the alarm topic and the flow log, e.g. ordinaut-prod."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key for the alarm topic and the flow log group."
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the VPC flow log group, in days."
}

variable "vpc_id" {
  type        = string
  description = "VPC whose traffic is recorded in flow logs."
}

variable "functions" {
  type        = map(string)
  description = "Every Lambda function to alarm on (Errors and Throttles): role (api, scheduler, worker, events, migrate) => function name."
}

variable "dead_letter_queues" {
  type        = map(string)
  description = "Every dead-letter queue to alarm on when it holds messages: role => queue name."
}

variable "api_id" {
  type        = string
  description = "ID of the HTTP API whose 5xx responses raise an alarm."
}

variable "api_5xx_threshold" {
  type        = number
  description = "5xx responses within five minutes above which the API alarm fires (a 5xx is a bug; 503 while the database is away counts too)."
  default     = 5
}

variable "lag_metric_dimensions" {
  type        = map(string)
  description = "Dimensions of the Ordinaut/DueWorkLagSeconds metric the scheduler emits (Powertools: service = POWERTOOLS_SERVICE_NAME of the scheduler)."
}

variable "due_work_lag_threshold_seconds" {
  type        = number
  description = "Seconds the oldest due, unleased work may wait before the lag alarm fires."
  default     = 120
}

variable "alarm_emails" {
  type        = list(string)
  description = "Addresses subscribed to the alarm topic (each confirms by e-mail)."
  default     = []
}

variable "worker_metric_dimensions" {
  type        = map(string)
  description = "Dimensions of the worker's EMF run metrics (Powertools: service = POWERTOOLS_SERVICE_NAME of the worker)."
}

variable "run_metric_names" {
  type = object({
    dead_lettered = string
    failed        = string
    start_lag     = string
  })
  description = "Names of the worker's EMF run metrics in the Ordinaut namespace: dead-lettered runs (count), failed runs (count), start lag (milliseconds)."
  default = {
    dead_lettered = "RunsDeadLettered"
    failed        = "RunsFailed"
    start_lag     = "StartLagMs"
  }
}

variable "runs_failed_threshold" {
  type        = number
  description = "Failed runs within five minutes above which the alarm fires (a task's own failures are normal; a burst is not)."
  default     = 10
}

variable "start_lag_threshold_ms" {
  type        = number
  description = "p90 start lag (due instant to start) in milliseconds above which the alarm fires."
  default     = 5000
}

variable "queues" {
  type        = map(string)
  description = "Every queue that feeds a function, to alarm on its oldest message's age: role => queue name."
}

variable "queue_age_threshold_seconds" {
  type        = number
  description = "Age in seconds of a fed queue's oldest message above which the alarm fires (wake-ups may be delayed up to 900 s on purpose)."
  default     = 1200
}

variable "dlq_age_threshold_seconds" {
  type        = number
  description = "Age in seconds of a dead letter above which the alarm fires (DLQs keep messages 14 days)."
  default     = 259200
}

variable "redis_node_ids" {
  type        = list(string)
  description = "ElastiCache node (cache cluster) ids to alarm on memory."
}

variable "redis_memory_threshold_percent" {
  type        = number
  description = "DatabaseMemoryUsagePercentage above which the Redis alarm fires."
  default     = 75
}

variable "database_instance_id" {
  type        = string
  description = "RDS instance identifier to alarm on CPU, storage and connections."
}

variable "database_cpu_threshold_percent" {
  type        = number
  description = "Average CPUUtilization over 15 minutes above which the database alarm fires."
  default     = 80
}

variable "database_free_storage_threshold_bytes" {
  type        = number
  description = "FreeStorageSpace below which the database alarm fires (storage autoscaling also has a ceiling)."
  default     = 2147483648
}

variable "database_connections_threshold" {
  type        = number
  description = "DatabaseConnections above which the alarm fires (set below the instance class's max_connections)."
  default     = 100
}
