# Provider-free on purpose: the failover controller's Route53 permissions are
# computed here as a JSON policy document, so that `terraform test` can prove
# least privilege without AWS credentials.
terraform {
  required_version = ">= 1.9.0"
}
