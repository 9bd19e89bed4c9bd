output "alarm_topic_arn" {
  description = "SNS topic every alarm notifies."
  value       = aws_sns_topic.alarms.arn
}

output "alarm_names" {
  description = "Names of every alarm, by kind."
  value = {
    function_errors    = [for a in aws_cloudwatch_metric_alarm.function_errors : a.alarm_name]
    function_throttles = [for a in aws_cloudwatch_metric_alarm.function_throttles : a.alarm_name]
    dlq_depth          = [for a in aws_cloudwatch_metric_alarm.dlq_depth : a.alarm_name]
    due_work_lag       = aws_cloudwatch_metric_alarm.due_work_lag.alarm_name
    api_5xx            = aws_cloudwatch_metric_alarm.api_5xx.alarm_name
  }
}
