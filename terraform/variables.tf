# ---------------------------------------------------------------------------
# Naming and sizing
# ---------------------------------------------------------------------------

variable "name" {
  description = "Prefix of every resource name: the primary is <name>-primary, the replicas <name>-replica1, <name>-replica2... (the app's aliases replica1, replica2...)."
  type        = string
  default     = "gists"

  validation {
    # 20 characters keeps every derived name inside AWS limits (IAM name_prefix: 38).
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name)) && !strcontains(var.name, "--")
    error_message = "name must be 3 to 20 characters: lowercase letters, digits and single hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "replica_count" {
  description = "Number of read replicas of the primary. They become the app's aliases replica1..replicaN through the database_replica_urls output."
  type        = number
  default     = 2

  validation {
    # RDS for PostgreSQL allows at most 15 read replicas per source instance.
    condition     = var.replica_count >= 0 && var.replica_count <= 15 && floor(var.replica_count) == var.replica_count
    error_message = "replica_count must be a whole number from 0 to 15 (RDS for PostgreSQL allows at most 15 read replicas per source)."
  }
}

variable "instance_class" {
  description = "DB instance class of the primary. The replicas take it from the primary, never from a second value, so they always match."
  type        = string
  default     = "db.t3.medium"

  validation {
    # An allow-list rather than a loose pattern: a typo fails at plan time, not
    # after minutes of CreateDBInstance. micro and small are left out on purpose:
    # too small to carry replication plus the app.
    condition = can(regex(
      "^db\\.(t3|t4g|m5|m5d|m6g|m6gd|m6i|m6id|m6in|m7g|m7gd|m7i|m8g|r5|r5b|r5d|r6g|r6gd|r6i|r6id|r6in|r7g|r7gd|r7i|r8g|x2g)\\.(medium|large|xlarge|[1-9][0-9]?xlarge)$",
      var.instance_class
    ))
    error_message = "instance_class must be an RDS for PostgreSQL class such as db.t3.medium, db.m6g.large or db.r7g.2xlarge (families t3, t4g, m5/m6/m7/m8, r5/r6/r7/r8, x2g; size medium or larger)."
  }
}

variable "engine_version" {
  description = "PostgreSQL engine version of the primary (replicas follow it): a major (\"17\", RDS picks the default minor) or major.minor (\"17.6\"). The parameter group family is derived from the major."
  type        = string
  default     = "17"

  validation {
    condition     = can(regex("^(1[3-9]|[2-9][0-9])(\\.[0-9]+)?$", var.engine_version))
    error_message = "engine_version must be a PostgreSQL major (13 or later) optionally followed by a minor, such as \"17\" or \"16.8\"."
  }
}

variable "allocated_storage" {
  description = "Initial storage of the primary in GiB (gp3). Replicas start with the primary's storage."
  type        = number
  default     = 50

  validation {
    condition     = var.allocated_storage >= 20 && var.allocated_storage <= 65536 && floor(var.allocated_storage) == var.allocated_storage
    error_message = "allocated_storage must be a whole number of GiB from 20 to 65536."
  }
}

variable "max_allocated_storage" {
  description = "Upper bound in GiB for RDS storage autoscaling, on the primary and on each replica."
  type        = number
  default     = 200

  validation {
    condition     = var.max_allocated_storage >= var.allocated_storage && var.max_allocated_storage <= 65536
    error_message = "max_allocated_storage must be at least allocated_storage and at most 65536 GiB."
  }
}

variable "database_name" {
  description = "Name of the database created on the primary; the replicas carry the same database, so every URL in the outputs names it."
  type        = string
  default     = "gists"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.database_name))
    error_message = "database_name must start with a lowercase letter and hold only lowercase letters, digits and underscores (at most 63 characters)."
  }
}

variable "master_username" {
  description = "Master user of the primary. Its password is generated at apply time and only ever written to Secrets Manager (see master_secret_arn)."
  type        = string
  default     = "gists_admin"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.master_username)) && !contains(["admin", "postgres", "rdsadmin", "root", "user"], var.master_username)
    error_message = "master_username must start with a lowercase letter, hold only lowercase letters, digits and underscores, and not be a reserved name (admin, postgres, rdsadmin, root, user)."
  }
}

variable "master_password_version" {
  description = "Bump to rotate the master password: a new one is generated, set on the primary and written to the secret in the same apply."
  type        = number
  default     = 1

  validation {
    condition     = var.master_password_version >= 1 && floor(var.master_password_version) == var.master_password_version
    error_message = "master_password_version must be a whole number, 1 or more."
  }
}

# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------

variable "vpc_id" {
  description = "VPC of the database security group."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id must be a VPC id such as vpc-0123456789abcdef0."
  }
}

variable "subnet_ids" {
  description = "Private subnets of the DB subnet group, in at least two availability zones. Replicas are spread over their zones."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2 && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "subnet_ids must list at least two subnet ids (subnet-...), in two or more availability zones."
  }
}

variable "allowed_security_group_ids" {
  description = "Security groups (the app's) allowed to connect to PostgreSQL on the primary and the replicas."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.allowed_security_group_ids : can(regex("^sg-[0-9a-f]{8,17}$", s))])
    error_message = "allowed_security_group_ids must hold security group ids such as sg-0123456789abcdef0."
  }
}

variable "allowed_cidr_blocks" {
  description = "IPv4 CIDR blocks allowed to connect to PostgreSQL, for clients without a security group of their own. Prefer allowed_security_group_ids."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.allowed_cidr_blocks : can(cidrnetmask(c)) && !endswith(c, "/0")])
    error_message = "allowed_cidr_blocks must hold IPv4 CIDR blocks such as 10.0.1.0/24; a /0 (the whole internet) is refused."
  }

  validation {
    # Without a source the security group would admit nobody: the database would be unreachable.
    condition     = length(var.allowed_cidr_blocks) + length(var.allowed_security_group_ids) > 0
    error_message = "Give the app's security group in allowed_security_group_ids or its CIDR blocks in allowed_cidr_blocks: at least one source must be allowed."
  }
}

# ---------------------------------------------------------------------------
# Availability, protection, encryption
# ---------------------------------------------------------------------------

variable "multi_az" {
  description = "Run the primary as a Multi-AZ deployment (synchronous standby for failover). Replicas are single-AZ, each in its own zone."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Refuse to delete the primary and the replicas (turn off before a destroy)."
  type        = bool
  default     = true
}

variable "skip_final_snapshot" {
  description = "Delete the primary without a final snapshot. Leave false outside tests; replicas never take one (RDS does not allow it)."
  type        = bool
  default     = false
}

variable "backup_retention_days" {
  description = "Days of automated backups of the primary. Read replicas require automated backups on their source, so 0 is refused."
  type        = number
  default     = 7

  validation {
    condition     = var.backup_retention_days >= 1 && var.backup_retention_days <= 35 && floor(var.backup_retention_days) == var.backup_retention_days
    error_message = "backup_retention_days must be a whole number from 1 to 35: read replicas need automated backups on the primary."
  }
}

variable "kms_key_arn" {
  description = "ARN of an existing customer-managed KMS key for storage, Performance Insights, the master secret and the log groups. Null creates one. A given key's policy must let CloudWatch Logs use it."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-fA-F-]{36}$|^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/mrk-[0-9a-f]{32}$", var.kms_key_arn))
    error_message = "kms_key_arn must be null (a key is created) or a KMS key ARN such as arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab."
  }
}

variable "ca_cert_identifier" {
  description = "RDS certificate authority that signs the server certificate of the primary and of every replica, pinned so that RDS never swaps it under the app. The app verifies it (sslmode=verify-full) against the bundle at ca_bundle_path."
  type        = string
  default     = "rds-ca-rsa2048-g1"

  validation {
    # The RDS CAs of today (rds-ca-2019 expired in August 2024).
    condition     = contains(["rds-ca-rsa2048-g1", "rds-ca-rsa4096-g1", "rds-ca-ecc384-g1"], var.ca_cert_identifier)
    error_message = "ca_cert_identifier must be an RDS certificate authority: rds-ca-rsa2048-g1, rds-ca-rsa4096-g1 or rds-ca-ecc384-g1."
  }
}

variable "ca_bundle_path" {
  description = "Path, on the app's hosts, of the RDS CA bundle (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem): the URLs in the outputs ask libpq to verify the server's certificate and host name against it (sslmode=verify-full&sslrootcert=<this path>)."
  type        = string
  default     = "/etc/ssl/certs/rds-global-bundle.pem"

  validation {
    # It goes into a URL's query as is: no character that would need escaping there.
    condition     = can(regex("^(/[A-Za-z0-9._-]+)+$", var.ca_bundle_path)) && !strcontains(var.ca_bundle_path, "/..")
    error_message = "ca_bundle_path must be an absolute path made of letters, digits, '.', '_', '-' and '/', such as /etc/ssl/certs/rds-global-bundle.pem (no '..')."
  }
}

