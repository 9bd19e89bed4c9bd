output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "Private subnets, one per availability zone."
  value       = aws_subnet.private[*].id
}

output "functions_security_group_id" {
  description = "Security group for every Lambda function."
  value       = aws_security_group.functions.id
}

output "database_proxy_security_group_id" {
  description = "Security group of RDS Proxy."
  value       = aws_security_group.database_proxy.id
}

output "database_security_group_id" {
  description = "Security group of the RDS instance."
  value       = aws_security_group.database.id
}

output "redis_security_group_id" {
  description = "Security group of the ElastiCache replication group."
  value       = aws_security_group.redis.id
}

output "nat_public_ips" {
  description = "Public addresses outbound internet traffic leaves from (for allowlists on the far side)."
  value       = aws_eip.nat[*].public_ip
}
