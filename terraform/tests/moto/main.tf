# A root module for the moto test only: it points the AWS provider at a local
# moto server, builds the network the module expects (a VPC, private subnets
# in three zones, the app's security group) and calls the module with it.
# tests/run.sh applies it, checks the result with boto3, plans again (no drift
# expected) and destroys it.

terraform {
  required_version = ">= 1.11.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # run.sh gives the path (-backend-config=path=...), in a temporary directory.
  backend "local" {}
}

variable "moto_endpoint" {
  description = "URL of the moto server, such as http://127.0.0.1:5000."
  type        = string

  validation {
    condition     = can(regex("^http://127\\.0\\.0\\.1:[0-9]+$", var.moto_endpoint))
    error_message = "moto_endpoint must be http://127.0.0.1:<port>: this module only ever talks to a local moto server."
  }
}

variable "replica_count" {
  description = "Replicas to create."
  type        = number
  default     = 2
}

locals {
  region = "eu-west-1"
  azs    = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
}

provider "aws" {
  region                      = local.region
  access_key                  = "moto-fake-access-key"
  secret_key                  = "moto-fake-secret-key"
  skip_credentials_validation = true
  # Asked of moto's STS (123456789012). Without an account id the provider
  # writes a referenced security group as "<account>/sg-...", a false drift.
  skip_requesting_account_id = false
  skip_metadata_api_check    = true
  skip_region_validation     = true
  # moto answers at once or never: retrying only slows a failure down.
  max_retries = 1

  endpoints {
    cloudwatch     = var.moto_endpoint
    ec2            = var.moto_endpoint
    iam            = var.moto_endpoint
    kms            = var.moto_endpoint
    logs           = var.moto_endpoint
    rds            = var.moto_endpoint
    secretsmanager = var.moto_endpoint
    sns            = var.moto_endpoint
    sts            = var.moto_endpoint
  }
}

resource "aws_vpc" "test" {
  cidr_block = "10.42.0.0/16"
}

resource "aws_subnet" "db" {
  count             = length(local.azs)
  vpc_id            = aws_vpc.test.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(aws_vpc.test.cidr_block, 8, count.index)
}

resource "aws_security_group" "app" {
  name        = "moto-app"
  description = "The app's security group"
  vpc_id      = aws_vpc.test.id
}

# Where the alarms and the RDS events go.
resource "aws_sns_topic" "alerts" {
  name = "moto-db-alerts"
}

module "db" {
  source = "../.."

  name                       = "gists"
  replica_count              = var.replica_count
  vpc_id                     = aws_vpc.test.id
  subnet_ids                 = aws_subnet.db[*].id
  allowed_security_group_ids = [aws_security_group.app.id]
  allowed_cidr_blocks        = ["10.42.200.0/24"]
  alarm_actions              = [aws_sns_topic.alerts.arn]

  # So that the test can destroy what it made, at once.
  deletion_protection         = false
  skip_final_snapshot         = true
  secret_recovery_window_days = 0

  tags = { Environment = "moto-test" }
}

output "app_security_group_id" {
  value = aws_security_group.app.id
}

output "alerts_topic_arn" {
  value = aws_sns_topic.alerts.arn
}

output "subnet_azs" {
  value = aws_subnet.db[*].availability_zone
}

output "db" {
  value = module.db
}
