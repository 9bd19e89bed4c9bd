# Ordinaut, production environment: three zones with a NAT gateway each, Multi-AZ PostgreSQL with
# deletion protection and 14 days of backups, Redis with a replica and automatic failover, a year
# of logs.

provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      Project     = "ordinaut"
      Environment = local.environment
      ManagedBy   = "terraform"
    })
  }
}

locals {
  environment   = "prod"
  name          = "ordinaut-${local.environment}"
  log_retention = 365

  # Reserved concurrency, set explicitly: the API's cap bounds its database connections, one tick
  # at a time, the workers and the events function get at least their event sources' caps (so
  # Lambda never throttles a batch back into the queue). 127 in all: the account's limit must be
  # at least 227 (Lambda keeps 100 unreserved).
  reserved = {
    api       = 100
    scheduler = 1
    worker    = 20
    events    = 5
    migrate   = 1
  }

  # db.m7g.large allows about 900 connections; RDS Proxy opens at most 90% of them.
  database_connections_alarm = 700
}

# The image repository: apply it first (`terraform apply -target=module.registry`), push the
# image, then apply everything (infra/README.md).
module "registry" {
  source = "../../modules/registry"

  repository_name      = local.name
  function_name_prefix = local.name
}

module "network" {
  source = "../../modules/network"

  name               = local.name
  cidr_block         = "10.41.0.0/16"
  az_count           = 3
  enable_nat_gateway = true
  single_nat_gateway = false
}

module "data" {
  source = "../../modules/data"

  name                             = local.name
  subnet_ids                       = module.network.private_subnet_ids
  database_security_group_id       = module.network.database_security_group_id
  database_proxy_security_group_id = module.network.database_proxy_security_group_id
  redis_security_group_id          = module.network.redis_security_group_id
  functions_security_group_id      = module.network.functions_security_group_id
  image_uri                        = var.image_uri
  architecture                     = var.architecture
  log_level                        = var.log_level
  log_retention_days               = local.log_retention
  db_instance_class                = "db.m7g.large"
  db_multi_az                      = true
  db_backup_retention_days         = 14
  deletion_protection              = true
  redis_node_type                  = "cache.m7g.large"
  redis_replicas                   = 1
  redis_snapshot_retention_days    = 7
  migrate_reserved_concurrency     = local.reserved.migrate
  secret_recovery_window_days      = 30
}

module "workers" {
  source = "../../modules/workers"

  name                        = local.name
  image_uri                   = var.image_uri
  architecture                = var.architecture
  subnet_ids                  = module.network.private_subnet_ids
  security_group_id           = module.network.functions_security_group_id
  kms_key_arn                 = module.data.kms_key_arn
  runtime_secret_arns         = module.data.runtime_secret_arns
  database_secret_arn         = module.data.database_secret_arn
  redis_secret_arn            = module.data.redis_secret_arn
  secrets_key_arn             = module.data.secrets_key_arn
  database_connection         = module.data.database_connection
  migration_marker            = module.data.migration_marker
  log_level                   = var.log_level
  log_retention_days          = local.log_retention
  worker_max_concurrency      = 20
  worker_reserved_concurrency = local.reserved.worker
  events_reserved_concurrency = local.reserved.events
  events_max_concurrency      = 5
}

module "scheduler" {
  source = "../../modules/scheduler"

  name                 = local.name
  image_uri            = var.image_uri
  architecture         = var.architecture
  subnet_ids           = module.network.private_subnet_ids
  security_group_id    = module.network.functions_security_group_id
  kms_key_arn          = module.data.kms_key_arn
  runtime_secret_arns  = module.data.runtime_secret_arns
  database_secret_arn  = module.data.database_secret_arn
  redis_secret_arn     = module.data.redis_secret_arn
  secrets_key_arn      = module.data.secrets_key_arn
  work_queue_arn       = module.workers.work_queue_arn
  work_queue_url       = module.workers.work_queue_url
  database_connection  = module.data.database_connection
  reserved_concurrency = local.reserved.scheduler
  worker_fanout_max    = 20
  migration_marker     = module.data.migration_marker
  log_level            = var.log_level
  log_retention_days   = local.log_retention
}

module "api" {
  source = "../../modules/api"

  name                     = local.name
  image_uri                = var.image_uri
  architecture             = var.architecture
  subnet_ids               = module.network.private_subnet_ids
  security_group_id        = module.network.functions_security_group_id
  kms_key_arn              = module.data.kms_key_arn
  runtime_secret_arns      = module.data.runtime_secret_arns
  database_secret_arn      = module.data.database_secret_arn
  redis_secret_arn         = module.data.redis_secret_arn
  secrets_key_arn          = module.data.secrets_key_arn
  migration_marker         = module.data.migration_marker
  log_level                = var.log_level
  log_retention_days       = local.log_retention
  reserved_concurrency     = local.reserved.api
  database_connection      = module.data.database_connection
  work_queue_arn           = module.workers.work_queue_arn
  work_queue_url           = module.workers.work_queue_url
  max_run_duration_seconds = module.workers.max_run_duration_seconds
}

module "observability" {
  source = "../../modules/observability"

  name               = local.name
  kms_key_arn        = module.data.kms_key_arn
  log_retention_days = local.log_retention
  vpc_id             = module.network.vpc_id
  api_id             = module.api.api_id
  alarm_emails       = var.alarm_emails

  functions = {
    api       = module.api.function_name
    scheduler = module.scheduler.function_name
    worker    = module.workers.worker_function_name
    events    = module.workers.events_function_name
    migrate   = module.data.migrate_function_name
  }

  queues = {
    work   = module.workers.work_queue_name
    events = module.workers.events_queue_name
  }

  dead_letter_queues = {
    scheduler = module.scheduler.dlq_name
    work      = module.workers.work_dlq_name
    events    = module.workers.events_dlq_name
  }

  lag_metric_dimensions = {
    service = "${local.name}-scheduler"
  }

  worker_metric_dimensions = {
    service = "${local.name}-worker"
  }

  redis_node_ids                 = module.data.redis_node_ids
  database_instance_id           = module.data.database_instance_id
  database_connections_threshold = local.database_connections_alarm
}
