# Plan-level tests of the module with a mocked AWS provider: no network, no
# credentials. Run from terraform/ with `terraform test`.
#
# The mocks' defaults (tests/mocks/aws.tfmock.hcl) are known at plan time with
# override_during = plan. Ids the mock generates itself (security group ids)
# stay unknown until applied: the apply run uses a second mock without
# override_during, whose generated values then stay the same from plan to apply.
mock_provider "aws" {
  override_during = plan
  source          = "./tests/mocks"
}

mock_provider "aws" {
  alias  = "applied"
  source = "./tests/mocks"
}

variables {
  vpc_id = "vpc-0123456789abcdef0"
  subnet_ids = [
    "subnet-0123456789abcdef0",
    "subnet-0123456789abcdef1",
    "subnet-0123456789abcdef2",
  ]
  allowed_security_group_ids = ["sg-0123456789abcdef0"]
}

run "defaults_make_two_replicas_matching_the_primary" {
  command = plan

  assert {
    condition     = length(aws_db_instance.replica) == 2
    error_message = "The default replica_count must make 2 replicas."
  }

  assert {
    condition     = [for r in aws_db_instance.replica : r.identifier] == ["gists-replica1", "gists-replica2"]
    error_message = "Replicas must be named <name>-replica1.. in the order of the app's aliases."
  }

  assert {
    condition     = alltrue([for r in aws_db_instance.replica : r.replicate_source_db == aws_db_instance.primary.identifier])
    error_message = "Every replica must replicate the primary."
  }

  assert {
    condition     = alltrue([for r in aws_db_instance.replica : r.instance_class == aws_db_instance.primary.instance_class])
    error_message = "Every replica must have the primary's instance class."
  }

  assert {
    condition     = aws_db_instance.primary.instance_class == "db.t3.medium"
    error_message = "The default instance class must be db.t3.medium."
  }

  assert {
    condition     = alltrue([for r in aws_db_instance.replica : r.parameter_group_name == aws_db_instance.primary.parameter_group_name])
    error_message = "Every replica must use the primary's parameter group."
  }

  assert {
    condition     = aws_db_instance.primary.parameter_group_name == aws_db_parameter_group.this.name && aws_db_parameter_group.this.family == "postgres17"
    error_message = "The primary must use the module's parameter group, of the engine's major family."
  }

  assert {
    condition     = alltrue([for r in aws_db_instance.replica : r.storage_encrypted && r.kms_key_id == aws_kms_key.rds[0].arn])
    error_message = "Every replica must be encrypted with the module's KMS key."
  }

  assert {
    condition     = aws_db_instance.primary.storage_encrypted && aws_db_instance.primary.kms_key_id == aws_kms_key.rds[0].arn
    error_message = "The primary must be encrypted with the module's KMS key."
  }

  assert {
    condition     = alltrue([for r in concat([aws_db_instance.primary], aws_db_instance.replica) : r.publicly_accessible == false])
    error_message = "Neither the primary nor a replica may be publicly accessible."
  }

  assert {
    condition = alltrue([for r in concat([aws_db_instance.primary], aws_db_instance.replica) :
      r.monitoring_interval == 60 && r.performance_insights_enabled && r.performance_insights_kms_key_id == aws_kms_key.rds[0].arn
    ])
    error_message = "The primary and every replica must have Enhanced Monitoring and encrypted Performance Insights."
  }

  assert {
    condition     = alltrue([for r in aws_db_instance.replica : r.port == aws_db_instance.primary.port && r.port == 5432])
    error_message = "Replicas must listen on the primary's port, 5432."
  }

  assert {
    condition     = length(aws_cloudwatch_metric_alarm.replica_lag) == 2
    error_message = "There must be one replica lag alarm per replica."
  }

  assert {
    condition = alltrue([for i, a in aws_cloudwatch_metric_alarm.replica_lag :
      a.metric_name == "ReplicaLag" && a.namespace == "AWS/RDS" && a.threshold == 5 &&
      a.dimensions["DBInstanceIdentifier"] == aws_db_instance.replica[i].identifier
    ])
    error_message = "Each lag alarm must watch its own replica's ReplicaLag at the app's default staleness tolerance, 5 seconds."
  }

  assert {
    condition     = aws_kms_key.rds[0].enable_key_rotation
    error_message = "The created KMS key must rotate."
  }
}

