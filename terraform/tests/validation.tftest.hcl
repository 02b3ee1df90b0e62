# Variable validation: bad input fails at plan time, with a message that says
# what is expected. The mock provider keeps these runs offline.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  vpc_id                     = "vpc-0123456789abcdef0"
  subnet_ids                 = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
  allowed_security_group_ids = ["sg-0123456789abcdef0"]
}

run "negative_replica_count_is_refused" {
  command = plan
  variables {
    replica_count = -1
  }
  expect_failures = [var.replica_count]
}

run "fractional_replica_count_is_refused" {
  command = plan
  variables {
    replica_count = 1.5
  }
  expect_failures = [var.replica_count]
}

run "more_than_15_replicas_is_refused" {
  command = plan
  variables {
    replica_count = 16
  }
  expect_failures = [var.replica_count]
}

run "unknown_instance_class_is_refused" {
  command = plan
  variables {
    instance_class = "db.z9.huge"
  }
  expect_failures = [var.instance_class]
}

run "instance_class_without_db_prefix_is_refused" {
  command = plan
  variables {
    instance_class = "m5.large"
  }
  expect_failures = [var.instance_class]
}

run "micro_instance_class_is_refused" {
  command = plan
  variables {
    instance_class = "db.t3.micro"
  }
  expect_failures = [var.instance_class]
}

run "old_engine_version_is_refused" {
  command = plan
  variables {
    engine_version = "12.19"
  }
  expect_failures = [var.engine_version]
}

run "single_subnet_is_refused" {
  command = plan
  variables {
    subnet_ids = ["subnet-0123456789abcdef0"]
  }
  expect_failures = [var.subnet_ids]
}

run "open_cidr_is_refused" {
  command = plan
  variables {
    allowed_cidr_blocks = ["0.0.0.0/0"]
  }
  expect_failures = [var.allowed_cidr_blocks]
}

run "no_allowed_source_is_refused" {
  command = plan
  variables {
    allowed_security_group_ids = []
    allowed_cidr_blocks        = []
  }
  expect_failures = [var.allowed_cidr_blocks]
}

run "malformed_security_group_id_is_refused" {
  command = plan
  variables {
    allowed_security_group_ids = ["app-sg"]
  }
  expect_failures = [var.allowed_security_group_ids]
}

run "malformed_kms_key_arn_is_refused" {
  command = plan
  variables {
    kms_key_arn = "alias/my-key"
  }
  expect_failures = [var.kms_key_arn]
}

run "zero_backup_retention_is_refused" {
  command = plan
  variables {
    backup_retention_days = 0
  }
  expect_failures = [var.backup_retention_days]
}

run "non_positive_staleness_is_refused" {
  command = plan
  variables {
    max_staleness_seconds = 0
  }
  expect_failures = [var.max_staleness_seconds]
}

run "storage_ceiling_below_allocation_is_refused" {
  command = plan
  variables {
    allocated_storage     = 100
    max_allocated_storage = 50
  }
  expect_failures = [var.max_allocated_storage]
}

run "monitoring_cannot_be_turned_off" {
  command = plan
  variables {
    monitoring_interval = 0
  }
  expect_failures = [var.monitoring_interval]
}

run "bad_name_is_refused" {
  command = plan
  variables {
    name = "Gists_DB"
  }
  expect_failures = [var.name]
}

run "event_topic_that_is_not_an_sns_topic_is_refused" {
  command = plan
  variables {
    event_topic_arns = ["arn:aws:automate:eu-west-1:ec2:recover"]
  }
  expect_failures = [var.event_topic_arns]
}

run "non_sns_alarm_action_without_event_topics_is_refused" {
  command = plan
  variables {
    alarm_actions = ["arn:aws:automate:eu-west-1:ec2:recover"]
  }
  expect_failures = [aws_db_event_subscription.instances]
}

run "expired_or_unknown_ca_is_refused" {
  command = plan
  variables {
    ca_cert_identifier = "rds-ca-2019"
  }
  expect_failures = [var.ca_cert_identifier]
}

run "relative_ca_bundle_path_is_refused" {
  command = plan
  variables {
    ca_bundle_path = "certs/rds-global-bundle.pem"
  }
  expect_failures = [var.ca_bundle_path]
}

run "ca_bundle_path_that_would_break_the_url_is_refused" {
  command = plan
  variables {
    ca_bundle_path = "/etc/ssl/certs/rds bundle.pem&sslmode=disable"
  }
  expect_failures = [var.ca_bundle_path]
}

run "ca_bundle_path_climbing_up_is_refused" {
  command = plan
  variables {
    ca_bundle_path = "/etc/ssl/../../tmp/bundle.pem"
  }
  expect_failures = [var.ca_bundle_path]
}

run "tiny_slot_lag_threshold_is_refused" {
  command = plan
  variables {
    replication_slot_lag_alarm_threshold_bytes = 0
  }
  expect_failures = [var.replication_slot_lag_alarm_threshold_bytes]
}

run "fractional_slot_lag_threshold_is_refused" {
  command = plan
  variables {
    replication_slot_lag_alarm_threshold_bytes = 1073741824.5
  }
  expect_failures = [var.replication_slot_lag_alarm_threshold_bytes]
}
