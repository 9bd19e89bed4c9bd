output "api_url" {
  description = "HTTPS base URL of the Ordinaut API."
  value       = module.api.api_url
}

output "api_function_name" {
  description = "API function."
  value       = module.api.function_name
}

output "scheduler_function_name" {
  description = "Tick function, run every minute."
  value       = module.scheduler.function_name
}

output "worker_function_name" {
  description = "Worker function."
  value       = module.workers.worker_function_name
}

output "events_function_name" {
  description = "Event ingress function."
  value       = module.workers.events_function_name
}

output "migrate_function_name" {
  description = "Function that migrates the schema (on every deploy) and creates the first admin agent."
  value       = module.data.migrate_function_name
}

output "migration_result" {
  description = "What the migration of this deploy returned."
  value       = module.data.migration_result
}

output "work_queue_url" {
  description = "Worker wake-up queue."
  value       = module.workers.work_queue_url
}

output "events_queue_url" {
  description = "Queue external producers send Ordinaut events to."
  value       = module.workers.events_queue_url
}

output "event_bus_name" {
  description = "EventBridge bus whose events become Ordinaut events."
  value       = module.workers.event_bus_name
}

output "image_repository_url" {
  description = "ECR repository to push the image to (tags are immutable)."
  value       = module.registry.repository_url
}

output "database_secret_arn" {
  description = "ARN (not the value) of the RDS-managed PostgreSQL credential ({username, password}, rotated by RDS)."
  value       = module.data.database_secret_arn
}

output "redis_secret_arn" {
  description = "ARN (not the value) of the Redis credential."
  value       = module.data.redis_secret_arn
}

output "database_proxy_endpoint" {
  description = "RDS Proxy endpoint (private, TLS required)."
  value       = module.data.database_proxy_endpoint
}

output "alarm_topic_arn" {
  description = "SNS topic of every alarm."
  value       = module.observability.alarm_topic_arn
}

output "nat_public_ips" {
  description = "Addresses outbound pipeline HTTP calls come from."
  value       = module.network.nat_public_ips
}