run "primary_is_hardened" {
  command = plan

  assert {
    condition     = aws_db_instance.primary.backup_retention_period >= 1
    error_message = "The primary needs automated backups: read replicas require them."
  }

  assert {
    condition     = aws_db_instance.primary.password == null && aws_db_instance.primary.manage_master_user_password == null
    error_message = "The master password must not be a plain argument (it is write-only)."
  }

  assert {
    condition     = aws_db_instance.primary.password_wo_version == 1 && aws_secretsmanager_secret_version.master.secret_string_wo_version == 1
    error_message = "The primary's password and the secret must be written by the same password version."
  }

  assert {
    condition     = aws_secretsmanager_secret.master.kms_key_id == aws_kms_key.rds[0].arn
    error_message = "The master secret must be encrypted with the module's KMS key."
  }

  assert {
    condition = (
      aws_db_instance.primary.iam_database_authentication_enabled &&
      aws_db_instance.primary.copy_tags_to_snapshot &&
      aws_db_instance.primary.deletion_protection &&
      aws_db_instance.primary.multi_az &&
      !aws_db_instance.primary.skip_final_snapshot
    )
    error_message = "The primary must have IAM auth, tags copied to snapshots, deletion protection, Multi-AZ and a final snapshot by default."
  }

  assert {
    condition     = toset(aws_db_instance.primary.enabled_cloudwatch_logs_exports) == toset(["postgresql", "upgrade"])
    error_message = "The primary must export its PostgreSQL and upgrade logs."
  }

  assert {
    condition     = length(aws_cloudwatch_log_group.rds) == 6 && alltrue([for g in aws_cloudwatch_log_group.rds : g.kms_key_id == aws_kms_key.rds[0].arn])
    error_message = "Each instance needs its two log groups, encrypted with the module's key."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.primary_cpu.metric_name == "CPUUtilization" && aws_cloudwatch_metric_alarm.primary_cpu.dimensions["DBInstanceIdentifier"] == "gists-primary"
    error_message = "The primary's CPU must be watched."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.free_storage[0].metric_name == "FreeStorageSpace" && aws_cloudwatch_metric_alarm.free_storage[0].dimensions["DBInstanceIdentifier"] == "gists-primary"
    error_message = "The primary's free storage must be watched (the first storage alarm)."
  }

  assert {
    condition = alltrue([for r in aws_vpc_security_group_ingress_rule.from_security_group :
      r.from_port == 5432 && r.to_port == 5432 && r.ip_protocol == "tcp" && r.referenced_security_group_id == "sg-0123456789abcdef0"
    ]) && length(aws_vpc_security_group_ingress_rule.from_security_group) == 1 && length(aws_vpc_security_group_ingress_rule.from_cidr) == 0
    error_message = "The security group must admit 5432/tcp from the app's security group and nothing else."
  }
}

run "no_replicas" {
  command = plan

  variables {
    replica_count = 0
  }

  assert {
    condition     = length(aws_db_instance.replica) == 0 && length(aws_cloudwatch_metric_alarm.replica_lag) == 0
    error_message = "replica_count = 0 must make no replica and no lag alarm."
  }

  assert {
    condition     = output.database_replica_urls == ""
    error_message = "With no replica, DATABASE_REPLICA_URLS must be empty."
  }

  assert {
    condition     = length(aws_cloudwatch_log_group.rds) == 2
    error_message = "Only the primary's log groups must exist without replicas."
  }
}

run "one_replica" {
  command = plan

  variables {
    replica_count = 1
  }

  assert {
    condition     = length(aws_db_instance.replica) == 1 && length(aws_cloudwatch_metric_alarm.replica_lag) == 1
    error_message = "replica_count = 1 must make one replica and one lag alarm."
  }

  assert {
    condition     = output.database_replica_urls == "postgres://db.eu-west-1.rds.amazonaws.com:5432/gists?sslmode=verify-full&sslrootcert=/etc/ssl/certs/rds-global-bundle.pem"
    error_message = "DATABASE_REPLICA_URLS must hold one credential-free URL."
  }
}

run "three_replicas_with_given_key_class_and_cidrs" {
  command = plan

  variables {
    replica_count              = 3
    instance_class             = "db.r6g.large"
    kms_key_arn                = "arn:aws:kms:eu-west-1:123456789012:key/abcd1234-ab12-cd34-ef56-abcdef123456"
    allowed_security_group_ids = []
    allowed_cidr_blocks        = ["10.0.1.0/24", "10.0.2.0/24"]
    max_staleness_seconds      = 2
  }

  assert {
    condition     = length(aws_db_instance.replica) == 3 && length(aws_cloudwatch_metric_alarm.replica_lag) == 3
    error_message = "replica_count = 3 must make three replicas and three lag alarms."
  }

  assert {
    condition     = alltrue([for r in aws_db_instance.replica : r.instance_class == "db.r6g.large"])
    error_message = "Replicas must follow the primary's class when it changes."
  }

  assert {
    condition     = length(aws_kms_key.rds) == 0
    error_message = "No key may be created when kms_key_arn is given."
  }

  assert {
    condition = alltrue([for r in concat([aws_db_instance.primary], aws_db_instance.replica) :
      r.storage_encrypted && r.kms_key_id == var.kms_key_arn && r.performance_insights_kms_key_id == var.kms_key_arn
    ])
    error_message = "The given key must encrypt the primary and every replica."
  }

  assert {
    condition     = alltrue([for a in aws_cloudwatch_metric_alarm.replica_lag : a.threshold == 2])
    error_message = "The lag alarms must follow max_staleness_seconds."
  }

  assert {
    condition = (
      length(aws_vpc_security_group_ingress_rule.from_security_group) == 0 &&
      toset([for r in aws_vpc_security_group_ingress_rule.from_cidr : r.cidr_ipv4]) == toset(["10.0.1.0/24", "10.0.2.0/24"]) &&
      alltrue([for r in aws_vpc_security_group_ingress_rule.from_cidr : r.from_port == 5432 && r.to_port == 5432])
    )
    error_message = "The security group must admit 5432 from exactly the given CIDRs."
  }

  assert {
    condition     = length(split(",", output.database_replica_urls)) == 3 && !strcontains(output.database_replica_urls, "@")
    error_message = "DATABASE_REPLICA_URLS must hold three URLs and no credentials."
  }
}

