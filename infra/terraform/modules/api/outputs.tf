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
