# The master password never appears in a variable, a plan, the state or an
# output. An ephemeral resource asks Secrets Manager for a random password at
# apply time; write-only arguments hand it to RDS and to the secret, and
# Terraform keeps only their version numbers. RDS-managed master passwords
# (manage_master_user_password) would be simpler, but RDS refuses to create a
# read replica of an instance that uses them.
ephemeral "aws_secretsmanager_random_password" "master" {
  password_length = 40
  # Punctuation is left out so the password can go into a URL unescaped and
  # never contains the characters RDS refuses (/ " @).
  exclude_punctuation = true
}

resource "aws_secretsmanager_secret" "master" {
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
    password             = ephemeral.aws_secretsmanager_random_password.master.random_password
  })
  # Bumped together with the instance's password_wo_version: both take the
  # password generated in that same apply.
  secret_string_wo_version = var.master_password_version
}
