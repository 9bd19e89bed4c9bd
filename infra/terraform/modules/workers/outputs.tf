output "worker_function_name" {
  description = "Name of the worker function."
  value       = module.worker.function_name
}

output "events_function_name" {
  description = "Name of the events-ingress function."
  value       = module.events.function_name
}

output "work_queue_arn" {
  description = "ARN of the worker wake-up queue."
  value       = aws_sqs_queue.work.arn
}

output "work_queue_url" {
  description = "URL of the worker wake-up queue."
  value       = aws_sqs_queue.work.id
}

output "work_dlq_name" {
  description = "Dead-letter queue of the worker queue."
  value       = aws_sqs_queue.work_dlq.name
}

output "events_queue_url" {
  description = "URL of the events ingest queue (producers send Ordinaut events here)."
  value       = aws_sqs_queue.events.id
}

output "events_queue_arn" {
  description = "ARN of the events ingest queue."
  value       = aws_sqs_queue.events.arn
}

output "events_dlq_name" {
  description = "Dead-letter queue of event ingress (SQS redrive, EventBridge target and async failures)."
  value       = aws_sqs_queue.events_dlq.name
}

output "event_bus_name" {
  description = "EventBridge bus whose matching events become Ordinaut events."
  value       = aws_cloudwatch_event_bus.this.name
}

output "max_run_duration_seconds" {
  description = "Longest run a worker starts (ORDINAUT_MAX_RUN_DURATION_S): worker timeout minus the drain and safety margins."
  value       = local.max_run_duration_seconds
}

output "worker_drain_margin_seconds" {
  description = "Seconds before its time limit at which a worker stops leasing (ORDINAUT_DRAIN_MARGIN_S)."
  value       = var.worker_drain_margin_seconds
}

output "worker" {
  description = "The worker function's settings that deploy checks assert on."
  value = {
    name                 = module.worker.function_name
    timeout              = module.worker.timeout
    reserved_concurrency = module.worker.reserved_concurrency
    published            = module.worker.published
    alias_arn            = module.worker.alias_arn
    environment          = module.worker.environment
    role_name            = module.worker.role_name
  }
}

output "events" {
  description = "The events function's settings that deploy checks assert on."
  value = {
    name                 = module.events.function_name
    timeout              = module.events.timeout
    reserved_concurrency = module.events.reserved_concurrency
    published            = module.events.published
    alias_arn            = module.events.alias_arn
    environment          = module.events.environment
    role_name            = module.events.role_name
  }
}

output "event_source_mappings" {
  description = "SQS event source mappings: what they invoke, their concurrency cap and batch settings."
  value = {
    work = {
      function_name           = aws_lambda_event_source_mapping.work.function_name
      maximum_concurrency     = one(aws_lambda_event_source_mapping.work.scaling_config[*].maximum_concurrency)
      batch_size              = aws_lambda_event_source_mapping.work.batch_size
      function_response_types = aws_lambda_event_source_mapping.work.function_response_types
    }
    events = {
      function_name           = aws_lambda_event_source_mapping.events.function_name
      maximum_concurrency     = one(aws_lambda_event_source_mapping.events.scaling_config[*].maximum_concurrency)
      batch_size              = aws_lambda_event_source_mapping.events.batch_size
      function_response_types = aws_lambda_event_source_mapping.events.function_response_types
    }
  }
}

output "queues" {
  description = "Every queue of this module (role => name, visibility timeout, redrive policy JSON or null for a DLQ)."
  value = {
    for role, queue in {
      work       = aws_sqs_queue.work
      work-dlq   = aws_sqs_queue.work_dlq
      events     = aws_sqs_queue.events
      events-dlq = aws_sqs_queue.events_dlq
      } : role => {
      name                       = queue.name
      arn                        = queue.arn
      visibility_timeout_seconds = queue.visibility_timeout_seconds
      message_retention_seconds  = queue.message_retention_seconds
      redrive_policy             = queue.redrive_policy == "" ? null : queue.redrive_policy
    }
  }
}

output "work_dlq_arn" {
  description = "ARN of the worker queue's DLQ."
  value       = aws_sqs_queue.work_dlq.arn
}

output "events_dlq_arn" {
  description = "ARN of the events DLQ."
  value       = aws_sqs_queue.events_dlq.arn
}

output "events_queue_name" {
  description = "Name of the events ingest queue."
  value       = aws_sqs_queue.events.name
}

output "work_queue_name" {
  description = "Name of the worker wake-up queue."
  value       = aws_sqs_queue.work.name
}

output "event_rule_arn" {
  description = "ARN of the EventBridge rule that routes events to the ingest queue."
  value       = aws_cloudwatch_event_rule.ingress.arn
}

output "event_target_arn" {
  description = "Where the EventBridge rule delivers: the ingest queue."
  value       = aws_cloudwatch_event_target.ingress.arn
}

output "events_queue_policy" {
  description = "Resource policy of the ingest queue (EventBridge may send, from this rule only)."
  value       = aws_sqs_queue_policy.events.policy
}