variable "secret_recovery_window_days" {
  description = "Days Secrets Manager keeps the master secret after deletion (0 deletes it at once, for tests)."
  type        = number
  default     = 30

  validation {
    condition     = var.secret_recovery_window_days == 0 || (var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30)
    error_message = "secret_recovery_window_days must be 0 or from 7 to 30."
  }
}

# ---------------------------------------------------------------------------
# Monitoring
# ---------------------------------------------------------------------------

variable "monitoring_interval" {
  description = "Enhanced Monitoring interval in seconds, on the primary and the replicas."
  type        = number
  default     = 60

  validation {
    condition     = contains([1, 5, 10, 15, 30, 60], var.monitoring_interval)
    error_message = "monitoring_interval must be one of 1, 5, 10, 15, 30 or 60 seconds (Enhanced Monitoring stays on)."
  }
}

variable "log_retention_days" {
  description = "Retention of the exported PostgreSQL logs in CloudWatch Logs."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention value: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."
  }
}

variable "max_staleness_seconds" {
  description = "Replica lag alarm threshold in seconds. Keep it equal to the app's DBROUTING[\"MAX_STALENESS_SECONDS\"] (5 by default): past it the router stops reading from that replica."
  type        = number
  default     = 5

  validation {
    condition     = var.max_staleness_seconds > 0 && var.max_staleness_seconds <= 3600
    error_message = "max_staleness_seconds must be more than 0 and at most 3600 seconds."
  }
}

variable "replica_lag_evaluation_minutes" {
  description = "Consecutive minutes a replica must stay behind by more than max_staleness_seconds before its lag alarm fires."
  type        = number
  default     = 5

  validation {
    condition     = var.replica_lag_evaluation_minutes >= 1 && var.replica_lag_evaluation_minutes <= 60 && floor(var.replica_lag_evaluation_minutes) == var.replica_lag_evaluation_minutes
    error_message = "replica_lag_evaluation_minutes must be a whole number from 1 to 60."
  }
}

variable "cpu_alarm_threshold_percent" {
  description = "The primary's CPU alarm fires when its average CPU stays above this for 15 minutes."
  type        = number
  default     = 80

  validation {
    condition     = var.cpu_alarm_threshold_percent > 0 && var.cpu_alarm_threshold_percent <= 100
    error_message = "cpu_alarm_threshold_percent must be more than 0 and at most 100."
  }
}

variable "free_storage_alarm_threshold_gib" {
  description = "The storage alarm of the primary and of each replica fires when its free storage falls below this many GiB."
  type        = number
  default     = 5

  validation {
    condition     = var.free_storage_alarm_threshold_gib > 0
    error_message = "free_storage_alarm_threshold_gib must be more than 0."
  }
}

variable "replication_slot_lag_alarm_threshold_bytes" {
  description = "The primary's OldestReplicationSlotLag alarm fires when a replication slot (a read replica's, or logical replication's) holds back more than this many bytes of WAL for 10 minutes: WAL a slot holds stays on the primary's storage."
  type        = number
  default     = 1073741824

  validation {
    condition     = var.replication_slot_lag_alarm_threshold_bytes >= 1048576 && floor(var.replication_slot_lag_alarm_threshold_bytes) == var.replication_slot_lag_alarm_threshold_bytes
    error_message = "replication_slot_lag_alarm_threshold_bytes must be a whole number of bytes, at least 1048576 (1 MiB)."
  }
}

variable "alarm_actions" {
  description = "ARNs notified when an alarm fires or clears (SNS topics, typically). Empty: the alarms only change state."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.alarm_actions : can(regex("^arn:aws[a-z-]*:", a))])
    error_message = "alarm_actions must hold ARNs such as arn:aws:sns:eu-west-1:123456789012:db-alerts."
  }
}

variable "event_topic_arns" {
  description = "SNS topics told of the RDS events of every instance (availability, failover, failure, read replica): the primary being unavailable has no metric to alarm on. null: alarm_actions (which must then be SNS topics); []: none."
  type        = list(string)
  default     = null

  validation {
    condition     = var.event_topic_arns == null || alltrue([for a in coalesce(var.event_topic_arns, []) : can(regex("^arn:aws[a-z-]*:sns:", a))])
    error_message = "event_topic_arns must hold SNS topic ARNs (RDS sends its events to SNS only)."
  }
}

variable "tags" {
  description = "Tags added to every resource (and copied to the primary's snapshots)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.tags) : !startswith(lower(k), "aws:")])
    error_message = "tags must not use the reserved aws: prefix."
  }
}
