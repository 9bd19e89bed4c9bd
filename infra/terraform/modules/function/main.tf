# One Lambda function from the shared container image: its own log group, its own role with a
# least-privilege inline policy, VPC attachment and active tracing. Every Ordinaut function is an
# instance of this module, so each has exactly one role and nothing is shared between them.
#
# Every deploy publishes a numbered version and moves the `live` alias to it; triggers (API
# Gateway, SQS event source mappings, the tick schedule, the migration invocation) call the alias,
# never $LATEST, so a deploy switches them at one point and a rollback is an alias move.

resource "aws_cloudwatch_log_group" "this" {
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "LambdaAssumesRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name                 = "${var.name}-lambda"
  description          = "Execution role of the ${var.name} function only."
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "base" {
  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  statement {
    sid       = "DecryptEnvironmentAndSecrets"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }

  # Lambda creates and removes the function's network interfaces with the execution role; their
  # ARNs do not exist before that, and the Describe calls cannot be scoped to a resource.
  #checkov:skip=CKV_AWS_111:EC2 network interface actions Lambda needs for VPC access have no resource-level scope before the interface exists
  #checkov:skip=CKV_AWS_356:ec2:Describe* and xray:Put* do not support resource-level permissions
  statement {
    sid = "VpcNetworkInterfaces"
    actions = [
      "ec2:CreateNetworkInterface",
      "ec2:DescribeNetworkInterfaces",
      "ec2:DescribeSubnets",
      "ec2:DeleteNetworkInterface",
      "ec2:AssignPrivateIpAddresses",
      "ec2:UnassignPrivateIpAddresses",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = var.dead_letter_queue_arn == null ? [] : [var.dead_letter_queue_arn]
    content {
      sid       = "SendFailedInvocations"
      actions   = ["sqs:SendMessage"]
      resources = [statement.value]
    }
  }
}

data "aws_iam_policy_document" "this" {
  source_policy_documents = compact([data.aws_iam_policy_document.base.json, var.policy_json])
}

resource "aws_iam_role_policy" "this" {
  name   = "least-privilege"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_272:code signing applies to .zip packages only; container images are pinned by tag in an immutable, scanned ECR repository
  function_name                  = var.name
  description                    = var.description
  role                           = aws_iam_role.this.arn
  package_type                   = "Image"
  image_uri                      = var.image_uri
  architectures                  = [var.architecture]
  memory_size                    = var.memory_size
  timeout                        = var.timeout
  reserved_concurrent_executions = var.reserved_concurrency == null ? -1 : var.reserved_concurrency
  kms_key_arn                    = var.kms_key_arn
  publish                        = true
  tags                           = var.tags

  image_config {
    command = var.command
  }

  environment {
    variables = var.environment
  }

  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = var.security_group_ids
  }

  tracing_config {
    mode = "Active"
  }

  dynamic "dead_letter_config" {
    for_each = var.dead_letter_queue_arn == null ? [] : [var.dead_letter_queue_arn]
    content {
      target_arn = dead_letter_config.value
    }
  }

  # The role must be able to write logs and create network interfaces before the first invocation,
  # and the log group must exist so Lambda does not create one without retention or encryption.
  depends_on = [aws_iam_role_policy.this, aws_cloudwatch_log_group.this]
}

resource "aws_lambda_alias" "live" {
  name             = "live"
  description      = "The version this deploy published; every trigger invokes this alias"
  function_name    = aws_lambda_function.this.function_name
  function_version = aws_lambda_function.this.version
}
