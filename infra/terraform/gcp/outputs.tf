output "api_url" {
  description = "HTTPS URL of the API service."
  value       = google_cloud_run_v2_service.api.uri
}

output "migrate_job_name" {
  description = "Cloud Run job that applies migrations (execute it on every deploy)."
  value       = google_cloud_run_v2_job.this["migrate"].name
}

output "tick_job_name" {
  description = "Cloud Run job Cloud Scheduler executes every minute."
  value       = google_cloud_run_v2_job.this["tick"].name
}

output "worker_service_name" {
  description = "Cloud Run service of the long-running workers."
  value       = google_cloud_run_v2_service.worker.name
}

output "database_url_secret_id" {
  description = "Secret Manager ID (not the value) of ORDINAUT_DATABASE_URL."
  value       = google_secret_manager_secret.this["database-url"].id
}

output "redis_url_secret_id" {
  description = "Secret Manager ID (not the value) of ORDINAUT_REDIS_URL."
  value       = google_secret_manager_secret.this["redis-url"].id
}

output "sql_instance_connection_name" {
  description = "Cloud SQL connection name (for cloud-sql-proxy from inside the VPC)."
  value       = google_sql_database_instance.this.connection_name
}
