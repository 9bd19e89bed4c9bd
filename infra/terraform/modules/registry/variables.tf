variable "repository_name" {
  type        = string
  description = "Name of the ECR repository of the Ordinaut image, e.g. ordinaut-prod."
}

variable "function_name_prefix" {
  type        = string
  description = "Name prefix of the functions that may pull the image (<prefix>-api, <prefix>-worker, ...)."
}

variable "keep_images" {
  type        = number
  description = "Tagged images kept (newest first); older ones expire. Must cover every version a live alias may be rolled back to."
  default     = 30

  validation {
    condition     = var.keep_images >= 5
    error_message = "keep_images must be at least 5 so recent versions can be rolled back to."
  }
}
