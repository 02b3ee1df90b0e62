# One customer-managed key for everything at rest: storage of the primary and
# the replicas, Performance Insights, the master secret and the exported logs.
# Skipped when kms_key_arn gives an existing key.
resource "aws_kms_key" "rds" {
  count = var.kms_key_arn == null ? 1 : 0

  description             = "${var.name}: RDS storage, Performance Insights, master secret and logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # The default key policy: IAM policies of the account decide who uses
        # the key. RDS and Secrets Manager use it on the caller's behalf.
        Sid       = "AccountAdministersKeyThroughIam"
        Effect    = "Allow"
        Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        # CloudWatch Logs is no IAM principal of the account: it needs its own
        # grant, limited to this service's RDS log groups.
        Sid       = "CloudWatchLogsEncryptsRdsLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${data.aws_region.current.name}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:/aws/rds/instance/${var.name}-*"
          }
        }
      },
    ]
  })

  tags = local.instance_tags
}

resource "aws_kms_alias" "rds" {
  count = var.kms_key_arn == null ? 1 : 0

  name          = "alias/${var.name}-rds"
  target_key_id = aws_kms_key.rds[0].key_id
}
