output "kms_key_arn" {
  description = "Customer managed KMS key for logs, secrets, queues' consumers and function environments."
  value       = aws_kms_key.this.arn
}

output "database_secret_arn" {
  description = "ARN of the RDS-managed PostgreSQL credential, JSON {username, password}, rotated by RDS (ORDINAUT_DATABASE_SECRET_ARN)."
  value       = local.database_secret_arn
}

output "database_connection" {
  description = "Where the functions connect to PostgreSQL (RDS Proxy; not secret): ORDINAUT_DATABASE_HOST, _PORT, _NAME, _SSLMODE."
  value       = local.database_connection
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
  value       = local.runtime_secret_arns
}

output "database_proxy_endpoint" {
  description = "RDS Proxy endpoint the functions connect to (TLS required)."
  value       = aws_db_proxy.this.endpoint
}

output "database_instance_id" {
  description = "RDS instance identifier."
  value       = aws_db_instance.this.identifier
}

output "database_proxy_auth_secret_arn" {
  description = "Secret RDS Proxy authenticates with: the same RDS-managed master secret, which exists before the proxy."
  value       = one(aws_db_proxy.this.auth[*].secret_arn)
}

output "redis_replication_group_id" {
  description = "ElastiCache replication group id."
  value       = aws_elasticache_replication_group.this.replication_group_id
}

output "redis_node_ids" {
  description = "Cache cluster ids of the replication group's nodes (<group>-001, -002, ...): the CacheClusterId dimension of their metrics."
  value       = [for i in range(1, var.redis_replicas + 2) : format("%s-%03d", var.name, i)]
}

output "redis_primary_endpoint" {
  description = "ElastiCache primary endpoint (TLS, AUTH)."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "migrate_function" {
  description = "The migrate function's settings that deploy checks assert on: time limit, reserved concurrency, published version behind the live alias."
  value = {
    name                 = module.migrate.function_name
    timeout              = module.migrate.timeout
    reserved_concurrency = module.migrate.reserved_concurrency
    published            = module.migrate.published
    alias_arn            = module.migrate.alias_arn
    environment          = module.migrate.environment
  }
}

output "migration_invocation_qualifier" {
  description = "Alias the deploy's migration invokes."
  value       = aws_lambda_invocation.migrate.qualifier
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
