# `terraform test` for envs/dev, offline: the aws provider is mocked, so the whole graph is planned
# and applied (in memory) without an account, and the invariants the deployment relies on are
# asserted on the result. Run by tests/deploy/test_terraform_cli.py (`make cloud-check`).

mock_provider "aws" {
  # Data sources whose values flow into JSON, ARNs and names get realistic values; so do the
  # computed ARNs the provider validates. Everything else computed is the mock's random string.
  # Resources whose identity an assertion compares get distinct values below (override_resource).
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
      arn        = "arn:aws:iam::123456789012:user/terraform"
      user_id    = "AIDAEXAMPLE"
    }
  }

  mock_data "aws_region" {
    defaults = {
      name = "eu-west-1"
    }
  }

  mock_data "aws_partition" {
    defaults = {
      partition  = "aws"
      dns_suffix = "amazonaws.com"
    }
  }

  mock_data "aws_availability_zones" {
    defaults = {
      names = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    }
  }

  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }

  # Secrets Manager's GetRandomPassword: letters and digits, as the data sources ask for.
  mock_data "aws_secretsmanager_random_password" {
    defaults = {
      random_password = "Mock0Random0Password0Letters0And0Digits0Only0AbCdEfGhIjKlMnOpQr"
    }
  }

  mock_resource "aws_db_instance" {
    defaults = {
      arn = "arn:aws:rds:eu-west-1:123456789012:db:ordinaut"
      master_user_secret = [{
        secret_arn    = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-0123456789abcdef-AbCdEf"
        kms_key_id    = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
        secret_status = "active"
      }]
    }
  }

  # RDS names a proxy's default target group "default" (validated when a target joins it).
  mock_resource "aws_db_proxy_default_target_group" {
    defaults = {
      name = "default"
    }
  }

  mock_resource "aws_kms_key" {
    defaults = {
      arn    = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
      key_id = "00000000-0000-0000-0000-000000000000"
    }
  }

  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/mock"
    }
  }

  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:eu-west-1:123456789012:log-group:mock"
    }
  }

  mock_resource "aws_sns_topic" {
    defaults = {
      arn = "arn:aws:sns:eu-west-1:123456789012:ordinaut-alarms"
    }
  }

  mock_resource "aws_secretsmanager_secret" {
    defaults = {
      arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ordinaut/mock-AbCdEf"
    }
  }

  mock_resource "aws_cloudwatch_event_bus" {
    defaults = {
      arn = "arn:aws:events:eu-west-1:123456789012:event-bus/ordinaut"
    }
  }

  mock_resource "aws_cloudwatch_event_rule" {
    defaults = {
      arn = "arn:aws:events:eu-west-1:123456789012:rule/ordinaut/ordinaut-events-ingress"
    }
  }

  mock_resource "aws_ecr_repository" {
    defaults = {
      arn            = "arn:aws:ecr:eu-west-1:123456789012:repository/ordinaut"
      repository_url = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ordinaut"
      registry_id    = "123456789012"
    }
  }

  mock_resource "aws_db_proxy" {
    defaults = {
      arn      = "arn:aws:rds:eu-west-1:123456789012:db-proxy:prx-0123456789abcdef0"
      endpoint = "ordinaut.proxy-abcdefghijkl.eu-west-1.rds.amazonaws.com"
    }
  }

  mock_resource "aws_apigatewayv2_api" {
    defaults = {
      arn           = "arn:aws:apigateway:eu-west-1::/apis/abcdef1234"
      execution_arn = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234"
      api_endpoint  = "https://abcdef1234.execute-api.eu-west-1.amazonaws.com"
    }
  }

  mock_resource "aws_lambda_function" {
    defaults = {
      arn           = "arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-mock"
      invoke_arn    = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-mock/invocations"
      qualified_arn = "arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-mock:1"
      version       = "1"
    }
  }

  mock_resource "aws_sqs_queue" {
    defaults = {
      arn = "arn:aws:sqs:eu-west-1:123456789012:ordinaut-mock"
      url = "https://sqs.eu-west-1.amazonaws.com/123456789012/ordinaut-mock"
    }
  }
}

override_resource {
  target = module.workers.aws_sqs_queue.work
  values = {
    arn = "arn:aws:sqs:eu-west-1:123456789012:ordinaut-work"
    id  = "https://sqs.eu-west-1.amazonaws.com/123456789012/ordinaut-work"
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/ordinaut-work"
  }
}

