# The image repository: one ECR repository for the one Ordinaut image. Tags are immutable (every
# deploy is a new tag, so a function version always runs the image it was published with), every
# push is scanned, and a lifecycle policy bounds what is kept: untagged layers go after a day, and
# only the newest tagged images stay, enough to roll the live aliases back.
#
# Apply this module first (`terraform apply -target=module.registry`), push the image, then apply
# the rest: the functions cannot be created before their image exists.

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

data "aws_partition" "current" {}

resource "aws_ecr_repository" "this" {
  name                 = var.repository_name
  image_tag_mutability = "IMMUTABLE"
  force_delete         = false

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
  }
}

resource "aws_ecr_lifecycle_policy" "this" {
  repository = aws_ecr_repository.this.name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Untagged images (interrupted pushes, replaced manifests) go after a day"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = 1
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the newest ${var.keep_images} tagged images (deploys and rollbacks)"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.keep_images
        }
        action = { type = "expire" }
      },
    ]
  })
}

# Lambda pulls the image with the service principal, for this account's Ordinaut functions only.
# Managing the statement here keeps Lambda from adding (and Terraform from removing) its own.
data "aws_iam_policy_document" "pull" {
  statement {
    sid       = "LambdaPullsOrdinautImage"
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [aws_ecr_repository.this.arn]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    condition {
      test     = "StringLike"
      variable = "aws:sourceArn"
      values   = ["arn:${data.aws_partition.current.partition}:lambda:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:function:${var.function_name_prefix}-*"]
    }
  }
}

resource "aws_ecr_repository_policy" "this" {
  repository = aws_ecr_repository.this.name
  policy     = data.aws_iam_policy_document.pull.json
}
