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
    runs_dead_lettered = aws_cloudwatch_metric_alarm.runs_dead_lettered.alarm_name
    runs_failed        = aws_cloudwatch_metric_alarm.runs_failed.alarm_name
    start_lag          = aws_cloudwatch_metric_alarm.start_lag.alarm_name
    queue_age          = [for a in aws_cloudwatch_metric_alarm.queue_age : a.alarm_name]
    dlq_age            = [for a in aws_cloudwatch_metric_alarm.dlq_age : a.alarm_name]
    redis_memory       = [for a in aws_cloudwatch_metric_alarm.redis_memory : a.alarm_name]
    database_cpu       = aws_cloudwatch_metric_alarm.database_cpu.alarm_name
    database_storage   = aws_cloudwatch_metric_alarm.database_storage.alarm_name
    database_conns     = aws_cloudwatch_metric_alarm.database_connections.alarm_name
  }
}

output "alarms" {
  description = "Every alarm (name => namespace, metric, dimensions, actions), for deploy checks."
  value = {
    for a in concat(
      values(aws_cloudwatch_metric_alarm.function_errors),
      values(aws_cloudwatch_metric_alarm.function_throttles),
      values(aws_cloudwatch_metric_alarm.dlq_depth),
      values(aws_cloudwatch_metric_alarm.dlq_age),
      values(aws_cloudwatch_metric_alarm.queue_age),
      values(aws_cloudwatch_metric_alarm.redis_memory),
      [
        aws_cloudwatch_metric_alarm.due_work_lag,
        aws_cloudwatch_metric_alarm.api_5xx,
        aws_cloudwatch_metric_alarm.runs_dead_lettered,
        aws_cloudwatch_metric_alarm.runs_failed,
        aws_cloudwatch_metric_alarm.start_lag,
        aws_cloudwatch_metric_alarm.database_cpu,
        aws_cloudwatch_metric_alarm.database_storage,
        aws_cloudwatch_metric_alarm.database_connections,
      ],
      ) : a.alarm_name => {
      namespace     = a.namespace
      metric_name   = a.metric_name
      dimensions    = a.dimensions
      alarm_actions = a.alarm_actions
    }
  }
}
