# The API: an HTTP API whose $default stage and $default route send every request (payload 2.0)
# to the API function's live alias, which runs the FastAPI app through Mangum. The $default stage
# keeps the stage name out of the path, so the app sees the same paths as behind uvicorn.
#
# API Gateway gives up on an integration after integration_timeout_seconds; the function's time
# limit is not longer, and GET /events/stream ends its response after ORDINAUT_SSE_MAX_SECONDS
# (below both) so clients reconnect with Last-Event-ID instead of seeing a 504.

data "aws_iam_policy_document" "api" {
  statement {
    sid       = "ReadRuntimeSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = var.runtime_secret_arns
  }

  # run_now and new due work wake a worker at once instead of waiting for the next tick.
  statement {
    sid       = "WakeWorkers"
    actions   = ["sqs:SendMessage"]
    resources = [var.work_queue_arn]
  }
}

module "function" {
  source = "../function"

  name                 = "${var.name}-api"
  description          = "Ordinaut REST API (FastAPI through Mangum, lifespan off)"
  image_uri            = var.image_uri
  command              = ["functions.api.handler.handler"]
  architecture         = var.architecture
  memory_size          = var.memory_size
  timeout              = var.timeout
  reserved_concurrency = var.reserved_concurrency
  subnet_ids           = var.subnet_ids
  security_group_ids   = [var.security_group_id]
  kms_key_arn          = var.kms_key_arn
  log_retention_days   = var.log_retention_days
  policy_json          = data.aws_iam_policy_document.api.json
  tags                 = { OrdinautMigration = var.migration_marker }

  environment = merge(var.database_connection, {
    ORDINAUT_DATABASE_SECRET_ARN = var.database_secret_arn
    ORDINAUT_REDIS_SECRET_ARN    = var.redis_secret_arn
    ORDINAUT_SECRETS_KEY_ARN     = var.secrets_key_arn
    ORDINAUT_LOG_LEVEL           = var.log_level
    ORDINAUT_PUBLIC_URL          = aws_apigatewayv2_api.this.api_endpoint
    ORDINAUT_DB_POOL_MIN         = "1"
    ORDINAUT_DB_POOL_MAX         = tostring(var.db_pool_max)
    ORDINAUT_HOME                = "/tmp/ordinaut"
    ORDINAUT_SSE_MAX_SECONDS     = tostring(var.sse_max_seconds)
    ORDINAUT_WORK_QUEUE_URL      = var.work_queue_url
    ORDINAUT_WORKER_FANOUT_MAX   = tostring(var.worker_fanout_max)
    ORDINAUT_MAX_RUN_DURATION_S  = tostring(var.max_run_duration_seconds)
    POWERTOOLS_SERVICE_NAME      = "${var.name}-api"
    POWERTOOLS_METRICS_NAMESPACE = "Ordinaut"
  })
}

resource "aws_apigatewayv2_api" "this" {
  name          = var.name
  description   = "Ordinaut REST API"
  protocol_type = "HTTP"
}

resource "aws_apigatewayv2_integration" "api" {
  api_id                 = aws_apigatewayv2_api.this.id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = module.function.alias_invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = var.integration_timeout_seconds * 1000
}

resource "aws_apigatewayv2_route" "default" {
  #checkov:skip=CKV_AWS_309:the application authenticates every route but health with bearer tokens and per-route scopes; an API Gateway authorizer would duplicate it
  api_id    = aws_apigatewayv2_api.this.id
  route_key = "$default"
  target    = "integrations/${aws_apigatewayv2_integration.api.id}"
}

# /metrics stays off the public host: these routes require SigV4-signed requests (IAM), so an
# anonymous request gets 403 before it reaches the function. In Lambda, metrics go out as EMF.
resource "aws_apigatewayv2_route" "metrics" {
  for_each           = toset(["ANY /metrics", "ANY /metrics/{proxy+}"])
  api_id             = aws_apigatewayv2_api.this.id
  route_key          = each.value
  authorization_type = "AWS_IAM"
  target             = "integrations/${aws_apigatewayv2_integration.api.id}"
}

resource "aws_cloudwatch_log_group" "access" {
  name              = "/aws/apigateway/${var.name}/access"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.this.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_rate_limit    = var.throttling_rate_limit
    throttling_burst_limit   = var.throttling_burst_limit
    detailed_metrics_enabled = true
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format = jsonencode({
      requestId        = "$context.requestId"
      ip               = "$context.identity.sourceIp"
      requestTime      = "$context.requestTime"
      httpMethod       = "$context.httpMethod"
      path             = "$context.path"
      routeKey         = "$context.routeKey"
      status           = "$context.status"
      protocol         = "$context.protocol"
      responseLength   = "$context.responseLength"
      latency          = "$context.responseLatency"
      integrationError = "$context.integrationErrorMessage"
    })
  }
}

resource "aws_lambda_permission" "api_gateway" {
  statement_id  = "AllowApiGatewayInvoke"
  action        = "lambda:InvokeFunction"
  function_name = module.function.function_name
  qualifier     = module.function.alias_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/*/*"
}
