terraform {
  required_version = ">= 1.11.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80, < 6.0"
    }
  }

  # Partial configuration: bucket, key and region come from `terraform init -backend-config=backend.hcl`
  # (see backend.hcl.example). State is encrypted and locked with S3's native lock file.
  backend "s3" {
    use_lockfile = true
    encrypt      = true
  }
}
