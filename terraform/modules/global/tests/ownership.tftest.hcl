# Record ownership, planned with a mocked aws provider (no credentials, no
# network): Terraform declares the zone, the health checks and the static
# records, and never a record of the service name, whose latency records
# belong to the failover controller.

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = {
      name = "us-east-1"
    }
  }
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
}

variables {
  zone_name          = "geo.example.com"
  service_fqdn       = "api.geo.example.com"
  authoritative_zone = "gslb.geo.example.com"
  regions = {
    "us-east-1"      = { set_identifier = "us-east-1", regional_fqdn = "api-us-east-1.geo.example.com" }
    "eu-west-1"      = { set_identifier = "eu-west-1", regional_fqdn = "api-eu-west-1.geo.example.com" }
    "ap-southeast-1" = { set_identifier = "ap-southeast-1", regional_fqdn = "api-ap-southeast-1.geo.example.com" }
  }
  health_check = {
    type                   = "HTTPS"
    port                   = 443
    resource_path          = "/healthz/region"
    instance_resource_path = "/healthz/instance"
    request_interval       = 10
    failure_threshold      = 2
  }
  controller_name_servers = {
    "us-east-1" = { fqdn = "ns-us-east-1.geo.example.com", ipv4_address = ["198.51.100.1"] }
    "eu-west-1" = { fqdn = "ns-eu-west-1.geo.example.com", ipv4_address = ["198.51.100.2"] }
  }
}

run "terraform_owns_the_zone_health_checks_and_static_records_only" {
  command = plan

  assert {
    condition     = length(aws_route53_health_check.region) == 3 && alltrue([for check in aws_route53_health_check.region : check.resource_path == "/healthz/region"])
    error_message = "One admission health check per region, for the controller's latency records to carry."
  }

  assert {
    condition     = alltrue([for record in aws_route53_record.controller_name_server : record.name != var.service_fqdn]) && alltrue([for record in aws_route53_record.authoritative_delegation : record.name == var.authoritative_zone])
    error_message = "Terraform's records are the name servers' glue and the delegation, never the service name."
  }

  assert {
    condition     = alltrue([for region, record in output.controller_owned_records : record.name == var.service_fqdn && record.set_identifier == region])
    error_message = "The controller owns one latency record per region: the service name, SetIdentifier = region."
  }
}