override_resource {
  target = module.workers.aws_sqs_queue.work_dlq
  values = {
    arn = "arn:aws:sqs:eu-west-1:123456789012:ordinaut-work-dlq"
    id  = "https://sqs.eu-west-1.amazonaws.com/123456789012/ordinaut-work-dlq"
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/ordinaut-work-dlq"
  }
}

override_resource {
  target = module.workers.aws_sqs_queue.events
  values = {
    arn = "arn:aws:sqs:eu-west-1:123456789012:ordinaut-events"
    id  = "https://sqs.eu-west-1.amazonaws.com/123456789012/ordinaut-events"
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/ordinaut-events"
  }
}

override_resource {
  target = module.workers.aws_sqs_queue.events_dlq
  values = {
    arn = "arn:aws:sqs:eu-west-1:123456789012:ordinaut-events-dlq"
    id  = "https://sqs.eu-west-1.amazonaws.com/123456789012/ordinaut-events-dlq"
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/ordinaut-events-dlq"
  }
}

override_resource {
  target = module.scheduler.aws_sqs_queue.dlq
  values = {
    arn = "arn:aws:sqs:eu-west-1:123456789012:ordinaut-scheduler-dlq"
    id  = "https://sqs.eu-west-1.amazonaws.com/123456789012/ordinaut-scheduler-dlq"
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/ordinaut-scheduler-dlq"
  }
}

override_resource {
  target = module.api.module.function.aws_lambda_function.this
  values = {
    arn           = "arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-api"
    invoke_arn    = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-api/invocations"
    qualified_arn = "arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-api:7"
    version       = "7"
  }
}

override_resource {
  target = module.api.module.function.aws_lambda_alias.live
  values = {
    arn        = "arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-api:live"
    invoke_arn = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-api:live/invocations"
  }
}

override_resource {
  target = module.scheduler.module.function.aws_lambda_function.this
  values = {
    arn           = "arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-scheduler"
    invoke_arn    = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-scheduler/invocations"
    qualified_arn = "arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-scheduler:7"
    version       = "7"
  }
}

override_resource {
  target = module.scheduler.module.function.aws_lambda_alias.live
  values = {
    arn        = "arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-scheduler:live"
    invoke_arn = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-scheduler:live/invocations"
  }
}

override_resource {
  target = module.workers.module.worker.aws_lambda_function.this
  values = {
    arn           = "arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-worker"
    invoke_arn    = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-worker/invocations"
    qualified_arn = "arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-worker:7"
    version       = "7"
  }
}

override_resource {
  target = module.workers.module.worker.aws_lambda_alias.live
  values = {
    arn        = "arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-worker:live"
    invoke_arn = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-worker:live/invocations"
  }
}

override_resource {
  target = module.workers.module.events.aws_lambda_function.this
  values = {
    arn           = "arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-events"
    invoke_arn    = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-events/invocations"
    qualified_arn = "arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-events:7"
    version       = "7"
  }
}

override_resource {
  target = module.workers.module.events.aws_lambda_alias.live
  values = {
    arn        = "arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-events:live"
    invoke_arn = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-events:live/invocations"
  }
}

override_resource {
  target = module.data.module.migrate.aws_lambda_function.this
  values = {
    arn           = "arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-migrate"
    invoke_arn    = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-migrate/invocations"
    qualified_arn = "arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-migrate:7"
    version       = "7"
  }
}

override_resource {
  target = module.data.module.migrate.aws_lambda_alias.live
  values = {
    arn        = "arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-migrate:live"
    invoke_arn = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:ordinaut-migrate:live/invocations"
  }
}

override_data {
  target = module.data.data.aws_secretsmanager_random_password.secrets_key
  values = {
    random_password = "Mock0Fernet0Key0Of0Fortythree0Letters0Digit"
  }
}

variables {
  image_uri    = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ordinaut-dev:0123456789ab"
  alarm_emails = ["oncall@example.com"]
}

run "image_must_come_from_ecr" {
  command = plan

  variables {
    image_uri = "docker.io/library/ordinaut:latest"
  }

  expect_failures = [var.image_uri]
}

# Everything below is known from the configuration alone, so it is checked on the plan as well.
run "plan" {
  command = plan

  assert {
    condition     = module.scheduler.schedule.expression == "rate(1 minute)"
    error_message = "The tick must run every minute."
  }

  assert {
    condition     = module.scheduler.schedule.flexible_window == "OFF" && module.scheduler.schedule.maximum_retry_attempts == 0
    error_message = "The tick must run on time (flexible window off) and never be retried."
  }

  assert {
    condition     = module.workers.max_run_duration_seconds + module.workers.worker_drain_margin_seconds < module.workers.worker.timeout
    error_message = "The longest run plus the drain margin must fit inside the worker's time limit."
  }
}

