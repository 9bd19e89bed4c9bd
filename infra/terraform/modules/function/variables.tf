variable "name" {
  type        = string
  description = "Function name; also names its role and its log group /aws/lambda/<name>."
}

variable "description" {
  type        = string
  description = "What this function does, shown in the Lambda console."
}

variable "image_uri" {
  type        = string
  description = "ECR image URI (repository:tag or repository@digest) built from the repository's Dockerfile."
}

variable "command" {
  type        = list(string)
  description = "Image CMD override: the Lambda handler string, e.g. [\"functions.api.handler.handler\"]; the entrypoint hands functions.* to awslambdaric."
}

variable "architecture" {
  type        = string
  description = "Instruction set the image was built for: x86_64 or arm64."
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "memory_size" {
  type        = number
  description = "Memory in MiB (CPU scales with it)."
  default     = 512
}

variable "timeout" {
  type        = number
  description = "Invocation time limit in seconds."
  default     = 30
}

variable "reserved_concurrency" {
  type        = number
  description = "Reserved concurrent executions (the cap on simultaneous instances, which bounds database connections), or null for none: a new account's concurrency limit (often 10) admits no reservation at all."
  default     = null

  validation {
    condition     = var.reserved_concurrency == null || try(var.reserved_concurrency >= 1, false)
    error_message = "reserved_concurrency must be null (no reservation) or at least 1 (0 would disable the function)."
  }
}

variable "environment" {
  type        = map(string)
  description = "Environment variables. Only names and ARNs: secret values are fetched from Secrets Manager at run time."
  default     = {}
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets the function's network interfaces live in."
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups of the function's network interfaces."
}

variable "kms_key_arn" {
  type        = string
  description = "Customer managed KMS key for the environment variables and the log group."
}

variable "log_retention_days" {
  type        = number
  description = "CloudWatch Logs retention of the function's log group, in days."
}

variable "policy_json" {
  type        = string
  description = "The function's own least-privilege statements (an aws_iam_policy_document JSON), merged with logging, VPC and tracing access."
  default     = ""
}

variable "dead_letter_queue_arn" {
  type        = string
  description = "SQS queue for asynchronous invocations that failed, or null for functions that are only invoked synchronously or through an event source mapping."
  default     = null
}

variable "tags" {
  type        = map(string)
  description = "Extra tags on the function (provider default_tags apply as well)."
  default     = {}
}
