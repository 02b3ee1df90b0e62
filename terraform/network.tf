resource "aws_db_subnet_group" "this" {
  name        = "${var.name}-db"
  description = "${var.name}: private subnets of the PostgreSQL primary and replicas"
  subnet_ids  = var.subnet_ids
  tags        = local.instance_tags
}

# One security group for the primary and every replica, so they admit exactly
# the same clients. It only opens PostgreSQL, and only to the app.
resource "aws_security_group" "db" {
  name        = "${var.name}-db"
  description = "${var.name}: PostgreSQL ${local.port} from the app only"
  vpc_id      = var.vpc_id
  tags        = merge(local.instance_tags, { Name = "${var.name}-db" })

  # No egress rule: RDS needs none for replication, monitoring or backups,
  # and Terraform removes the default allow-all egress of a new group.
}

# count rather than for_each: the app's security group may be created in the
# same apply, and for_each needs keys known at plan time.
resource "aws_vpc_security_group_ingress_rule" "from_security_group" {
  count = length(var.allowed_security_group_ids)

  security_group_id            = aws_security_group.db.id
  description                  = "PostgreSQL from the app security group"
  referenced_security_group_id = var.allowed_security_group_ids[count.index]
  ip_protocol                  = "tcp"
  from_port                    = local.port
  to_port                      = local.port
  tags                         = local.instance_tags
}

resource "aws_vpc_security_group_ingress_rule" "from_cidr" {
  count = length(var.allowed_cidr_blocks)

  security_group_id = aws_security_group.db.id
  description       = "PostgreSQL from ${var.allowed_cidr_blocks[count.index]}"
  cidr_ipv4         = var.allowed_cidr_blocks[count.index]
  ip_protocol       = "tcp"
  from_port         = local.port
  to_port           = local.port
  tags              = local.instance_tags
}
