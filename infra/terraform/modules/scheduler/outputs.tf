output "function_name" {
  description = "Name of the scheduler (tick) function."
  value       = module.function.function_name
}

output "role_name" {
  description = "Execution role of the scheduler function."
  value       = module.function.role_name
}

output "dlq_name" {
  description = "Dead-letter queue of undeliverable or failed ticks."
  value       = aws_sqs_queue.dlq.name
}

output "dlq_arn" {
  description = "ARN of the tick dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "schedule_name" {
  description = "Name of the EventBridge Scheduler schedule."
  value       = aws_scheduler_schedule.tick.name
}

output "function" {
  description = "The tick function's settings that deploy checks assert on."
  value = {
    name                 = module.function.function_name
    timeout              = module.function.timeout
    reserved_concurrency = module.function.reserved_concurrency
    published            = module.function.published
    alias_arn            = module.function.alias_arn
    environment          = module.function.environment
  }
}

output "schedule" {
  description = "The tick schedule: expression, flexible window, target and its retry policy."
  value = {
    expression             = aws_scheduler_schedule.tick.schedule_expression
    flexible_window        = one(aws_scheduler_schedule.tick.flexible_time_window[*].mode)
    target_arn             = one(aws_scheduler_schedule.tick.target[*].arn)
    maximum_retry_attempts = one(one(aws_scheduler_schedule.tick.target[*].retry_policy)[*].maximum_retry_attempts)
    dead_letter_arn        = one(one(aws_scheduler_schedule.tick.target[*].dead_letter_config)[*].arn)
  }
}

output "lambda_retries" {
  description = "Lambda's own retries of an asynchronous tick (0) and the alias they apply to."
  value = {
    maximum_retry_attempts = aws_lambda_function_event_invoke_config.tick.maximum_retry_attempts
    qualifier              = aws_lambda_function_event_invoke_config.tick.qualifier
  }
}
