# The master password never appears in a variable, a plan, the state or an
# output. It is generated during apply and handed, through write-only
# arguments, to RDS (password_wo) and to the secret (secret_string_wo);
# Terraform keeps only their version numbers.
#
# Why not the alternatives:
# - RDS-managed passwords (manage_master_user_password): RDS refuses to create
#   a read replica of an instance that uses them.
# - The AWS provider's generator (ephemeral aws_secretsmanager_random_password):
#   the provider mocks of Terraform 1.11 cannot open ephemeral resources, so the
#   module could not be tested offline; the data source of the same name would
#   store the password in the state.
# uuid() draws 128 bits from Go's crypto/rand (hashicorp/go-uuid), two of them
# make 256 bits in 64 hex characters (nothing RDS or a URL would refuse). It is
# unknown at plan time and evaluated once per apply, so the instance and the
# secret receive the same value; it only takes effect when
# master_password_version changes (or on creation).
locals {
  master_password = sensitive(replace("${uuid()}${uuid()}", "-", ""))
}

resource "aws_secretsmanager_secret" "master" {
  #checkov:skip=CKV2_AWS_57:The master password is rotated by bumping master_password_version (Terraform sets it on RDS and here in one apply). A Secrets Manager rotation Lambda inside the VPC is not built yet (README, "Later").
  name_prefix             = "${var.name}/rds/master-"
  description             = "${var.name}: master user of ${local.primary_id} (username, password, host, port, dbname)"
  kms_key_id              = local.kms_key_arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = local.instance_tags
}

# The same JSON shape as the secrets RDS manages itself, so the usual tools
# (and a rotation function, later) read it as they are.
resource "aws_secretsmanager_secret_version" "master" {
  secret_id = aws_secretsmanager_secret.master.id
  secret_string_wo = jsonencode({
    engine               = "postgres"
    host                 = aws_db_instance.primary.address
    port                 = local.port
    dbname               = var.database_name
    dbInstanceIdentifier = local.primary_id
    username             = var.master_username
    password             = local.master_password
  })
  # Bumped together with the instance's password_wo_version: both take the
  # password generated in that same apply.
  secret_string_wo_version = var.master_password_version

  lifecycle {
    # A new primary is created with a new password: write it here too, in the
    # same apply. (Whatever replaces the secret itself also replaces the
    # primary: both names come from var.name.)
    replace_triggered_by = [aws_db_instance.primary.id]
  }
}
