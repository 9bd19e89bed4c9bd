# The data tier: one customer managed KMS key, the credentials in Secrets Manager, PostgreSQL 16 on
# RDS behind RDS Proxy, ElastiCache Redis, and the schema migration that runs on every deploy.
#
# Generated credentials live only in Secrets Manager (and in the encrypted Terraform state, which
# random_password cannot avoid); no variable takes and no output returns a secret value. The
# functions receive secret ARNs and fetch the values once per container.

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition
  db_name    = "ordinaut"
  db_user    = "ordinaut"
}

# --- encryption key ------------------------------------------------------------------------

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:a key policy's Resource "*" means this key only; administration stays with the account's IAM policies
  #checkov:skip=CKV_AWS_111:a key policy's Resource "*" means this key only
  #checkov:skip=CKV_AWS_356:a key policy's Resource "*" means this key only
  statement {
    sid       = "AccountAdministersKeyThroughIam"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchLogsEncryptsThisAccountsLogGroups"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublishToEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_kms_key" "this" {
  description             = "${var.name}: secrets, database, Redis, logs, function environment"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

# --- credentials ---------------------------------------------------------------------------

# Letters and digits only: the values go into URLs and RDS rejects some punctuation.
resource "random_password" "database" {
  length  = 40
  special = false
}

resource "random_password" "redis" {
  length  = 64
  special = false
}

# 32 random bytes, URL-safe base64: a Fernet key for the application's encrypted tool secrets.
resource "random_bytes" "secrets_key" {
  length = 32
}

resource "aws_secretsmanager_secret" "database" {
  #checkov:skip=CKV2_AWS_57:the same credential is RDS Proxy's and the master user's; rotate with the RDS Proxy-aware procedure in infra/README.md instead of a rotation Lambda
  name                    = "${var.name}/database"
  description             = "PostgreSQL credentials for Ordinaut through RDS Proxy (JSON: username, password, host, port, dbname, url)."
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = var.secret_recovery_window_days
}

resource "aws_secretsmanager_secret_version" "database" {
  secret_id = aws_secretsmanager_secret.database.id
  secret_string = jsonencode({
    engine   = "postgres"
    username = local.db_user
    password = random_password.database.result
    host     = aws_db_proxy.this.endpoint
    port     = 5432
    dbname   = local.db_name
    sslmode  = "require"
    url      = "postgresql://${local.db_user}:${random_password.database.result}@${aws_db_proxy.this.endpoint}:5432/${local.db_name}?sslmode=require"
  })
}

resource "aws_secretsmanager_secret" "redis" {
  #checkov:skip=CKV2_AWS_57:rotating the ElastiCache AUTH token needs a ROTATE-then-SET change on the replication group; done by Terraform, see infra/README.md
  name                    = "${var.name}/redis"
  description             = "ElastiCache Redis AUTH token and TLS endpoint for Ordinaut (JSON: host, port, auth_token, url)."
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = var.secret_recovery_window_days
}

resource "aws_secretsmanager_secret_version" "redis" {
  secret_id = aws_secretsmanager_secret.redis.id
  secret_string = jsonencode({
    host       = aws_elasticache_replication_group.this.primary_endpoint_address
    port       = 6379
    auth_token = random_password.redis.result
    tls        = true
    url        = "rediss://:${random_password.redis.result}@${aws_elasticache_replication_group.this.primary_endpoint_address}:6379/0"
  })
}

resource "aws_secretsmanager_secret" "secrets_key" {
  #checkov:skip=CKV2_AWS_57:the key decrypts stored tool secrets; rotating it means re-encrypting them, an application-level procedure
  name                    = "${var.name}/secrets-key"
  description             = "Ordinaut's key for encrypting stored tool secrets (JSON: secrets_key, a Fernet key)."
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = var.secret_recovery_window_days
}

resource "aws_secretsmanager_secret_version" "secrets_key" {
  secret_id = aws_secretsmanager_secret.secrets_key.id
  secret_string = jsonencode({
    secrets_key = replace(replace(random_bytes.secrets_key.base64, "+", "-"), "/", "_")
  })
}

# --- PostgreSQL ----------------------------------------------------------------------------

resource "aws_db_subnet_group" "this" {
  name        = var.name
  description = "Private subnets of ${var.name}"
  subnet_ids  = var.subnet_ids
}

resource "aws_db_parameter_group" "this" {
  name_prefix = "${var.name}-pg16-"
  family      = "postgres16"
  description = "Ordinaut: TLS only, statement and connection logging"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  parameter {
    name  = "log_connections"
    value = "1"
  }

  parameter {
    name  = "log_disconnections"
    value = "1"
  }

  parameter {
    name  = "log_lock_waits"
    value = "1"
  }

  lifecycle {
    create_before_destroy = true
  }
}

data "aws_iam_policy_document" "rds_monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name               = "${var.name}-rds-monitoring"
  description        = "Enhanced Monitoring for ${var.name}"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring_assume.json
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "this" {
  #checkov:skip=CKV_AWS_293:deletion_protection is an input: envs/prod sets true (asserted in tests/deploy); envs/dev is disposable
  #checkov:skip=CKV_AWS_157:multi_az is an input: envs/prod sets true (asserted in tests/deploy); envs/dev runs one instance
  identifier                            = var.name
  engine                                = "postgres"
  engine_version                        = var.postgres_engine_version
  instance_class                        = var.db_instance_class
  allocated_storage                     = var.db_allocated_storage
  max_allocated_storage                 = var.db_max_allocated_storage
  storage_type                          = "gp3"
  storage_encrypted                     = true
  kms_key_id                            = aws_kms_key.this.arn
  db_name                               = local.db_name
  username                              = local.db_user
  password                              = random_password.database.result
  port                                  = 5432
  db_subnet_group_name                  = aws_db_subnet_group.this.name
  vpc_security_group_ids                = [var.database_security_group_id]
  parameter_group_name                  = aws_db_parameter_group.this.name
  publicly_accessible                   = false
  multi_az                              = var.db_multi_az
  iam_database_authentication_enabled   = true
  ca_cert_identifier                    = "rds-ca-rsa2048-g1"
  auto_minor_version_upgrade            = true
  allow_major_version_upgrade           = false
  apply_immediately                     = false
  backup_retention_period               = var.db_backup_retention_days
  backup_window                         = "03:00-04:00"
  maintenance_window                    = "sun:04:30-sun:05:30"
  copy_tags_to_snapshot                 = true
  delete_automated_backups              = false
  deletion_protection                   = var.deletion_protection
  skip_final_snapshot                   = !var.deletion_protection
  final_snapshot_identifier             = "${var.name}-final"
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.this.arn
  performance_insights_retention_period = 7
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]

  depends_on = [aws_iam_role_policy_attachment.rds_monitoring, aws_cloudwatch_log_group.postgresql]
}

# RDS would create these without retention or encryption.
resource "aws_cloudwatch_log_group" "postgresql" {
  for_each          = toset(["postgresql", "upgrade"])
  name              = "/aws/rds/instance/${var.name}/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
}

# --- RDS Proxy: bounded, TLS-only connections for many short-lived functions ----------------

data "aws_iam_policy_document" "proxy_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["rds.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "proxy" {
  name               = "${var.name}-rds-proxy"
  description        = "RDS Proxy reads the database credential"
  assume_role_policy = data.aws_iam_policy_document.proxy_assume.json
}

data "aws_iam_policy_document" "proxy" {
  statement {
    sid       = "ReadDatabaseCredential"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.database.arn]
  }

  statement {
    sid       = "DecryptDatabaseCredential"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "proxy" {
  name   = "read-database-secret"
  role   = aws_iam_role.proxy.id
  policy = data.aws_iam_policy_document.proxy.json
}

resource "aws_db_proxy" "this" {
  name                   = var.name
  engine_family          = "POSTGRESQL"
  role_arn               = aws_iam_role.proxy.arn
  vpc_subnet_ids         = var.subnet_ids
  vpc_security_group_ids = [var.database_proxy_security_group_id]
  require_tls            = true
  idle_client_timeout    = 1800
  debug_logging          = false

  auth {
    description               = "Ordinaut application user"
    auth_scheme               = "SECRETS"
    client_password_auth_type = "POSTGRES_SCRAM_SHA_256"
    iam_auth                  = "DISABLED"
    secret_arn                = aws_secretsmanager_secret.database.arn
  }

  depends_on = [aws_iam_role_policy.proxy]
}

resource "aws_db_proxy_default_target_group" "this" {
  db_proxy_name = aws_db_proxy.this.name

  connection_pool_config {
    max_connections_percent      = var.proxy_max_connections_percent
    max_idle_connections_percent = 50
    connection_borrow_timeout    = 30
  }
}

resource "aws_db_proxy_target" "this" {
  db_proxy_name          = aws_db_proxy.this.name
  target_group_name      = aws_db_proxy_default_target_group.this.name
  db_instance_identifier = aws_db_instance.this.identifier
}

# --- Redis ---------------------------------------------------------------------------------

resource "aws_elasticache_subnet_group" "this" {
  name        = var.name
  description = "Private subnets of ${var.name}"
  subnet_ids  = var.subnet_ids
}

# Streams must never be evicted: a full Redis refuses writes (the outbox keeps events until it
# recovers) rather than silently dropping them.
resource "aws_elasticache_parameter_group" "this" {
  name        = "${var.name}-redis7"
  family      = "redis7"
  description = "Ordinaut: noeviction, cluster mode off"

  parameter {
    name  = "maxmemory-policy"
    value = "noeviction"
  }

  parameter {
    name  = "cluster-enabled"
    value = "no"
  }
}

resource "aws_cloudwatch_log_group" "redis" {
  name              = "/aws/elasticache/${var.name}/slow-log"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
}

resource "aws_elasticache_replication_group" "this" {
  #checkov:skip=CKV2_AWS_50:failover and Multi-AZ follow redis_replicas: envs/prod runs a replica with both on (asserted in tests/deploy); envs/dev runs one node
  replication_group_id       = var.name
  description                = "Ordinaut event streams"
  engine                     = "redis"
  engine_version             = var.redis_engine_version
  node_type                  = var.redis_node_type
  num_cache_clusters         = 1 + var.redis_replicas
  automatic_failover_enabled = var.redis_replicas > 0
  multi_az_enabled           = var.redis_replicas > 0
  parameter_group_name       = aws_elasticache_parameter_group.this.name
  port                       = 6379
  subnet_group_name          = aws_elasticache_subnet_group.this.name
  security_group_ids         = [var.redis_security_group_id]
  at_rest_encryption_enabled = true
  kms_key_id                 = aws_kms_key.this.arn
  transit_encryption_enabled = true
  transit_encryption_mode    = "required"
  auth_token                 = random_password.redis.result
  auth_token_update_strategy = "ROTATE"
  snapshot_retention_limit   = var.redis_snapshot_retention_days
  snapshot_window            = "02:00-03:00"
  maintenance_window         = "sun:05:30-sun:06:30"
  auto_minor_version_upgrade = true
  apply_immediately          = false

  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.redis.name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "slow-log"
  }
}

# --- schema migration on deploy ------------------------------------------------------------

data "aws_iam_policy_document" "migrate" {
  statement {
    sid       = "ReadRuntimeSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.database.arn, aws_secretsmanager_secret.redis.arn, aws_secretsmanager_secret.secrets_key.arn]
  }
}

module "migrate" {
  source = "../function"

  name                 = "${var.name}-migrate"
  description          = "Applies migrations/ (action=migrate, run on every deploy) and creates the first admin agent (action=create-admin)"
  image_uri            = var.image_uri
  command              = ["functions.migrate.handler.handler"]
  architecture         = var.architecture
  memory_size          = 512
  timeout              = var.migrate_timeout
  reserved_concurrency = 1
  subnet_ids           = var.subnet_ids
  security_group_ids   = [var.functions_security_group_id]
  kms_key_arn          = aws_kms_key.this.arn
  log_retention_days   = var.log_retention_days
  policy_json          = data.aws_iam_policy_document.migrate.json

  environment = {
    ORDINAUT_DATABASE_SECRET_ARN = aws_secretsmanager_secret.database.arn
    ORDINAUT_REDIS_SECRET_ARN    = aws_secretsmanager_secret.redis.arn
    ORDINAUT_SECRETS_KEY_ARN     = aws_secretsmanager_secret.secrets_key.arn
    ORDINAUT_LOG_LEVEL           = var.log_level
    ORDINAUT_HOME                = "/tmp/ordinaut"
    POWERTOOLS_SERVICE_NAME      = "${var.name}-migrate"
    POWERTOOLS_METRICS_NAMESPACE = "Ordinaut"
  }
}

# Runs `ordinaut migrate` (through the migrate handler) whenever the image changes, after the
# database, its proxy and the credentials exist. A failed migration fails the apply, and the other
# functions (which depend on this result) keep their previous image.
resource "aws_lambda_invocation" "migrate" {
  function_name = module.migrate.function_name
  input         = jsonencode({ action = "migrate" })

  triggers = {
    image_uri = var.image_uri
  }

  depends_on = [
    aws_db_proxy_target.this,
    aws_secretsmanager_secret_version.database,
    aws_secretsmanager_secret_version.redis,
    aws_secretsmanager_secret_version.secrets_key,
  ]
}
