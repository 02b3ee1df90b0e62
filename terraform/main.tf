data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

# The zone of each subnet, to spread the replicas over them. count, not
# for_each: the ids may only be known at apply (subnets made in the same run).
data "aws_subnet" "db" {
  count = length(var.subnet_ids)
  id    = var.subnet_ids[count.index]
}

locals {
  port          = 5432
  engine_major  = split(".", var.engine_version)[0]
  azs           = sort(distinct([for s in data.aws_subnet.db : s.availability_zone]))
  primary_id    = "${var.name}-primary"
  replica_ids   = [for i in range(var.replica_count) : "${var.name}-replica${i + 1}"]
  kms_key_arn   = var.kms_key_arn != null ? var.kms_key_arn : aws_kms_key.rds[0].arn
  log_exports   = ["postgresql", "upgrade"]
  instance_tags = merge(var.tags, { ManagedBy = "terraform", Service = var.name })
}
