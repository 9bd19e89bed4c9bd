# The tick: EventBridge Scheduler invokes the scheduler function's live alias every minute, on time
# (flexible window off), without retries (the next tick is a minute away and a tick is
# idempotent), with a DLQ for invocations that could not be delivered. Lambda's own asynchronous
# retries are switched off as well. The time limit (under a minute) keeps ticks from piling up;
# reserved concurrency 1 (prod) also keeps a slow tick from overlapping the next one; dev reserves
# nothing, because a new account's concurrency limit admits no reservation.

data "aws_caller_identity" "current" {}

resource "aws_sqs_queue" "dlq" {
  name                      = "${var.name}-scheduler-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

data "aws_iam_policy_document" "function" {
  statement {
    sid       = "ReadRuntimeSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = var.runtime_secret_arns
  }

  statement {
    sid       = "WakeWorkers"
    actions   = ["sqs:SendMessage"]
    resources = [var.work_queue_arn]
  }
}

module "function" {
  source = "../function"

  name                  = "${var.name}-scheduler"
  description           = "Ordinaut tick: materializes due work, wakes workers (one tick per invocation)"
  image_uri             = var.image_uri
  command               = ["functions.scheduler.handler.handler"]
  architecture          = var.architecture
  memory_size           = var.memory_size
  timeout               = var.timeout
  reserved_concurrency  = var.reserved_concurrency
  subnet_ids            = var.subnet_ids
  security_group_ids    = [var.security_group_id]
  kms_key_arn           = var.kms_key_arn
  log_retention_days    = var.log_retention_days
  policy_json           = data.aws_iam_policy_document.function.json
  dead_letter_queue_arn = aws_sqs_queue.dlq.arn
  tags                  = { OrdinautMigration = var.migration_marker }

  environment = merge(var.database_connection, {
    ORDINAUT_DATABASE_SECRET_ARN = var.database_secret_arn
    ORDINAUT_REDIS_SECRET_ARN    = var.redis_secret_arn
    ORDINAUT_SECRETS_KEY_ARN     = var.secrets_key_arn
    ORDINAUT_WORK_QUEUE_URL      = var.work_queue_url
    ORDINAUT_WORKER_FANOUT_MAX   = tostring(var.worker_fanout_max)
    ORDINAUT_LOG_LEVEL           = var.log_level
    ORDINAUT_DB_POOL_MIN         = "1"
    ORDINAUT_DB_POOL_MAX         = "2"
    ORDINAUT_HOME                = "/tmp/ordinaut"
    POWERTOOLS_SERVICE_NAME      = "${var.name}-scheduler"
    POWERTOOLS_METRICS_NAMESPACE = "Ordinaut"
  })
}

# EventBridge Scheduler invokes Lambda asynchronously: no Lambda-side retries either.
resource "aws_lambda_function_event_invoke_config" "tick" {
  function_name                = module.function.function_name
  qualifier                    = module.function.alias_name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = 60

  destination_config {
    on_failure {
      destination = aws_sqs_queue.dlq.arn
    }
  }
}

resource "aws_scheduler_schedule_group" "this" {
  name = var.name
}

data "aws_iam_policy_document" "schedule_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "schedule" {
  name               = "${var.name}-tick-schedule"
  description        = "EventBridge Scheduler invokes the ${var.name} tick"
  assume_role_policy = data.aws_iam_policy_document.schedule_assume.json
}

data "aws_iam_policy_document" "schedule" {
  statement {
    sid       = "InvokeTick"
    actions   = ["lambda:InvokeFunction"]
    resources = [module.function.alias_arn]
  }

  statement {
    sid       = "DeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]
  }

  statement {
    sid       = "DecryptScheduleInput"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "schedule" {
  name   = "invoke-tick"
  role   = aws_iam_role.schedule.id
  policy = data.aws_iam_policy_document.schedule.json
}

resource "aws_scheduler_schedule" "tick" {
  name                         = "${var.name}-tick"
  group_name                   = aws_scheduler_schedule_group.this.name
  description                  = "Ordinaut scheduler tick, every minute"
  schedule_expression          = "rate(1 minute)"
  schedule_expression_timezone = "UTC"
  state                        = var.enabled ? "ENABLED" : "DISABLED"
  kms_key_arn                  = var.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = module.function.alias_arn
    role_arn = aws_iam_role.schedule.arn
    input = jsonencode({
      source         = "ordinaut.tick"
      scheduled_time = "<aws.scheduler.scheduled-time>"
      execution_id   = "<aws.scheduler.execution-id>"
    })

    retry_policy {
      maximum_retry_attempts       = 0
      maximum_event_age_in_seconds = 60
    }

    dead_letter_config {
      arn = aws_sqs_queue.dlq.arn
    }
  }

  depends_on = [aws_iam_role_policy.schedule]
}
