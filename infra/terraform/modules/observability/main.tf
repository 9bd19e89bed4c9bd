# Alarms for everything that can fail quietly: each function's errors and throttles, each DLQ
# holding messages, every queue's oldest message getting old, due work waiting too long (the
# scheduler's DueWorkLagSeconds; missing data is breaching, because a tick that stopped running
# emits nothing), run outcomes from the worker's EMF metrics (dead-lettered runs, failed runs,
# start lag), API 5xx responses, Redis memory and the database's CPU, free storage and
# connections. All go to one encrypted SNS topic. VPC flow logs are recorded here too.

data "aws_caller_identity" "current" {}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = var.kms_key_arn
}

resource "aws_sns_topic_subscription" "email" {
  for_each  = toset(var.alarm_emails)
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

data "aws_iam_policy_document" "alarms_topic" {
  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarms_topic.json
}

locals {
  actions = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "function_errors" {
  for_each            = var.functions
  alarm_name          = "${var.name}-${each.key}-errors"
  alarm_description   = "The ${each.key} function (${each.value}) raised errors."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

resource "aws_cloudwatch_metric_alarm" "function_throttles" {
  for_each            = var.functions
  alarm_name          = "${var.name}-${each.key}-throttles"
  alarm_description   = "The ${each.key} function (${each.value}) hit its concurrency cap."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

resource "aws_cloudwatch_metric_alarm" "dlq_depth" {
  for_each            = var.dead_letter_queues
  alarm_name          = "${var.name}-${each.key}-dlq-depth"
  alarm_description   = "Messages are waiting in the ${each.key} dead-letter queue (${each.value})."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

resource "aws_cloudwatch_metric_alarm" "due_work_lag" {
  alarm_name          = "${var.name}-due-work-lag"
  alarm_description   = "Due work has waited more than ${var.due_work_lag_threshold_seconds}s, or the tick stopped reporting."
  namespace           = "Ordinaut"
  metric_name         = "DueWorkLagSeconds"
  dimensions          = var.lag_metric_dimensions
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = var.due_work_lag_threshold_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

resource "aws_cloudwatch_metric_alarm" "api_5xx" {
  alarm_name          = "${var.name}-api-5xx"
  alarm_description   = "The API answered 5xx more than ${var.api_5xx_threshold} times in five minutes."
  namespace           = "AWS/ApiGateway"
  metric_name         = "5xx"
  dimensions          = { ApiId = var.api_id }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.api_5xx_threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

# --- run outcomes: the worker's EMF metrics (namespace Ordinaut, dimension service) -----------

resource "aws_cloudwatch_metric_alarm" "runs_dead_lettered" {
  alarm_name          = "${var.name}-runs-dead-lettered"
  alarm_description   = "A run exhausted its retries and was dead-lettered (Ordinaut/${var.run_metric_names.dead_lettered})."
  namespace           = "Ordinaut"
  metric_name         = var.run_metric_names.dead_lettered
  dimensions          = var.worker_metric_dimensions
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

resource "aws_cloudwatch_metric_alarm" "runs_failed" {
  alarm_name          = "${var.name}-runs-failed"
  alarm_description   = "More than ${var.runs_failed_threshold} runs failed in five minutes (Ordinaut/${var.run_metric_names.failed})."
  namespace           = "Ordinaut"
  metric_name         = var.run_metric_names.failed
  dimensions          = var.worker_metric_dimensions
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.runs_failed_threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

resource "aws_cloudwatch_metric_alarm" "start_lag" {
  alarm_name          = "${var.name}-run-start-lag"
  alarm_description   = "Runs started more than ${var.start_lag_threshold_ms} ms after they were due (p90 of Ordinaut/${var.run_metric_names.start_lag}) for 10 minutes."
  namespace           = "Ordinaut"
  metric_name         = var.run_metric_names.start_lag
  dimensions          = var.worker_metric_dimensions
  extended_statistic  = "p90"
  period              = 300
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  threshold           = var.start_lag_threshold_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

# --- queues ----------------------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "queue_age" {
  for_each            = var.queues
  alarm_name          = "${var.name}-${each.key}-queue-age"
  alarm_description   = "The oldest message in the ${each.key} queue (${each.value}) has waited more than ${var.queue_age_threshold_seconds}s: its consumer is not keeping up or is failing."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.queue_age_threshold_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

resource "aws_cloudwatch_metric_alarm" "dlq_age" {
  for_each            = var.dead_letter_queues
  alarm_name          = "${var.name}-${each.key}-dlq-age"
  alarm_description   = "A message has sat in the ${each.key} dead-letter queue (${each.value}) for more than ${var.dlq_age_threshold_seconds}s: handle it before it expires."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.dlq_age_threshold_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

# --- data tier -------------------------------------------------------------------------------

# noeviction: a full Redis refuses writes, so memory is alarmed well before it fills.
resource "aws_cloudwatch_metric_alarm" "redis_memory" {
  for_each            = toset(var.redis_node_ids)
  alarm_name          = "${var.name}-redis-memory-${each.value}"
  alarm_description   = "Redis node ${each.value} uses more than ${var.redis_memory_threshold_percent}% of its memory (noeviction: writes fail when it is full)."
  namespace           = "AWS/ElastiCache"
  metric_name         = "DatabaseMemoryUsagePercentage"
  dimensions          = { CacheClusterId = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  threshold           = var.redis_memory_threshold_percent
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

resource "aws_cloudwatch_metric_alarm" "database_cpu" {
  alarm_name          = "${var.name}-database-cpu"
  alarm_description   = "PostgreSQL (${var.database_instance_id}) CPU above ${var.database_cpu_threshold_percent}% for 15 minutes."
  namespace           = "AWS/RDS"
  metric_name         = "CPUUtilization"
  dimensions          = { DBInstanceIdentifier = var.database_instance_id }
  statistic           = "Average"
  period              = 300
  evaluation_periods  = 3
  threshold           = var.database_cpu_threshold_percent
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

resource "aws_cloudwatch_metric_alarm" "database_storage" {
  alarm_name          = "${var.name}-database-free-storage"
  alarm_description   = "PostgreSQL (${var.database_instance_id}) has less than ${var.database_free_storage_threshold_bytes} bytes of storage left."
  namespace           = "AWS/RDS"
  metric_name         = "FreeStorageSpace"
  dimensions          = { DBInstanceIdentifier = var.database_instance_id }
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.database_free_storage_threshold_bytes
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

resource "aws_cloudwatch_metric_alarm" "database_connections" {
  alarm_name          = "${var.name}-database-connections"
  alarm_description   = "PostgreSQL (${var.database_instance_id}) holds more than ${var.database_connections_threshold} connections."
  namespace           = "AWS/RDS"
  metric_name         = "DatabaseConnections"
  dimensions          = { DBInstanceIdentifier = var.database_instance_id }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  threshold           = var.database_connections_threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

# --- VPC flow logs -------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "flow" {
  name              = "/aws/vpc/${var.name}/flow"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

data "aws_iam_policy_document" "flow_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "flow" {
  name               = "${var.name}-flow-logs"
  description        = "VPC flow logs of ${var.name} write to their log group"
  assume_role_policy = data.aws_iam_policy_document.flow_assume.json
}

data "aws_iam_policy_document" "flow" {
  statement {
    sid       = "WriteFlowLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = [aws_cloudwatch_log_group.flow.arn, "${aws_cloudwatch_log_group.flow.arn}:*"]
  }
}

resource "aws_iam_role_policy" "flow" {
  name   = "write-flow-logs"
  role   = aws_iam_role.flow.id
  policy = data.aws_iam_policy_document.flow.json
}

resource "aws_flow_log" "vpc" {
  vpc_id          = var.vpc_id
  traffic_type    = "ALL"
  log_destination = aws_cloudwatch_log_group.flow.arn
  iam_role_arn    = aws_iam_role.flow.arn
}
