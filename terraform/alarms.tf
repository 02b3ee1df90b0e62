# Every instance of the module, the primary first, then the replicas in alias order.
locals {
  instance_identifiers = concat([aws_db_instance.primary.identifier], aws_db_instance.replica[*].identifier)
}

# Replica lag, one alarm per replica, at the app's staleness tolerance: past
# max_staleness_seconds the router stops reading from that replica, so a
# replica that stays there has dropped out of the read pool.
#
# RDS computes ReplicaLag for PostgreSQL as now() - pg_last_xact_replay_timestamp(),
# which also grows while the primary is idle. The Minimum over each minute,
# breaching for replica_lag_evaluation_minutes minutes in a row, ignores that
# sawtooth (any write that replays brings the minute's minimum back down) and
# still fires on a replica that is really behind.
resource "aws_cloudwatch_metric_alarm" "replica_lag" {
  count = var.replica_count

  alarm_name        = "${aws_db_instance.replica[count.index].identifier}-replica-lag"
  alarm_description = "${aws_db_instance.replica[count.index].identifier} (app alias replica${count.index + 1}) stayed more than ${var.max_staleness_seconds}s behind ${aws_db_instance.primary.identifier}, the app's DBROUTING[\"MAX_STALENESS_SECONDS\"]: the router has stopped reading from it."
  namespace         = "AWS/RDS"
  metric_name       = "ReplicaLag"
  dimensions = {
    DBInstanceIdentifier = aws_db_instance.replica[count.index].identifier
  }
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = var.replica_lag_evaluation_minutes
  datapoints_to_alarm = var.replica_lag_evaluation_minutes
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.max_staleness_seconds
  # A replica that reports no lag at all is not replicating, or is down.
  treat_missing_data = "breaching"
  alarm_actions      = var.alarm_actions
  ok_actions         = var.alarm_actions
  tags               = local.instance_tags
}

resource "aws_cloudwatch_metric_alarm" "primary_cpu" {
  alarm_name          = "${aws_db_instance.primary.identifier}-cpu"
  alarm_description   = "${aws_db_instance.primary.identifier}: average CPU above ${var.cpu_alarm_threshold_percent}% for 15 minutes."
  namespace           = "AWS/RDS"
  metric_name         = "CPUUtilization"
  dimensions          = { DBInstanceIdentifier = aws_db_instance.primary.identifier }
  statistic           = "Average"
  period              = 300
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.cpu_alarm_threshold_percent
  treat_missing_data  = "missing"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = local.instance_tags
}

# Free storage of the primary and of each replica (count.index 0 is the
# primary): a replica that runs out stops replaying, and storage autoscaling
# stops at max_allocated_storage.
resource "aws_cloudwatch_metric_alarm" "free_storage" {
  count = 1 + var.replica_count

  alarm_name          = "${local.instance_identifiers[count.index]}-free-storage"
  alarm_description   = "${local.instance_identifiers[count.index]}: less than ${var.free_storage_alarm_threshold_gib} GiB of free storage."
  namespace           = "AWS/RDS"
  metric_name         = "FreeStorageSpace"
  dimensions          = { DBInstanceIdentifier = local.instance_identifiers[count.index] }
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  comparison_operator = "LessThanThreshold"
  threshold           = var.free_storage_alarm_threshold_gib * 1024 * 1024 * 1024
  treat_missing_data  = "missing"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = local.instance_tags
}

moved {
  from = aws_cloudwatch_metric_alarm.primary_free_storage
  to   = aws_cloudwatch_metric_alarm.free_storage[0]
}

# WAL that a replication slot still needs stays on the primary: a replica that
# stopped consuming (or an abandoned logical slot) fills its storage, however
# far storage autoscaling goes.
resource "aws_cloudwatch_metric_alarm" "replication_slot_lag" {
  alarm_name          = "${aws_db_instance.primary.identifier}-replication-slot-lag"
  alarm_description   = "${aws_db_instance.primary.identifier}: a replication slot holds back more than ${var.replication_slot_lag_alarm_threshold_bytes} bytes of WAL; it stays on the primary's storage until the slot's consumer catches up or the slot is dropped."
  namespace           = "AWS/RDS"
  metric_name         = "OldestReplicationSlotLag"
  dimensions          = { DBInstanceIdentifier = aws_db_instance.primary.identifier }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.replication_slot_lag_alarm_threshold_bytes
  treat_missing_data  = "missing"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = local.instance_tags
}

# The primary being unavailable has no CloudWatch metric to alarm on (a stopped
# or failing-over instance publishes nothing): RDS says so in its events. One
# subscription per topic of event_topic_arns (by default alarm_actions; RDS
# events go to SNS topics only) to every instance of the module: the primary
# going away or coming back (availability), a Multi-AZ failover starting and
# ending (failover), an instance failing (failure), a replica's replication
# stopping or erroring (read replica). count, not for_each: a topic made in the
# same apply has no ARN at plan time. An SNS topic encrypted with a KMS key
# needs a key policy that lets events.rds.amazonaws.com use it.
locals {
  event_topic_arns = var.event_topic_arns != null ? var.event_topic_arns : var.alarm_actions
}

resource "aws_db_event_subscription" "instances" {
  count = length(local.event_topic_arns)

  name_prefix      = "${var.name}-db-events-"
  sns_topic        = local.event_topic_arns[count.index]
  source_type      = "db-instance"
  source_ids       = local.instance_identifiers
  event_categories = ["availability", "failover", "failure", "read replica"]
  tags             = local.instance_tags

  lifecycle {
    precondition {
      condition     = can(regex("^arn:aws[a-z-]*:sns:", local.event_topic_arns[count.index]))
      error_message = "RDS sends its events to SNS topics only, and alarm_actions holds another kind of ARN: set event_topic_arns to the SNS topics to notify ([] for none)."
    }
  }
}
