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
