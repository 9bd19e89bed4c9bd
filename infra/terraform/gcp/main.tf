# Ordinaut on Google Cloud Run: the same image as on AWS, run as long-running containers.
#
#   api       Cloud Run service, `ordinaut api` (uvicorn on 8080), public or IAM-protected
#   worker    Cloud Run service, `ordinaut worker`, always-on CPU, internal ingress (serves only
#             its metrics port, which Cloud Run probes)
#   tick      Cloud Run job, `ordinaut scheduler --once`, executed every minute by Cloud Scheduler
#             through an OAuth-authenticated call to the Cloud Run Admin API, no retries
#   migrate   Cloud Run job, `ordinaut migrate`, executed on deploy (infra/README.md)
#
# Cloud SQL for PostgreSQL 16 and Memorystore for Redis (noeviction, AUTH, TLS) on private IPs,
# reached through Direct VPC egress; connection URLs live in Secret Manager and reach the
# containers as environment variables (ORDINAUT_DATABASE_URL, ORDINAUT_REDIS_URL,
# ORDINAUT_SECRETS_KEY). Each workload runs as its own service account that can read exactly
# those secrets.

locals {
  name = "ordinaut-${var.environment}"

  services = [
    "run.googleapis.com",
    "sqladmin.googleapis.com",
    "redis.googleapis.com",
    "secretmanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "servicenetworking.googleapis.com",
    "compute.googleapis.com",
    "artifactregistry.googleapis.com",
  ]

  workloads = toset(["api", "worker", "tick", "migrate"])

  plain_env = {
    ORDINAUT_LOG_LEVEL   = var.log_level
    ORDINAUT_LOG_JSON    = "true"
    ORDINAUT_DB_POOL_MIN = "1"
    ORDINAUT_DB_POOL_MAX = "5"
    ORDINAUT_HOME        = "/tmp/ordinaut"
  }

  secret_env = {
    ORDINAUT_DATABASE_URL = google_secret_manager_secret.this["database-url"].secret_id
    ORDINAUT_REDIS_URL    = google_secret_manager_secret.this["redis-url"].secret_id
    ORDINAUT_SECRETS_KEY  = google_secret_manager_secret.this["secrets-key"].secret_id
  }

  redis_ca_path = "/secrets/redis-ca/ca.pem"
}

resource "google_project_service" "this" {
  for_each           = toset(local.services)
  service            = each.value
  disable_on_destroy = false
}

# --- network -------------------------------------------------------------------------------

resource "google_compute_network" "this" {
  name                    = local.name
  auto_create_subnetworks = false

  depends_on = [google_project_service.this]
}

resource "google_compute_subnetwork" "run" {
  name                     = "${local.name}-run"
  region                   = var.region
  network                  = google_compute_network.this.id
  ip_cidr_range            = var.network_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Nothing connects into this VPC: Cloud Run only egresses through it. Deny and log all ingress.
resource "google_compute_firewall" "deny_ingress" {
  name          = "${local.name}-deny-ingress"
  network       = google_compute_network.this.id
  description   = "No ingress into the Ordinaut VPC"
  direction     = "INGRESS"
  priority      = 65000
  source_ranges = ["0.0.0.0/0"]

  deny {
    protocol = "all"
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# Private services access: Cloud SQL and Memorystore get addresses inside this VPC.
resource "google_compute_global_address" "services" {
  name          = "${local.name}-services"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = 20
  network       = google_compute_network.this.id
}

resource "google_service_networking_connection" "services" {
  network                 = google_compute_network.this.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.services.name]
}

# --- Cloud SQL -----------------------------------------------------------------------------

resource "random_password" "database" {
  length  = 40
  special = false
}

resource "google_sql_database_instance" "this" {
  #checkov:skip=CKV_GCP_6:ssl_mode ENCRYPTED_ONLY rejects every unencrypted connection; client certificates would need the Cloud SQL connector inside the application
  #checkov:skip=CKV_GCP_79:Ordinaut targets PostgreSQL 16 on every platform (RDS, Cloud SQL, compose), upgraded deliberately rather than to the newest major
  #checkov:skip=CKV2_GCP_13:log_duration logs every statement of a polling queue; Query Insights records statement latency instead
  name                = "${local.name}-pg"
  region              = var.region
  database_version    = "POSTGRES_16"
  deletion_protection = var.deletion_protection

  settings {
    tier                        = var.db_tier
    edition                     = "ENTERPRISE"
    availability_type           = var.db_availability_type
    disk_type                   = "PD_SSD"
    disk_autoresize             = true
    deletion_protection_enabled = var.deletion_protection

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = "03:00"

      backup_retention_settings {
        retained_backups = var.db_backup_retention_count
      }
    }

    ip_configuration {
      ipv4_enabled    = false
      private_network = google_compute_network.this.id
      ssl_mode        = "ENCRYPTED_ONLY"
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = true
    }

    maintenance_window {
      day  = 7
      hour = 4
    }

    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }

    database_flags {
      name  = "log_connections"
      value = "on"
    }

    database_flags {
      name  = "log_disconnections"
      value = "on"
    }

    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }

    database_flags {
      name  = "log_min_messages"
      value = "error"
    }

    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }

    database_flags {
      name  = "log_temp_files"
      value = "0"
    }

    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }

    database_flags {
      name  = "log_statement"
      value = "ddl"
    }

    database_flags {
      name  = "log_hostname"
      value = "on"
    }

    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
  }

  depends_on = [google_service_networking_connection.services]
}

