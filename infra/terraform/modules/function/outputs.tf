output "function_name" {
  description = "Name of the Lambda function."
  value       = aws_lambda_function.this.function_name
}

output "arn" {
  description = "ARN of the Lambda function."
  value       = aws_lambda_function.this.arn
}

output "invoke_arn" {
  description = "ARN API Gateway uses to invoke the function."
  value       = aws_lambda_function.this.invoke_arn
}

output "role_name" {
  description = "Name of the function's execution role."
  value       = aws_iam_role.this.name
}

output "role_arn" {
  description = "ARN of the function's execution role."
  value       = aws_iam_role.this.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the function."
  value       = aws_cloudwatch_log_group.this.name
}

output "alias_name" {
  description = "Name of the alias every trigger invokes (live)."
  value       = aws_lambda_alias.live.name
}

output "alias_arn" {
  description = "ARN of the live alias: the qualified ARN event source mappings, schedules and permissions use."
  value       = aws_lambda_alias.live.arn
}

output "alias_invoke_arn" {
  description = "ARN API Gateway uses to invoke the live alias."
  value       = aws_lambda_alias.live.invoke_arn
}

output "version" {
  description = "Version this deploy published (the live alias points at it)."
  value       = aws_lambda_function.this.version
}

output "published" {
  description = "Whether every deploy publishes a new version."
  value       = aws_lambda_function.this.publish
}

output "timeout" {
  description = "Invocation time limit in seconds."
  value       = aws_lambda_function.this.timeout
}

output "reserved_concurrency" {
  description = "Reserved concurrent executions, or null when the function reserves none."
  value       = var.reserved_concurrency
}

output "environment" {
  description = "Environment variables of the function (names, ARNs and sizes only: no secret values)."
  value       = var.environment
}
