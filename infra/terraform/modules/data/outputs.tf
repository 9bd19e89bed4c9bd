output "kms_key_arn" {
  description = "Customer managed KMS key for logs, secrets, queues' consumers and function environments."
  value       = aws_kms_key.this.arn
}

output "database_secret_arn" {
  description = "ARN of the PostgreSQL credential (ORDINAUT_DATABASE_SECRET_ARN)."
  value       = aws_secretsmanager_secret.database.arn
}

output "redis_secret_arn" {
  description = "ARN of the Redis credential (ORDINAUT_REDIS_SECRET_ARN)."
  value       = aws_secretsmanager_secret.redis.arn
}

output "secrets_key_arn" {
  description = "ARN of the secret holding the tool-secrets encryption key (ORDINAUT_SECRETS_KEY_ARN)."
  value       = aws_secretsmanager_secret.secrets_key.arn
}

output "runtime_secret_arns" {
  description = "Every secret a function reads at run time."
  value       = [aws_secretsmanager_secret.database.arn, aws_secretsmanager_secret.redis.arn, aws_secretsmanager_secret.secrets_key.arn]
}

output "database_proxy_endpoint" {
  description = "RDS Proxy endpoint the functions connect to (TLS required)."
  value       = aws_db_proxy.this.endpoint
}

output "database_instance_id" {
  description = "RDS instance identifier."
  value       = aws_db_instance.this.identifier
}

output "redis_primary_endpoint" {
  description = "ElastiCache primary endpoint (TLS, AUTH)."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "migrate_function_name" {
  description = "Function that migrates the schema and creates the first admin agent."
  value       = module.migrate.function_name
}

output "migration_result" {
  description = "JSON the migrate function returned on the last deploy."
  value       = aws_lambda_invocation.migrate.result
}

output "migration_marker" {
  description = "Changes whenever a migration ran; the function modules tag themselves with it so that they are updated only after the migration succeeded."
  value       = substr(sha1(aws_lambda_invocation.migrate.result), 0, 16)
}