resource "google_sql_database" "ordinaut" {
  name     = "ordinaut"
  instance = google_sql_database_instance.this.name
}

resource "google_sql_user" "ordinaut" {
  name     = "ordinaut"
  instance = google_sql_database_instance.this.name
  password = random_password.database.result
}

# --- Memorystore ---------------------------------------------------------------------------

resource "google_redis_instance" "this" {
  name                    = "${local.name}-redis"
  region                  = var.region
  tier                    = var.redis_tier
  memory_size_gb          = var.redis_memory_gb
  redis_version           = "REDIS_7_2"
  authorized_network      = google_compute_network.this.id
  connect_mode            = "PRIVATE_SERVICE_ACCESS"
  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"

  # Streams must never be evicted: a full Redis refuses writes and the outbox keeps the events.
  redis_configs = {
    maxmemory-policy = "noeviction"
  }

  persistence_config {
    persistence_mode    = "RDB"
    rdb_snapshot_period = "ONE_HOUR"
  }

  depends_on = [google_service_networking_connection.services]
}

# --- Secret Manager ------------------------------------------------------------------------

resource "random_bytes" "secrets_key" {
  length = 32
}

locals {
  secret_values = {
    "database-url" = "postgresql://${google_sql_user.ordinaut.name}:${random_password.database.result}@${google_sql_database_instance.this.private_ip_address}:5432/${google_sql_database.ordinaut.name}?sslmode=require"
    "redis-url"    = "rediss://:${google_redis_instance.this.auth_string}@${google_redis_instance.this.host}:${google_redis_instance.this.port}/0?ssl_ca_certs=${local.redis_ca_path}"
    "redis-ca"     = join("\n", google_redis_instance.this.server_ca_certs[*].cert)
    "secrets-key"  = replace(replace(random_bytes.secrets_key.base64, "+", "-"), "/", "_")
  }
}

resource "google_secret_manager_secret" "this" {
  for_each  = toset(["database-url", "redis-url", "redis-ca", "secrets-key"])
  secret_id = "${local.name}-${each.value}"

  replication {
    auto {}
  }

  depends_on = [google_project_service.this]
}

resource "google_secret_manager_secret_version" "this" {
  for_each    = google_secret_manager_secret.this
  secret      = each.value.id
  secret_data = local.secret_values[each.key]
}

# --- identities ----------------------------------------------------------------------------

resource "google_service_account" "workload" {
  for_each     = local.workloads
  account_id   = "${local.name}-${each.value}"
  display_name = "Ordinaut ${var.environment} ${each.value}"
}

resource "google_secret_manager_secret_iam_member" "workload" {
  for_each = {
    for pair in setproduct(local.workloads, keys(google_secret_manager_secret.this)) :
    "${pair[0]}/${pair[1]}" => { workload = pair[0], secret = pair[1] }
  }
  secret_id = google_secret_manager_secret.this[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.workload[each.value.workload].email}"
}

resource "google_service_account" "scheduler" {
  account_id   = "${local.name}-scheduler"
  display_name = "Ordinaut ${var.environment} Cloud Scheduler (runs the tick job)"
}

# --- Cloud Run: API ------------------------------------------------------------------------

resource "google_cloud_run_v2_service" "api" {
  name     = "${local.name}-api"
  location = var.region
  ingress  = "INGRESS_TRAFFIC_ALL"
  # Stateless: protection only guards against deleting production by mistake.
  deletion_protection = var.deletion_protection

  template {
    service_account                  = google_service_account.workload["api"].email
    timeout                          = "30s"
    max_instance_request_concurrency = 40
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"

    scaling {
      min_instance_count = var.api_min_instances
      max_instance_count = var.api_max_instances
    }

    vpc_access {
      egress = "PRIVATE_RANGES_ONLY"

      network_interfaces {
        network    = google_compute_network.this.id
        subnetwork = google_compute_subnetwork.run.id
      }
    }

    volumes {
      name = "redis-ca"

      secret {
        secret = google_secret_manager_secret.this["redis-ca"].secret_id

        items {
          version = "latest"
          path    = "ca.pem"
        }
      }
    }

    containers {
      image = var.image
      args  = ["api"]

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "1Gi"
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = merge(local.plain_env, { ORDINAUT_API_HOST = "0.0.0.0", ORDINAUT_API_PORT = "8080" })
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = local.secret_env
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }

      volume_mounts {
        name       = "redis-ca"
        mount_path = "/secrets/redis-ca"
      }

      startup_probe {
        period_seconds    = 2
        failure_threshold = 30

        http_get {
          path = "/health/live"
          port = 8080
        }
      }

      liveness_probe {
        period_seconds = 15

        http_get {
          path = "/health/live"
          port = 8080
        }
      }
    }
  }

  depends_on = [google_secret_manager_secret_version.this, google_secret_manager_secret_iam_member.workload]
}

