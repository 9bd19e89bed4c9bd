# The VPC: private subnets for the functions, the database, its proxy and Redis; optional NAT for
# egress to the internet; VPC endpoints so AWS API calls stay inside the VPC; and one security
# group per tier, wired so that each tier accepts only the tier that calls it.

data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:only the first az_count zones in name order are used (slice below); a zone AWS adds later cannot enter that set
  state = "available"
}

data "aws_region" "current" {}

locals {
  azs         = slice(data.aws_availability_zones.available.names, 0, var.az_count)
  nat_count   = var.enable_nat_gateway ? (var.single_nat_gateway ? 1 : var.az_count) : 0
  public_tier = var.enable_nat_gateway ? var.az_count : 0
}

resource "aws_vpc" "this" {
  #checkov:skip=CKV2_AWS_11:flow logs are recorded by modules/observability (aws_flow_log.vpc, ALL traffic, KMS-encrypted log group); checkov does not follow the reference across modules
  cidr_block           = var.cidr_block
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = {
    Name = var.name
  }
}

# The default security group is left with no rules, so nothing can use it by accident.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id

  tags = {
    Name = "${var.name}-default-deny"
  }
}

resource "aws_subnet" "private" {
  count             = var.az_count
  vpc_id            = aws_vpc.this.id
  cidr_block        = cidrsubnet(var.cidr_block, 4, count.index)
  availability_zone = local.azs[count.index]

  tags = {
    Name = "${var.name}-private-${local.azs[count.index]}"
    Tier = "private"
  }
}

resource "aws_route_table" "private" {
  count  = var.az_count
  vpc_id = aws_vpc.this.id

  tags = {
    Name = "${var.name}-private-${local.azs[count.index]}"
  }
}

resource "aws_route_table_association" "private" {
  count          = var.az_count
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[count.index].id
}

# Public subnets exist only to hold the NAT gateways; nothing else is placed in them.
resource "aws_subnet" "public" {
  count                   = local.public_tier
  vpc_id                  = aws_vpc.this.id
  cidr_block              = cidrsubnet(var.cidr_block, 8, 240 + count.index)
  availability_zone       = local.azs[count.index]
  map_public_ip_on_launch = false

  tags = {
    Name = "${var.name}-public-${local.azs[count.index]}"
    Tier = "public"
  }
}

resource "aws_internet_gateway" "this" {
  count  = var.enable_nat_gateway ? 1 : 0
  vpc_id = aws_vpc.this.id

  tags = {
    Name = var.name
  }
}

resource "aws_route_table" "public" {
  count  = var.enable_nat_gateway ? 1 : 0
  vpc_id = aws_vpc.this.id

  tags = {
    Name = "${var.name}-public"
  }
}

resource "aws_route" "public_internet" {
  count                  = var.enable_nat_gateway ? 1 : 0
  route_table_id         = aws_route_table.public[0].id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this[0].id
}

resource "aws_route_table_association" "public" {
  count          = local.public_tier
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public[0].id
}

resource "aws_eip" "nat" {
  count  = local.nat_count
  domain = "vpc"

  tags = {
    Name = "${var.name}-nat-${count.index}"
  }

  depends_on = [aws_internet_gateway.this]
}

resource "aws_nat_gateway" "this" {
  count         = local.nat_count
  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = aws_subnet.public[count.index].id

  tags = {
    Name = "${var.name}-${local.azs[count.index]}"
  }
}

resource "aws_route" "private_nat" {
  count                  = local.nat_count > 0 ? var.az_count : 0
  route_table_id         = aws_route_table.private[count.index].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[var.single_nat_gateway ? 0 : count.index].id
}

# --- security groups -----------------------------------------------------------------------

resource "aws_security_group" "functions" {
  #checkov:skip=CKV2_AWS_5:attached to every Lambda function (modules/function vpc_config); checkov does not follow the reference across modules
  name        = "${var.name}-functions"
  description = "Ordinaut Lambda functions: egress to the database proxy, Redis, VPC endpoints and HTTPS"
  vpc_id      = aws_vpc.this.id

  tags = {
    Name = "${var.name}-functions"
  }
}

