# This module uses no provider on purpose: it holds the computed logic of the
# deployment (names, address plans, DNS and health-check settings) so that
# `terraform validate` and `terraform test` can check it without credentials
# or network access.
terraform {
  required_version = ">= 1.9.0"
}
