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
