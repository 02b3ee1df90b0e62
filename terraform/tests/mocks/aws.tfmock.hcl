# Values the AWS provider mock returns for computed attributes, shared by the
# test files (mock_provider "aws" { source = "./tests/mocks" }). The provider
# still validates them, so everything that must look like an ARN gets one.

mock_data "aws_partition" {
  defaults = {
    partition  = "aws"
    dns_suffix = "amazonaws.com"
  }
}

mock_data "aws_region" {
  defaults = {
    name = "eu-west-1"
  }
}

mock_data "aws_caller_identity" {
  defaults = {
    account_id = "123456789012"
  }
}

mock_data "aws_subnet" {
  defaults = {
    availability_zone = "eu-west-1a"
  }
}

mock_resource "aws_kms_key" {
  defaults = {
    arn    = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    key_id = "1234abcd-12ab-34cd-56ef-1234567890ab"
  }
}

mock_resource "aws_iam_role" {
  defaults = {
    arn = "arn:aws:iam::123456789012:role/gists-rds-monitoring-20261127000000000000000001"
  }
}

mock_resource "aws_secretsmanager_secret" {
  defaults = {
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gists/rds/master-AbCdEf"
  }
}

mock_resource "aws_db_instance" {
  defaults = {
    address = "db.eu-west-1.rds.amazonaws.com"
  }
}
