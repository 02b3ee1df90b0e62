# No output carries a password. The URLs name host, port and database only;
# the app gets its credentials separately (see README.md, "Credentials").

# verify-full: libpq checks the server's certificate against the RDS CA bundle
# on the app's host and that it names the host of the URL (require would take
# any certificate, a man in the middle's included).
locals {
  url_query = "sslmode=verify-full&sslrootcert=${var.ca_bundle_path}"
}

output "primary_endpoint" {
  description = "host:port of the primary."
  value       = aws_db_instance.primary.endpoint
}

output "primary_address" {
  description = "Host name of the primary."
  value       = aws_db_instance.primary.address
}

output "port" {
  description = "PostgreSQL port of the primary and the replicas."
  value       = aws_db_instance.primary.port
}

output "replica_endpoints" {
  description = "host:port of each replica, in alias order (replica1 first)."
  value       = aws_db_instance.replica[*].endpoint
}

output "replica_identifiers" {
  description = "RDS identifiers of the replicas, in alias order."
  value       = aws_db_instance.replica[*].identifier
}

output "database_url" {
  description = "Value for the app's DATABASE_URL, without credentials."
  value       = "postgres://${aws_db_instance.primary.address}:${aws_db_instance.primary.port}/${var.database_name}?${local.url_query}"
}

output "database_replica_urls" {
  description = "Value for the app's DATABASE_REPLICA_URLS: comma-separated replica URLs without credentials, in alias order (replica1, replica2...). Empty with no replicas."
  value = join(",", [
    for r in aws_db_instance.replica : "postgres://${r.address}:${r.port}/${var.database_name}?${local.url_query}"
  ])
}

output "master_secret_arn" {
  description = "Secrets Manager secret holding the master user's username, password, host, port and dbname."
  value       = aws_secretsmanager_secret.master.arn
}

output "security_group_id" {
  description = "Security group of the primary and the replicas."
  value       = aws_security_group.db.id
}

output "kms_key_arn" {
  description = "KMS key encrypting storage, Performance Insights, the master secret and the logs."
  value       = local.kms_key_arn
}

output "parameter_group_name" {
  description = "Parameter group shared by the primary and the replicas."
  value       = aws_db_parameter_group.this.name
}

output "replica_lag_alarm_names" {
  description = "CloudWatch alarm on ReplicaLag of each replica, in alias order."
  value       = aws_cloudwatch_metric_alarm.replica_lag[*].alarm_name
}

output "event_subscription_names" {
  description = "RDS event subscriptions (the primary's availability and failovers, every instance's failures, the replicas' replication), one per topic of event_topic_arns (by default alarm_actions)."
  value       = aws_db_event_subscription.instances[*].name
}
