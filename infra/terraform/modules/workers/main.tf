# Workers and event ingress.
#
# worker: the tick, the API and the events function send wake-up messages to the work queue;
# each message invokes the worker function (its live alias), which drains due work (lease with
# SKIP LOCKED, run, complete) for its time budget minus a margin and never starts a run longer
# than ORDINAUT_MAX_RUN_DURATION_S. maximum_concurrency on the event source caps the number of
# workers, and so the number of database connections; reserved concurrency (optional) guarantees
# that many. Work itself lives in PostgreSQL: a message is only a wake-up, so losing or repeating
# one delays nothing beyond the next tick.
#
# events: one path. External producers send events to the ingest queue, and the EventBridge rule
# on this deployment's bus delivers there too (the SQS message body is the whole EventBridge
# event); the events function reads the queue in batches (partial batch failures are reported, so
# one bad message is retried alone) and feeds them into the same path as POST /events. The
# function's concurrency never throttles the queue: maximum_concurrency on the event source is the
# cap, and a reservation, when set, is at least as large.

data "aws_iam_policy_document" "secrets" {
  statement {
    sid       = "ReadRuntimeSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = var.runtime_secret_arns
  }
}

locals {
  # The longest run a worker starts: what remains of its time limit after the drain margin (when it
  # stops leasing) and a safety margin (completing, releasing, flushing metrics).
  max_run_duration_seconds = var.worker_timeout - var.worker_drain_margin_seconds - var.worker_safety_margin_seconds

  common_environment = merge(var.database_connection, {
    ORDINAUT_DATABASE_SECRET_ARN = var.database_secret_arn
    ORDINAUT_REDIS_SECRET_ARN    = var.redis_secret_arn
    ORDINAUT_SECRETS_KEY_ARN     = var.secrets_key_arn
    ORDINAUT_LOG_LEVEL           = var.log_level
    ORDINAUT_DB_POOL_MIN         = "1"
    ORDINAUT_DB_POOL_MAX         = "2"
    ORDINAUT_HOME                = "/tmp/ordinaut"
    POWERTOOLS_METRICS_NAMESPACE = "Ordinaut"
  })
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

  # A worker that leaves due work behind (its budget ran out) wakes another one.
  statement {
    sid       = "WakeWorkers"
    actions   = ["sqs:SendMessage"]
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
  reserved_concurrency = var.worker_reserved_concurrency
  subnet_ids           = var.subnet_ids
  security_group_ids   = [var.security_group_id]
  kms_key_arn          = var.kms_key_arn
  log_retention_days   = var.log_retention_days
  policy_json          = data.aws_iam_policy_document.worker.json
  tags                 = { OrdinautMigration = var.migration_marker }

  environment = merge(local.common_environment, {
    ORDINAUT_DRAIN_MARGIN_S     = tostring(var.worker_drain_margin_seconds)
    ORDINAUT_MAX_RUN_DURATION_S = tostring(local.max_run_duration_seconds)
    ORDINAUT_WORKER_CONCURRENCY = tostring(var.worker_concurrency)
    ORDINAUT_WORK_QUEUE_URL     = aws_sqs_queue.work.id
    ORDINAUT_WORKER_FANOUT_MAX  = tostring(var.worker_max_concurrency)
    POWERTOOLS_SERVICE_NAME     = "${var.name}-worker"
  })
}

resource "aws_lambda_event_source_mapping" "work" {
  event_source_arn = aws_sqs_queue.work.arn
  function_name    = module.worker.alias_arn
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

  # An event that triggers runs wakes a worker at once instead of waiting for the next tick.
  statement {
    sid       = "WakeWorkers"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.work.arn]
  }
}

module "events" {
  source = "../function"

  name                 = "${var.name}-events"
  description          = "Ordinaut event ingress from the ingest queue (producers and the EventBridge rule), partial batch failures"
  image_uri            = var.image_uri
  command              = ["functions.events.handler.handler"]
  architecture         = var.architecture
  memory_size          = 512
  timeout              = var.events_timeout
  reserved_concurrency = var.events_reserved_concurrency
  subnet_ids           = var.subnet_ids
  security_group_ids   = [var.security_group_id]
  kms_key_arn          = var.kms_key_arn
  log_retention_days   = var.log_retention_days
  policy_json          = data.aws_iam_policy_document.events.json
  tags                 = { OrdinautMigration = var.migration_marker }

  environment = merge(local.common_environment, {
    ORDINAUT_WORK_QUEUE_URL    = aws_sqs_queue.work.id
    ORDINAUT_WORKER_FANOUT_MAX = tostring(var.worker_max_concurrency)
    POWERTOOLS_SERVICE_NAME    = "${var.name}-events"
  })
}

resource "aws_lambda_event_source_mapping" "events" {
  event_source_arn                   = aws_sqs_queue.events.arn
  function_name                      = module.events.alias_arn
  batch_size                         = 10
  maximum_batching_window_in_seconds = 1
  function_response_types            = ["ReportBatchItemFailures"]
  enabled                            = true

  scaling_config {
    maximum_concurrency = var.events_max_concurrency
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

# The rule delivers the whole event to the ingest queue (no input transformation); what EventBridge
# cannot deliver within its retries lands in the events DLQ.
resource "aws_cloudwatch_event_target" "ingress" {
  rule           = aws_cloudwatch_event_rule.ingress.name
  event_bus_name = aws_cloudwatch_event_bus.this.name
  target_id      = "events-ingest-queue"
  arn            = aws_sqs_queue.events.arn

  retry_policy {
    maximum_retry_attempts       = 10
    maximum_event_age_in_seconds = 3600
  }

  dead_letter_config {
    arn = aws_sqs_queue.events_dlq.arn
  }
}

# Only this deployment's rule may send to the ingest queue as EventBridge (producers send with
# their own IAM permissions). Written as JSON here (not a policy document data source) so the
# deploy checks can read the statement back.
locals {
  events_queue_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "EventBridgeIngress"
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.events.arn
      Condition = { ArnEquals = { "aws:SourceArn" = aws_cloudwatch_event_rule.ingress.arn } }
    }]
  })
}

resource "aws_sqs_queue_policy" "events" {
  queue_url = aws_sqs_queue.events.id
  policy    = local.events_queue_policy
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