run "apply" {
  command = apply

  # --- the worker's time budget ------------------------------------------------------------

  assert {
    condition     = module.workers.max_run_duration_seconds > 0 && module.workers.max_run_duration_seconds + module.workers.worker_drain_margin_seconds < module.workers.worker.timeout
    error_message = "ORDINAUT_MAX_RUN_DURATION_S plus the drain margin must be positive and below the worker's time limit."
  }

  assert {
    condition     = module.workers.worker.environment.ORDINAUT_MAX_RUN_DURATION_S == tostring(module.workers.max_run_duration_seconds) && module.workers.worker.environment.ORDINAUT_DRAIN_MARGIN_S == tostring(module.workers.worker_drain_margin_seconds)
    error_message = "The worker must be told its run budget and drain margin."
  }

  assert {
    condition     = module.api.function.environment.ORDINAUT_MAX_RUN_DURATION_S == module.workers.worker.environment.ORDINAUT_MAX_RUN_DURATION_S
    error_message = "The API checks tasks against the same run budget the worker has."
  }

  assert {
    condition     = module.workers.queues.work.visibility_timeout_seconds >= 6 * module.workers.worker.timeout && module.workers.queues.events.visibility_timeout_seconds >= 6 * module.workers.events.timeout
    error_message = "A queue's visibility timeout must be at least six times its consumer's time limit (AWS's guidance for Lambda event sources)."
  }

  # --- SSE under the API Gateway timeout ---------------------------------------------------

  assert {
    condition     = tonumber(module.api.function.environment.ORDINAUT_SSE_MAX_SECONDS) * 1000 < module.api.integration.timeout_milliseconds
    error_message = "GET /events/stream must end before API Gateway gives up on the integration."
  }

  assert {
    condition     = module.api.function.timeout * 1000 <= module.api.integration.timeout_milliseconds && module.api.integration.timeout_milliseconds <= 30000
    error_message = "The API function must not outlive the integration timeout (at most 30 s on HTTP APIs)."
  }

  # --- queues and dead letters -------------------------------------------------------------

  assert {
    condition = alltrue([
      for role in ["work", "events"] :
      jsondecode(module.workers.queues[role].redrive_policy).deadLetterTargetArn == module.workers.queues["${role}-dlq"].arn
      && jsondecode(module.workers.queues[role].redrive_policy).maxReceiveCount >= 1
    ])
    error_message = "Every queue must redrive to its own dead-letter queue."
  }

  assert {
    condition     = length([for role, q in module.workers.queues : role if !endswith(role, "-dlq")]) == 2 && length([for role, q in module.workers.queues : role if endswith(role, "-dlq")]) == 2
    error_message = "The workers module has the work and events queues, each with a DLQ."
  }

  assert {
    condition     = alltrue([for role in ["work", "events"] : module.workers.queues["${role}-dlq"].message_retention_seconds >= module.workers.queues[role].message_retention_seconds])
    error_message = "A DLQ must keep messages at least as long as its source queue."
  }

  assert {
    condition     = module.scheduler.schedule.dead_letter_arn == module.scheduler.dlq_arn
    error_message = "Undeliverable ticks go to the tick DLQ."
  }

  # --- the tick ----------------------------------------------------------------------------

  assert {
    condition     = module.scheduler.schedule.expression == "rate(1 minute)" && module.scheduler.schedule.flexible_window == "OFF"
    error_message = "The tick must run every minute, on time."
  }

  assert {
    condition     = module.scheduler.schedule.maximum_retry_attempts == 0 && module.scheduler.lambda_retries.maximum_retry_attempts == 0
    error_message = "Neither EventBridge Scheduler nor Lambda may retry a tick."
  }

  assert {
    condition     = module.scheduler.function.timeout < 60
    error_message = "A tick must end before the next one is due."
  }

  # --- events: one path, through the ingest queue ------------------------------------------

  assert {
    condition     = module.workers.event_target_arn == module.workers.queues.events.arn
    error_message = "The EventBridge rule must deliver to the ingest queue, not to the events function."
  }

  assert {
    condition = anytrue([
      for s in jsondecode(module.workers.events_queue_policy).Statement :
      s.Effect == "Allow" && s.Action == "sqs:SendMessage" && s.Principal.Service == "events.amazonaws.com"
      && s.Condition.ArnEquals["aws:SourceArn"] == module.workers.event_rule_arn
    ])
    error_message = "The ingest queue must let EventBridge send, from this deployment's rule only."
  }

  assert {
    condition     = module.workers.event_source_mappings.events.function_response_types == toset(["ReportBatchItemFailures"])
    error_message = "The events function reports partial batch failures."
  }

  assert {
    condition     = module.workers.events.reserved_concurrency == null || try(module.workers.events.reserved_concurrency >= module.workers.event_source_mappings.events.maximum_concurrency, false)
    error_message = "A reservation below the event source's cap would throttle SQS batches into the DLQ."
  }

  assert {
    condition     = module.workers.worker.reserved_concurrency == null || try(module.workers.worker.reserved_concurrency >= module.workers.event_source_mappings.work.maximum_concurrency, false)
    error_message = "A worker reservation below the event source's cap would throttle wake-ups into the DLQ."
  }

  assert {
    condition     = module.workers.event_source_mappings.work.batch_size == 1
    error_message = "One wake-up per worker invocation."
  }

  # --- wake-ups ----------------------------------------------------------------------------

  assert {
    condition = alltrue([
      for env in [module.api.function.environment, module.workers.events.environment, module.scheduler.function.environment] :
      env.ORDINAUT_WORK_QUEUE_URL == module.workers.work_queue_url
    ])
    error_message = "The API, the events function and the tick wake workers through the work queue."
  }

  # --- credentials -------------------------------------------------------------------------

  assert {
    condition     = module.data.database_proxy_auth_secret_arn == module.data.database_secret_arn
    error_message = "RDS Proxy authenticates with the RDS-managed master secret, which exists before the proxy."
  }

  assert {
    condition = alltrue([
      for env in [module.api.function.environment, module.workers.worker.environment, module.workers.events.environment, module.scheduler.function.environment, module.data.migrate_function.environment] :
      env.ORDINAUT_DATABASE_SECRET_ARN == module.data.database_secret_arn
      && env.ORDINAUT_DATABASE_HOST == module.data.database_proxy_endpoint
      && env.ORDINAUT_DATABASE_PORT == "5432" && env.ORDINAUT_DATABASE_NAME == "ordinaut" && env.ORDINAUT_DATABASE_SSLMODE == "require"
      && env.ORDINAUT_REDIS_SECRET_ARN == module.data.redis_secret_arn
      && env.ORDINAUT_SECRETS_KEY_ARN == module.data.secrets_key_arn
    ])
    error_message = "Every function reads the same secrets and connects through RDS Proxy."
  }

  assert {
    condition = alltrue(flatten([
      for env in [module.api.function.environment, module.workers.worker.environment, module.workers.events.environment, module.scheduler.function.environment, module.data.migrate_function.environment] : [
        for name, value in env :
        !contains(["ORDINAUT_DATABASE_URL", "ORDINAUT_REDIS_URL", "ORDINAUT_SECRETS_KEY"], name)
        && (endswith(name, "_ARN") || !can(regex("(?i)password|auth_token|secret", name)))
        && !strcontains(value, "Mock0Random0Password") && !strcontains(value, "Mock0Fernet0Key")
      ]
    ]))
    error_message = "No function environment carries a secret value: only ARNs."
  }

  # --- published versions behind the live alias --------------------------------------------

  assert {
    condition = alltrue([
      for f in [module.api.function, module.workers.worker, module.workers.events, module.scheduler.function, module.data.migrate_function] :
      f.published && endswith(f.alias_arn, ":live")
    ])
    error_message = "Every function publishes a version behind the live alias."
  }

  assert {
    condition     = module.workers.event_source_mappings.work.function_name == module.workers.worker.alias_arn && module.workers.event_source_mappings.events.function_name == module.workers.events.alias_arn
    error_message = "The SQS event source mappings invoke the live aliases."
  }

  assert {
    condition     = module.api.integration.uri == module.api.function.alias_invoke_arn && module.api.invoke_permission_qualifier == "live"
    error_message = "API Gateway invokes (and may invoke) the API's live alias."
  }

  assert {
    condition     = module.scheduler.schedule.target_arn == module.scheduler.function.alias_arn && module.scheduler.lambda_retries.qualifier == "live"
    error_message = "The tick schedule invokes the scheduler's live alias."
  }

  assert {
    condition     = module.data.migration_invocation_qualifier == "live"
    error_message = "The deploy's migration runs the version this deploy published."
  }

  # --- image repository --------------------------------------------------------------------

  assert {
    condition     = module.registry.image_tag_mutability == "IMMUTABLE" && module.registry.scan_on_push
    error_message = "The image repository has immutable, scanned tags."
  }

  assert {
    condition = (
      anytrue([for r in jsondecode(module.registry.lifecycle_policy).rules : r.selection.tagStatus == "untagged" && r.action.type == "expire"])
      && anytrue([for r in jsondecode(module.registry.lifecycle_policy).rules : r.selection.countType == "imageCountMoreThan" && r.selection.countNumber >= 5 && r.action.type == "expire"])
    )
    error_message = "The lifecycle policy expires untagged images and keeps a bounded number of tagged ones."
  }

  # --- alarms ------------------------------------------------------------------------------

  assert {
    condition = alltrue([
      for alarm in values(module.observability.alarms) : alarm.alarm_actions == toset([module.observability.alarm_topic_arn])
    ])
    error_message = "Every alarm notifies the alarm topic."
  }

  assert {
    condition = alltrue([
      for metric in ["Errors", "Throttles"] : length([
        for alarm in values(module.observability.alarms) : alarm if alarm.metric_name == metric
      ]) == 5
    ])
    error_message = "Every function (api, scheduler, worker, events, migrate) has an Errors and a Throttles alarm."
  }

  assert {
    condition = alltrue([
      for metric in ["RunsDeadLettered", "RunsFailed", "StartLagMs"] : anytrue([
        for alarm in values(module.observability.alarms) :
        alarm.namespace == "Ordinaut" && alarm.metric_name == metric && alarm.dimensions == tomap({ service = module.workers.worker.environment.POWERTOOLS_SERVICE_NAME })
      ])
    ])
    error_message = "Dead-lettered runs, failed runs and start lag are alarmed on the worker's EMF metrics."
  }

  assert {
    condition = alltrue([
      for queue in [module.workers.queues.work.name, module.workers.queues.events.name, module.workers.queues.work-dlq.name, module.workers.queues.events-dlq.name, module.scheduler.dlq_name] : anytrue([
        for alarm in values(module.observability.alarms) :
        alarm.namespace == "AWS/SQS" && alarm.metric_name == "ApproximateAgeOfOldestMessage" && alarm.dimensions == tomap({ QueueName = queue })
      ])
    ])
    error_message = "Every queue has an age-of-oldest-message alarm."
  }

  assert {
    condition = alltrue([
      for queue in [module.workers.queues.work-dlq.name, module.workers.queues.events-dlq.name, module.scheduler.dlq_name] : anytrue([
        for alarm in values(module.observability.alarms) :
        alarm.metric_name == "ApproximateNumberOfMessagesVisible" && alarm.dimensions == tomap({ QueueName = queue })
      ])
    ])
    error_message = "Every DLQ has a depth alarm."
  }

  assert {
    condition = alltrue([
      for node in module.data.redis_node_ids : anytrue([
        for alarm in values(module.observability.alarms) :
        alarm.namespace == "AWS/ElastiCache" && alarm.metric_name == "DatabaseMemoryUsagePercentage" && alarm.dimensions == tomap({ CacheClusterId = node })
      ])
    ])
    error_message = "Every Redis node has a memory alarm."
  }

  assert {
    condition = alltrue([
      for metric in ["CPUUtilization", "FreeStorageSpace", "DatabaseConnections"] : anytrue([
        for alarm in values(module.observability.alarms) :
        alarm.namespace == "AWS/RDS" && alarm.metric_name == metric && alarm.dimensions == tomap({ DBInstanceIdentifier = module.data.database_instance_id })
      ])
    ])
    error_message = "The database has CPU, free storage and connection alarms."
  }

  assert {
    condition = anytrue([
      for alarm in values(module.observability.alarms) :
      alarm.namespace == "Ordinaut" && alarm.metric_name == "DueWorkLagSeconds" && alarm.dimensions == tomap({ service = module.scheduler.function.environment.POWERTOOLS_SERVICE_NAME })
    ])
    error_message = "The due-work lag alarm watches the metric the tick emits."
  }
}

# dev runs in a new account: nothing reserves concurrency.
run "dev_reserves_no_concurrency" {
  command = apply

  assert {
    condition = alltrue([
      for f in [module.api.function, module.workers.worker, module.workers.events, module.scheduler.function, module.data.migrate_function] :
      f.reserved_concurrency == null
    ])
    error_message = "dev must reserve no concurrency: a new account's limit (often 10) admits none."
  }
}
