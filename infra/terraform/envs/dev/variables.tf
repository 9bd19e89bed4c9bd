variable "region" {
  type        = string
  description = "AWS region to deploy into."
  default     = "eu-west-1"
}

variable "image_uri" {
  type        = string
  description = "ECR image URI of the Ordinaut image built from the repository's Dockerfile, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/ordinaut:<git sha>."

  validation {
    condition     = can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/[^:@]+(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$", var.image_uri))
    error_message = "image_uri must be an ECR image in this account, with a tag or digest (Lambda runs images from ECR only)."
  }
}

variable "architecture" {
  type        = string
  description = "Instruction set the image was built for: x86_64 or arm64."
  default     = "x86_64"
}

variable "log_level" {
  type        = string
  description = "ORDINAUT_LOG_LEVEL of every function."
  default     = "DEBUG"
}

variable "alarm_emails" {
  type        = list(string)
  description = "Addresses that receive alarm notifications."
  default     = []
}

variable "tags" {
  type        = map(string)
  description = "Extra tags on every resource (merged into the provider's default_tags)."
  default     = {}
}
