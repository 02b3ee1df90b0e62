# One parameter group for the primary and the replicas: a replica that
# replays WAL under other settings than its source can behave differently
# (memory, timeouts), and the app routes reads on the assumption it doesn't.
resource "aws_db_parameter_group" "this" {
  # The major is in the name so a major upgrade creates the new group first.
  name        = "${var.name}-postgres${local.engine_major}"
  family      = "postgres${local.engine_major}"
  description = "${var.name}: PostgreSQL ${local.engine_major}, primary and replicas"

  parameter {
    # Clients must use TLS: the URLs in the outputs ask for sslmode=verify-full.
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_connections"
    value = "1"
  }

  parameter {
    name  = "log_disconnections"
    value = "1"
  }

  tags = local.instance_tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_db_instance" "primary" {
  identifier     = local.primary_id
  engine         = "postgres"
  engine_version = var.engine_version
  # The single source of the instance class: the replicas read it from here.
  instance_class = var.instance_class

  db_name  = var.database_name
  username = var.master_username
  # Write-only: sent to RDS, never stored. See secrets.tf.
  password_wo         = local.master_password
  password_wo_version = var.master_password_version
  port                = local.port

  allocated_storage     = var.allocated_storage
  max_allocated_storage = var.max_allocated_storage
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = local.kms_key_arn

  # Pinned: the app verifies the server's certificate against this CA's bundle.
  ca_cert_identifier = var.ca_cert_identifier

  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [aws_security_group.db.id]
  parameter_group_name   = aws_db_parameter_group.this.name
  publicly_accessible    = false
  multi_az               = var.multi_az
  # A Multi-AZ primary gets its zones from RDS; a single-AZ one takes the
  # first zone, and the replicas start from the next one.
  availability_zone = var.multi_az ? null : local.azs[0]

  # Read replicas need automated backups on their source.
  backup_retention_period   = var.backup_retention_days
  backup_window             = "02:00-03:00"
  maintenance_window        = "sun:03:30-sun:04:30"
  copy_tags_to_snapshot     = true
  deletion_protection       = var.deletion_protection
  skip_final_snapshot       = var.skip_final_snapshot
  final_snapshot_identifier = var.skip_final_snapshot ? null : "${local.primary_id}-final"
  delete_automated_backups  = false

  auto_minor_version_upgrade          = true
  iam_database_authentication_enabled = true
  enabled_cloudwatch_logs_exports     = local.log_exports

  monitoring_interval                   = var.monitoring_interval
  monitoring_role_arn                   = aws_iam_role.monitoring.arn
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = local.kms_key_arn
  performance_insights_retention_period = 7

  tags = merge(local.instance_tags, { Role = "primary" })

  depends_on = [
    aws_iam_role_policy_attachment.monitoring,
    aws_cloudwatch_log_group.rds,
  ]
}

# Each replica takes from the primary, not from the variables, everything that
# must match it: class, security groups, parameter group, CA, key, port. Changing
# the primary changes them all in the same plan.
resource "aws_db_instance" "replica" {
  #checkov:skip=CKV_AWS_157:Replicas are single-AZ on purpose, each in another zone: a failed replica costs reads nothing (the router reads from the others or the primary) and RDS rebuilds it; Multi-AZ replicas would double their cost for no availability the app needs.
  count = var.replica_count

  identifier = local.replica_ids[count.index]
  # Same region: the identifier, and no db_subnet_group_name (RDS refuses one
  # for a same-region replica; it lands in the primary's subnet group).
  replicate_source_db = aws_db_instance.primary.identifier
  instance_class      = aws_db_instance.primary.instance_class

  storage_type          = aws_db_instance.primary.storage_type
  max_allocated_storage = var.max_allocated_storage
  storage_encrypted     = true
  kms_key_id            = aws_db_instance.primary.kms_key_id

  vpc_security_group_ids = aws_db_instance.primary.vpc_security_group_ids
  parameter_group_name   = aws_db_instance.primary.parameter_group_name
  ca_cert_identifier     = aws_db_instance.primary.ca_cert_identifier
  port                   = aws_db_instance.primary.port
  publicly_accessible    = false
  # Spread over the subnets' zones, starting after the primary's.
  availability_zone = local.azs[(count.index + 1) % length(local.azs)]
  multi_az          = false

  # RDS takes no final snapshot of a read replica; it is rebuilt from the primary.
  skip_final_snapshot   = true
  copy_tags_to_snapshot = true
  deletion_protection   = var.deletion_protection

  auto_minor_version_upgrade          = true
  iam_database_authentication_enabled = true
  enabled_cloudwatch_logs_exports     = local.log_exports

  monitoring_interval                   = var.monitoring_interval
  monitoring_role_arn                   = aws_iam_role.monitoring.arn
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_db_instance.primary.performance_insights_kms_key_id
  performance_insights_retention_period = 7

  tags = merge(local.instance_tags, { Role = "replica", AppAlias = "replica${count.index + 1}" })

  depends_on = [aws_cloudwatch_log_group.rds]
}
