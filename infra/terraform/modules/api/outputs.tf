output "api_url" {
  description = "HTTPS base URL of the API ($default stage: no stage prefix in paths)."
  value       = aws_apigatewayv2_stage.default.invoke_url
}

output "api_id" {
  description = "ID of the HTTP API (dimension of its CloudWatch metrics)."
  value       = aws_apigatewayv2_api.this.id
}

output "stage_name" {
  description = "Name of the stage ($default)."
  value       = aws_apigatewayv2_stage.default.name
}

output "function_name" {
  description = "Name of the API function."
  value       = module.function.function_name
}

output "role_name" {
  description = "Execution role of the API function."
  value       = module.function.role_name
}

output "function" {
  description = "The API function's settings that deploy checks assert on."
  value = {
    name                 = module.function.function_name
    timeout              = module.function.timeout
    reserved_concurrency = module.function.reserved_concurrency
    published            = module.function.published
    alias_arn            = module.function.alias_arn
    alias_invoke_arn     = module.function.alias_invoke_arn
    environment          = module.function.environment
  }
}

output "integration" {
  description = "The Lambda integration: what it invokes and how long API Gateway waits."
  value = {
    uri                  = aws_apigatewayv2_integration.api.integration_uri
    timeout_milliseconds = aws_apigatewayv2_integration.api.timeout_milliseconds
  }
}

output "invoke_permission_qualifier" {
  description = "Alias API Gateway is allowed to invoke."
  value       = aws_lambda_permission.api_gateway.qualifier
}
