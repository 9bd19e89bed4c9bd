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