resource "aws_security_group" "database_proxy" {
  #checkov:skip=CKV2_AWS_5:attached to aws_db_proxy.this in modules/data; checkov does not follow the reference across modules
  name        = "${var.name}-database-proxy"
  description = "RDS Proxy: PostgreSQL from the functions, to the database"
  vpc_id      = aws_vpc.this.id

  tags = {
    Name = "${var.name}-database-proxy"
  }
}

resource "aws_security_group" "database" {
  #checkov:skip=CKV2_AWS_5:attached to aws_db_instance.this in modules/data; checkov does not follow the reference across modules
  name        = "${var.name}-database"
  description = "RDS PostgreSQL: reachable from RDS Proxy only"
  vpc_id      = aws_vpc.this.id

  tags = {
    Name = "${var.name}-database"
  }
}

resource "aws_security_group" "redis" {
  #checkov:skip=CKV2_AWS_5:attached to aws_elasticache_replication_group.this in modules/data; checkov does not follow the reference across modules
  name        = "${var.name}-redis"
  description = "ElastiCache Redis: TLS from the functions only"
  vpc_id      = aws_vpc.this.id

  tags = {
    Name = "${var.name}-redis"
  }
}

resource "aws_security_group" "endpoints" {
  name        = "${var.name}-endpoints"
  description = "Interface VPC endpoints: HTTPS from the functions"
  vpc_id      = aws_vpc.this.id

  tags = {
    Name = "${var.name}-endpoints"
  }
}

resource "aws_vpc_security_group_egress_rule" "functions_to_proxy" {
  security_group_id            = aws_security_group.functions.id
  description                  = "PostgreSQL through RDS Proxy"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.database_proxy.id
}

resource "aws_vpc_security_group_egress_rule" "functions_to_redis" {
  security_group_id            = aws_security_group.functions.id
  description                  = "Redis over TLS"
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
  referenced_security_group_id = aws_security_group.redis.id
}

resource "aws_vpc_security_group_egress_rule" "functions_to_endpoints" {
  security_group_id            = aws_security_group.functions.id
  description                  = "AWS APIs through interface endpoints"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.endpoints.id
}

resource "aws_vpc_security_group_egress_rule" "functions_to_s3" {
  security_group_id = aws_security_group.functions.id
  description       = "S3 through the gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = aws_vpc_endpoint.s3.prefix_list_id
}

# Pipeline HTTP tools call arbitrary HTTPS services; the application's egress guard (no private,
# loopback or metadata addresses) decides which, this rule only allows the protocol.
resource "aws_vpc_security_group_egress_rule" "functions_https_internet" {
  count             = var.enable_nat_gateway ? 1 : 0
  security_group_id = aws_security_group.functions.id
  description       = "HTTPS to the internet through NAT for pipeline HTTP tools"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "proxy_from_functions" {
  security_group_id            = aws_security_group.database_proxy.id
  description                  = "PostgreSQL from the functions"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.functions.id
}

resource "aws_vpc_security_group_egress_rule" "proxy_to_database" {
  security_group_id            = aws_security_group.database_proxy.id
  description                  = "PostgreSQL to the database instance"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.database.id
}

resource "aws_vpc_security_group_ingress_rule" "database_from_proxy" {
  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from RDS Proxy"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.database_proxy.id
}

resource "aws_vpc_security_group_ingress_rule" "redis_from_functions" {
  security_group_id            = aws_security_group.redis.id
  description                  = "Redis over TLS from the functions"
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
  referenced_security_group_id = aws_security_group.functions.id
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_from_functions" {
  security_group_id            = aws_security_group.endpoints.id
  description                  = "HTTPS from the functions"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.functions.id
}

# --- VPC endpoints -------------------------------------------------------------------------

resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${data.aws_region.current.name}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = aws_route_table.private[*].id

  tags = {
    Name = "${var.name}-s3"
  }
}

resource "aws_vpc_endpoint" "interface" {
  for_each            = { for service in var.interface_endpoints : replace(service, ".", "-") => service }
  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${data.aws_region.current.name}.${each.value}"
  vpc_endpoint_type   = "Interface"
  private_dns_enabled = true
  subnet_ids          = aws_subnet.private[*].id
  security_group_ids  = [aws_security_group.endpoints.id]

  tags = {
    Name = "${var.name}-${each.key}"
  }
}
