# Terraform 1.11 is the first release with write-only arguments (password_wo,
# secret_string_wo), which keep the master password out of plans and state.
terraform {
  required_version = ">= 1.11.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}