# Security group ids are only known once applied (by the mock): compare them here.
run "replicas_share_the_primary_security_group" {
  command = apply

  providers = {
    aws = aws.applied
  }

  assert {
    condition     = toset(aws_db_instance.primary.vpc_security_group_ids) == toset([aws_security_group.db.id])
    error_message = "The primary must be in the module's security group only."
  }

  assert {
    condition     = alltrue([for r in aws_db_instance.replica : toset(r.vpc_security_group_ids) == toset(aws_db_instance.primary.vpc_security_group_ids)])
    error_message = "Every replica must have exactly the primary's security groups."
  }

  assert {
    condition     = output.security_group_id == aws_security_group.db.id
    error_message = "The security group output must name the database security group."
  }
}

run "alarm_actions_receive_the_instances_events" {
  command = plan

  variables {
    alarm_actions = [
      "arn:aws:sns:eu-west-1:123456789012:db-alerts",
      "arn:aws:sns:eu-west-1:123456789012:db-pager",
    ]
  }

  assert {
    condition     = length(aws_db_event_subscription.instances) == 2
    error_message = "Each topic of alarm_actions must get one RDS event subscription."
  }

  assert {
    condition = alltrue([for s in aws_db_event_subscription.instances :
      s.source_type == "db-instance"
      && s.source_ids == toset(["gists-primary", "gists-replica1", "gists-replica2"])
      && s.event_categories == toset(["availability", "failover", "failure", "read replica"])
    ])
    error_message = "The subscriptions must cover the primary's availability and failovers and every instance's failures and replication."
  }

  assert {
    condition     = toset([for s in aws_db_event_subscription.instances : s.sns_topic]) == toset(["arn:aws:sns:eu-west-1:123456789012:db-alerts", "arn:aws:sns:eu-west-1:123456789012:db-pager"])
    error_message = "The subscriptions must notify the SNS topics of alarm_actions."
  }
}

run "event_topics_apart_from_alarm_actions" {
  command = plan

  variables {
    alarm_actions    = ["arn:aws:automate:eu-west-1:ec2:recover"]
    event_topic_arns = ["arn:aws:sns:eu-west-1:123456789012:db-events"]
  }

  assert {
    condition     = [for s in aws_db_event_subscription.instances : s.sns_topic] == ["arn:aws:sns:eu-west-1:123456789012:db-events"]
    error_message = "event_topic_arns, when given, must be the topics told of the RDS events."
  }
}

run "no_event_subscription_without_alarm_actions" {
  command = plan

  assert {
    condition     = length(aws_db_event_subscription.instances) == 0
    error_message = "Without alarm_actions, no RDS event subscription may be made."
  }
}

run "tls_verifies_the_pinned_rds_ca" {
  command = plan

  assert {
    condition     = aws_db_instance.primary.ca_cert_identifier == "rds-ca-rsa2048-g1"
    error_message = "The primary's CA must be pinned, by default to rds-ca-rsa2048-g1."
  }

  assert {
    condition     = alltrue([for r in aws_db_instance.replica : r.ca_cert_identifier == aws_db_instance.primary.ca_cert_identifier])
    error_message = "Every replica must have the primary's CA."
  }

  assert {
    condition     = output.database_url == "postgres://db.eu-west-1.rds.amazonaws.com:5432/gists?sslmode=verify-full&sslrootcert=/etc/ssl/certs/rds-global-bundle.pem"
    error_message = "DATABASE_URL must ask for verify-full against the RDS CA bundle at its default path."
  }

  assert {
    condition = alltrue([for u in split(",", output.database_replica_urls) :
      endswith(u, "/gists?sslmode=verify-full&sslrootcert=/etc/ssl/certs/rds-global-bundle.pem")
    ]) && length(split(",", output.database_replica_urls)) == 2
    error_message = "Every replica URL must ask for verify-full against the RDS CA bundle."
  }
}

