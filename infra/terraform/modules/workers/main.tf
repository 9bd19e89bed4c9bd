# Workers and event ingress.
#
# worker: the tick sends wake-up messages to the work queue; each message invokes the worker
# function, which drains due work (lease with SKIP LOCKED, run, complete) for its time budget
# minus a margin. maximum_concurrency on the event source and reserved concurrency cap the number
# of workers, and so the number of database connections. Work itself lives in PostgreSQL: a
# message is only a wake-up, so losing or repeating one delays nothing beyond the next tick.
#
# events: external producers send events to the ingest queue (partial batch failures are
# reported, so one bad message is retried alone) or put them on this deployment's EventBridge bus;
# both reach the events function, which feeds them into the same path as POST /events.

data "aws_iam_policy_document" "secrets" {
  statement {
    sid       = "ReadRuntimeSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = var.runtime_secret_arns
  }
}

locals {
  common_environment = {
    ORDINAUT_DATABASE_SECRET_ARN = var.database_secret_arn
    ORDINAUT_REDIS_SECRET_ARN    = var.redis_secret_arn
    ORDINAUT_SECRETS_KEY_ARN     = var.secrets_key_arn
    ORDINAUT_LOG_LEVEL           = var.log_level
    ORDINAUT_DB_POOL_MIN         = "1"
    ORDINAUT_DB_POOL_MAX         = "2"
    ORDINAUT_HOME                = "/tmp/ordinaut"
    POWERTOOLS_METRICS_NAMESPACE = "Ordinaut"
  }
}

# --- worker --------------------------------------------------------------------------------

resource "aws_sqs_queue" "work_dlq" {
  name                      = "${var.name}-work-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "work" {
  name                       = "${var.name}-work"
  visibility_timeout_seconds = 6 * var.worker_timeout
  message_retention_seconds  = 3600
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.work_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "work_dlq" {
  queue_url = aws_sqs_queue.work_dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.work.arn]
  })
}

data "aws_iam_policy_document" "worker" {
  source_policy_documents = [data.aws_iam_policy_document.secrets.json]

  statement {
    sid       = "ConsumeWorkQueue"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.work.arn]
  }
}

module "worker" {
  source = "../function"

  name                 = "${var.name}-worker"
  description          = "Ordinaut worker: drains due work for the invocation's remaining time minus a margin"
  image_uri            = var.image_uri
  command              = ["functions.worker.handler.handler"]
  architecture         = var.architecture
  memory_size          = var.worker_memory_size
  timeout              = var.worker_timeout
  reserved_concurrency = var.worker_max_concurrency
  subnet_ids           = var.subnet_ids
  security_group_ids   = [var.security_group_id]
  kms_key_arn          = var.kms_key_arn
  log_retention_days   = var.log_retention_days
  policy_json          = data.aws_iam_policy_document.worker.json
  tags                 = { OrdinautMigration = var.migration_marker }

  environment = merge(local.common_environment, {
    ORDINAUT_DRAIN_MARGIN_S     = tostring(var.worker_drain_margin_seconds)
    ORDINAUT_WORKER_CONCURRENCY = tostring(var.worker_concurrency)
    POWERTOOLS_SERVICE_NAME     = "${var.name}-worker"
  })
}

resource "aws_lambda_event_source_mapping" "work" {
  event_source_arn = aws_sqs_queue.work.arn
  function_name    = module.worker.arn
  batch_size       = 1
  enabled          = true

  scaling_config {
    maximum_concurrency = var.worker_max_concurrency
  }
}

# --- events ingress ------------------------------------------------------------------------

resource "aws_sqs_queue" "events_dlq" {
  name                      = "${var.name}-events-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "events" {
  name                       = "${var.name}-events"
  visibility_timeout_seconds = 6 * var.events_timeout
  message_retention_seconds  = 345600
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.events_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "events_dlq" {
  queue_url = aws_sqs_queue.events_dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.events.arn]
  })
}

data "aws_iam_policy_document" "events" {
  source_policy_documents = [data.aws_iam_policy_document.secrets.json]

  statement {
    sid       = "ConsumeIngestQueue"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.events.arn]
  }
}

module "events" {
  source = "../function"

  name                  = "${var.name}-events"
  description           = "Ordinaut event ingress from SQS (partial batch failures) and EventBridge"
  image_uri             = var.image_uri
  command               = ["functions.events.handler.handler"]
  architecture          = var.architecture
  memory_size           = 512
  timeout               = var.events_timeout
  reserved_concurrency  = var.events_max_concurrency
  subnet_ids            = var.subnet_ids
  security_group_ids    = [var.security_group_id]
  kms_key_arn           = var.kms_key_arn
  log_retention_days    = var.log_retention_days
  policy_json           = data.aws_iam_policy_document.events.json
  dead_letter_queue_arn = aws_sqs_queue.events_dlq.arn
  tags                  = { OrdinautMigration = var.migration_marker }

  environment = merge(local.common_environment, {
    POWERTOOLS_SERVICE_NAME = "${var.name}-events"
  })
}

resource "aws_lambda_event_source_mapping" "events" {
  event_source_arn                   = aws_sqs_queue.events.arn
  function_name                      = module.events.arn
  batch_size                         = 10
  maximum_batching_window_in_seconds = 1
  function_response_types            = ["ReportBatchItemFailures"]
  enabled                            = true

  scaling_config {
    maximum_concurrency = var.events_max_concurrency
  }
}

# EventBridge delivers to the function asynchronously: two retries, then the events DLQ.
resource "aws_lambda_function_event_invoke_config" "events" {
  function_name                = module.events.function_name
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = 3600

  destination_config {
    on_failure {
      destination = aws_sqs_queue.events_dlq.arn
    }
  }
}

resource "aws_cloudwatch_event_bus" "this" {
  name = var.name
}

resource "aws_cloudwatch_event_rule" "ingress" {
  name           = "${var.name}-events-ingress"
  description    = "Events on the ${var.name} bus that become Ordinaut events"
  event_bus_name = aws_cloudwatch_event_bus.this.name
  event_pattern  = jsonencode(var.event_pattern)
}

resource "aws_cloudwatch_event_target" "ingress" {
  rule           = aws_cloudwatch_event_rule.ingress.name
  event_bus_name = aws_cloudwatch_event_bus.this.name
  target_id      = "events-function"
  arn            = module.events.arn

  retry_policy {
    maximum_retry_attempts       = 10
    maximum_event_age_in_seconds = 3600
  }

  dead_letter_config {
    arn = aws_sqs_queue.events_dlq.arn
  }
}

resource "aws_lambda_permission" "eventbridge" {
  statement_id  = "AllowEventBridgeIngress"
  action        = "lambda:InvokeFunction"
  function_name = module.events.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.ingress.arn
}

data "aws_iam_policy_document" "events_dlq" {
  statement {
    sid       = "EventBridgeDeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events_dlq.arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.ingress.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "events_dlq" {
  queue_url = aws_sqs_queue.events_dlq.id
  policy    = data.aws_iam_policy_document.events_dlq.json
}
