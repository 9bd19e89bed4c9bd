variable "name" {
  type        = string
  description = "Name prefix for every network resource, e.g. ordinaut-prod."
}

variable "cidr_block" {
  type        = string
  description = "IPv4 CIDR of the VPC (a /16 leaves room for /20 private and /24 public subnets)."
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.cidr_block, 0))
    error_message = "cidr_block must be a valid IPv4 CIDR."
  }
}

variable "az_count" {
  type        = number
  description = "How many availability zones get a private subnet (2 or more: RDS and RDS Proxy need two)."
  default     = 2

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 4
    error_message = "az_count must be between 2 and 4."
  }
}

variable "enable_nat_gateway" {
  type        = bool
  description = "Give the private subnets internet egress through NAT (needed by pipeline HTTP tools that call the internet; AWS APIs use the VPC endpoints either way)."
  default     = true
}

variable "single_nat_gateway" {
  type        = bool
  description = "One NAT gateway shared by all zones (cheaper) instead of one per zone (survives a zone outage)."
  default     = true
}

variable "interface_endpoints" {
  type        = list(string)
  description = "AWS services reached through interface VPC endpoints from the private subnets (S3 always gets a gateway endpoint)."
  default     = ["secretsmanager", "sqs", "logs", "ecr.api", "ecr.dkr"]
}