# Ordinaut authenticates every route but health itself (bearer tokens, per-route scopes).
resource "google_cloud_run_v2_service_iam_member" "api_public" {
  #checkov:skip=CKV_GCP_102:the API is public by design and authenticates every request but health with bearer tokens; set public_api = false to keep it behind Cloud Run IAM
  count    = var.public_api ? 1 : 0
  name     = google_cloud_run_v2_service.api.name
  location = google_cloud_run_v2_service.api.location
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# --- Cloud Run: workers --------------------------------------------------------------------

resource "google_cloud_run_v2_service" "worker" {
  name                = "${local.name}-worker"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  deletion_protection = var.deletion_protection

  template {
    service_account       = google_service_account.workload["worker"].email
    execution_environment = "EXECUTION_ENVIRONMENT_GEN2"

    scaling {
      min_instance_count = var.worker_instances
      max_instance_count = var.worker_instances
    }

    vpc_access {
      egress = "PRIVATE_RANGES_ONLY"

      network_interfaces {
        network    = google_compute_network.this.id
        subnetwork = google_compute_subnetwork.run.id
      }
    }

    volumes {
      name = "redis-ca"

      secret {
        secret = google_secret_manager_secret.this["redis-ca"].secret_id

        items {
          version = "latest"
          path    = "ca.pem"
        }
      }
    }

    containers {
      image = var.image
      args  = ["worker"]

      # Cloud Run routes to and probes this port: the worker's Prometheus endpoint.
      ports {
        container_port = 9102
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "1Gi"
        }
        # Workers lease and run work between requests: CPU must stay allocated.
        cpu_idle = false
      }

      dynamic "env" {
        for_each = merge(local.plain_env, { ORDINAUT_WORKER_METRICS_PORT = "9102" })
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = local.secret_env
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }

      volume_mounts {
        name       = "redis-ca"
        mount_path = "/secrets/redis-ca"
      }

      startup_probe {
        period_seconds    = 2
        failure_threshold = 30

        tcp_socket {
          port = 9102
        }
      }
    }
  }

  depends_on = [google_secret_manager_secret_version.this, google_secret_manager_secret_iam_member.workload]
}

# --- Cloud Run jobs: tick and migrate ------------------------------------------------------

resource "google_cloud_run_v2_job" "this" {
  for_each = {
    tick    = { args = ["scheduler", "--once"], timeout = "55s", retries = 0 }
    migrate = { args = ["migrate"], timeout = "600s", retries = 1 }
  }
  name                = "${local.name}-${each.key}"
  location            = var.region
  deletion_protection = var.deletion_protection

  template {
    task_count  = 1
    parallelism = 1

    template {
      service_account = google_service_account.workload[each.key].email
      timeout         = each.value.timeout
      max_retries     = each.value.retries

      vpc_access {
        egress = "PRIVATE_RANGES_ONLY"

        network_interfaces {
          network    = google_compute_network.this.id
          subnetwork = google_compute_subnetwork.run.id
        }
      }

      volumes {
        name = "redis-ca"

        secret {
          secret = google_secret_manager_secret.this["redis-ca"].secret_id

          items {
            version = "latest"
            path    = "ca.pem"
          }
        }
      }

      containers {
        image = var.image
        args  = each.value.args

        resources {
          limits = {
            cpu    = "1"
            memory = "512Mi"
          }
        }

        dynamic "env" {
          for_each = local.plain_env
          content {
            name  = env.key
            value = env.value
          }
        }

        dynamic "env" {
          for_each = local.secret_env
          content {
            name = env.key
            value_source {
              secret_key_ref {
                secret  = env.value
                version = "latest"
              }
            }
          }
        }

        volume_mounts {
          name       = "redis-ca"
          mount_path = "/secrets/redis-ca"
        }
      }
    }
  }

  depends_on = [google_secret_manager_secret_version.this, google_secret_manager_secret_iam_member.workload]
}

resource "google_cloud_run_v2_job_iam_member" "scheduler_runs_tick" {
  name     = google_cloud_run_v2_job.this["tick"].name
  location = google_cloud_run_v2_job.this["tick"].location
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler.email}"
}

# Every minute, on time, never retried: the next tick is a minute away and a tick is idempotent
# (one row per slot), so a missed or doubled tick can neither lose nor duplicate a run.
resource "google_cloud_scheduler_job" "tick" {
  name             = "${local.name}-tick"
  region           = var.region
  description      = "Ordinaut scheduler tick: runs the ${local.name}-tick Cloud Run job"
  schedule         = "* * * * *"
  time_zone        = "Etc/UTC"
  attempt_deadline = "30s"

  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/${google_cloud_run_v2_job.this["tick"].id}:run"

    oauth_token {
      service_account_email = google_service_account.scheduler.email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [google_cloud_run_v2_job_iam_member.scheduler_runs_tick]
}
