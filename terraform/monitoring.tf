# Enhanced Monitoring publishes OS metrics through this role. RDS may assume it
# for this account's own instances only, and only for the module's (the
# confused deputy: another account's instance naming this role's ARN). The
# replicas by a pattern, so that adding one does not change the policy in the
# same apply that creates the replica (IAM takes a moment to propagate).
locals {
  db_arn_prefix = "arn:${data.aws_partition.current.partition}:rds:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:db"
}

resource "aws_iam_role" "monitoring" {
  name_prefix = "${var.name}-rds-monitoring-"
  description = "${var.name}: RDS Enhanced Monitoring"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "monitoring.rds.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = {
        StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id }
        ArnLike      = { "aws:SourceArn" = ["${local.db_arn_prefix}:${local.primary_id}", "${local.db_arn_prefix}:${var.name}-replica*"] }
      }
    }]
  })
  tags = local.instance_tags
}

resource "aws_iam_role_policy_attachment" "monitoring" {
  role       = aws_iam_role.monitoring.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

# The log groups RDS exports to, made first so that they are encrypted with
# the key and expire (RDS would create them unencrypted, kept forever).
resource "aws_cloudwatch_log_group" "rds" {
  for_each = toset(flatten([
    for id in concat([local.primary_id], local.replica_ids) : [
      for log in local.log_exports : "/aws/rds/instance/${id}/${log}"
    ]
  ]))

  name              = each.value
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn
  tags              = local.instance_tags
}