run "ca_and_bundle_path_are_given" {
  command = plan

  variables {
    ca_cert_identifier = "rds-ca-ecc384-g1"
    ca_bundle_path     = "/opt/app/certs/eu-west-1-bundle.pem"
  }

  assert {
    condition     = alltrue([for r in concat([aws_db_instance.primary], aws_db_instance.replica) : r.ca_cert_identifier == "rds-ca-ecc384-g1"])
    error_message = "ca_cert_identifier must be set on the primary and every replica."
  }

  assert {
    condition = alltrue([for u in concat([output.database_url], split(",", output.database_replica_urls)) :
      endswith(u, "?sslmode=verify-full&sslrootcert=/opt/app/certs/eu-west-1-bundle.pem")
    ])
    error_message = "Every URL must name the given bundle path."
  }
}

run "monitoring_role_trusts_this_account_s_instances_only" {
  command = plan

  assert {
    condition = jsondecode(aws_iam_role.monitoring.assume_role_policy).Statement[0].Condition == {
      StringEquals = { "aws:SourceAccount" = "123456789012" }
      ArnLike = { "aws:SourceArn" = [
        "arn:aws:rds:eu-west-1:123456789012:db:gists-primary",
        "arn:aws:rds:eu-west-1:123456789012:db:gists-replica*",
      ] }
    }
    error_message = "RDS may assume the monitoring role for this account's primary and replicas only."
  }

  assert {
    condition     = jsondecode(aws_iam_role.monitoring.assume_role_policy).Statement[0].Principal == { Service = "monitoring.rds.amazonaws.com" }
    error_message = "The monitoring role must trust Enhanced Monitoring only."
  }
}

run "storage_and_slot_alarms_notify_alarm_actions" {
  command = plan

  variables {
    replica_count                              = 3
    free_storage_alarm_threshold_gib           = 8
    replication_slot_lag_alarm_threshold_bytes = 536870912
    alarm_actions                              = ["arn:aws:sns:eu-west-1:123456789012:db-alerts"]
  }

  assert {
    condition     = [for a in aws_cloudwatch_metric_alarm.free_storage : a.dimensions["DBInstanceIdentifier"]] == ["gists-primary", "gists-replica1", "gists-replica2", "gists-replica3"]
    error_message = "There must be one free storage alarm for the primary and one per replica."
  }

  assert {
    condition = alltrue([for a in aws_cloudwatch_metric_alarm.free_storage :
      a.metric_name == "FreeStorageSpace" && a.namespace == "AWS/RDS" && a.comparison_operator == "LessThanThreshold" &&
      a.threshold == 8 * 1024 * 1024 * 1024 && a.alarm_name == "${a.dimensions["DBInstanceIdentifier"]}-free-storage"
    ])
    error_message = "Each storage alarm must fire below free_storage_alarm_threshold_gib, in bytes, for its own instance."
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.replication_slot_lag.metric_name == "OldestReplicationSlotLag" &&
      aws_cloudwatch_metric_alarm.replication_slot_lag.namespace == "AWS/RDS" &&
      aws_cloudwatch_metric_alarm.replication_slot_lag.dimensions["DBInstanceIdentifier"] == "gists-primary" &&
      length(aws_cloudwatch_metric_alarm.replication_slot_lag.dimensions) == 1 &&
      aws_cloudwatch_metric_alarm.replication_slot_lag.comparison_operator == "GreaterThanThreshold" &&
      aws_cloudwatch_metric_alarm.replication_slot_lag.threshold == 536870912
    )
    error_message = "The primary's OldestReplicationSlotLag must be watched at replication_slot_lag_alarm_threshold_bytes."
  }

  assert {
    condition = alltrue([for a in concat(aws_cloudwatch_metric_alarm.free_storage, [aws_cloudwatch_metric_alarm.replication_slot_lag]) :
      a.alarm_actions == toset(["arn:aws:sns:eu-west-1:123456789012:db-alerts"]) && a.ok_actions == toset(["arn:aws:sns:eu-west-1:123456789012:db-alerts"])
    ])
    error_message = "The storage and slot alarms must notify alarm_actions when they fire and clear."
  }
}

run "slot_lag_alarm_defaults_to_one_gib_and_storage_alarms_follow_replica_count" {
  command = plan

  variables {
    replica_count = 0
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.replication_slot_lag.threshold == 1073741824
    error_message = "The slot lag alarm must fire above 1 GiB by default."
  }

  assert {
    condition     = length(aws_cloudwatch_metric_alarm.free_storage) == 1 && aws_cloudwatch_metric_alarm.free_storage[0].threshold == 5 * 1024 * 1024 * 1024
    error_message = "Without replicas only the primary's storage is watched, below 5 GiB by default."
  }
}
