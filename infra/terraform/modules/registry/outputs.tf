output "repository_name" {
  description = "Name of the image repository."
  value       = aws_ecr_repository.this.name
}

output "repository_url" {
  description = "Repository URL to tag and push the image to (<account>.dkr.ecr.<region>.amazonaws.com/<name>)."
  value       = aws_ecr_repository.this.repository_url
}

output "repository_arn" {
  description = "ARN of the image repository."
  value       = aws_ecr_repository.this.arn
}

output "image_tag_mutability" {
  description = "IMMUTABLE: a tag names one image forever."
  value       = aws_ecr_repository.this.image_tag_mutability
}

output "scan_on_push" {
  description = "Whether every pushed image is scanned."
  value       = one(aws_ecr_repository.this.image_scanning_configuration[*].scan_on_push)
}

output "lifecycle_policy" {
  description = "The repository's lifecycle policy (JSON)."
  value       = aws_ecr_lifecycle_policy.this.policy
}
