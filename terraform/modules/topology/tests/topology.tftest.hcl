# Tests of the computed deployment logic. Run with `terraform test` in this
# module; no provider, no credentials, no network.

variables {
  regions        = ["us-east-1", "eu-west-1", "ap-southeast-1"]
  primary_region = "us-east-1"
  zone_name      = "geo.example.com"
}

run "three_regions_produce_names_and_address_plan" {
  command = plan

  assert {
    condition     = output.service_fqdn == "api.geo.example.com"
    error_message = "The service name must be <service_label>.<zone_name>."
  }

  assert {
    condition     = output.regions["us-east-1"].vpc_cidr == "10.64.0.0/16" && output.regions["eu-west-1"].vpc_cidr == "10.69.0.0/16" && output.regions["ap-southeast-1"].vpc_cidr == "10.74.0.0/16"
    error_message = "Each region must get its fixed /16 slot of the address space."
  }

  assert {
    condition     = output.regions["eu-west-1"].private_subnet_cidrs == ["10.69.0.0/19", "10.69.32.0/19", "10.69.64.0/19"]
    error_message = "Private subnets must be /19s at the start of the region's /16."
  }

  assert {
    condition     = output.regions["eu-west-1"].public_subnet_cidrs == ["10.69.240.0/24", "10.69.241.0/24", "10.69.242.0/24"]
    error_message = "Public subnets must be /24s at the end of the region's /16."
  }

  assert {
    condition     = alltrue([for name, region in output.regions : region.set_identifier == name])
    error_message = "The latency record's SetIdentifier must be the region name: the failover controller looks records up by it."
  }

  assert {
    condition     = output.regions["ap-southeast-1"].regional_fqdn == "api-ap-southeast-1.geo.example.com"
    error_message = "Regional names must be <service_label>-<region>.<zone_name>."
  }

  assert {
    condition     = output.regions["us-east-1"].is_primary && !output.regions["eu-west-1"].is_primary
    error_message = "Only the primary region may be marked primary."
  }

  assert {
    condition     = output.database_regions == ["us-east-1", "eu-west-1", "ap-southeast-1"]
    error_message = "Database regions must list the primary first."
  }

  assert {
    condition     = output.health_check.resource_path == "/healthz/region" && output.health_check.port == 443 && output.health_check.type == "HTTPS"
    error_message = "Route53 must probe HTTPS /healthz/region on port 443."
  }

  assert {
    condition     = output.health_check.instance_resource_path == "/healthz/instance" && output.paths.instance_health == "/healthz/instance"
    error_message = "The controllers (and the unrouted second health check) must probe /healthz/instance, which reads health apart from the drain flag."
  }

  assert {
    condition     = output.health_check.detection_seconds == 20
    error_message = "Default detection must be 10 s x 2 failures = 20 s."
  }

  assert {
    condition     = output.controller_record_names == ["api.geo.example.com"]
    error_message = "The controller may change the service name only."
  }

  assert {
    condition     = output.ports.service_http == 8080 && output.ports.service_admin == 9090 && output.ports.controller_http == 9190 && output.ports.controller_dns == 5353
    error_message = "Ports must match the binaries' defaults."
  }
}

run "primary_region_elsewhere_is_listed_first" {
  command = plan

  variables {
    primary_region = "eu-west-1"
  }

  assert {
    condition     = output.database_regions == ["eu-west-1", "us-east-1", "ap-southeast-1"]
    error_message = "The primary region must come first, the others in the given order."
  }
}

run "region_slots_do_not_depend_on_other_regions" {
  command = plan

  variables {
    regions        = ["eu-west-1", "us-west-2", "ap-northeast-1", "sa-east-1"]
    primary_region = "us-west-2"
  }

  assert {
    condition     = output.regions["eu-west-1"].vpc_cidr == "10.69.0.0/16"
    error_message = "eu-west-1 must keep its slot whatever the other regions are."
  }

  assert {
    condition     = length(distinct([for region in output.regions : region.vpc_cidr])) == 4
    error_message = "VPC blocks must not overlap."
  }

  assert {
    condition     = length(distinct([for region in output.regions : region.short_name])) == 4
    error_message = "Short names must be unique."
  }
}

run "two_availability_zones" {
  command = plan

  variables {
    availability_zone_count = 2
  }

  assert {
    condition     = length(output.regions["us-east-1"].private_subnet_cidrs) == 2 && length(output.regions["us-east-1"].public_subnet_cidrs) == 2
    error_message = "One private and one public subnet per availability zone."
  }
}

run "slow_health_checks" {
  command = plan

  variables {
    health_check_interval_seconds  = 30
    health_check_failure_threshold = 3
  }

  assert {
    condition     = output.health_check.detection_seconds == 90
    error_message = "30 s x 3 must give 90 s detection."
  }
}

run "availability_zones_default_and_override" {
  command = plan

  variables {
    availability_zone_overrides = { "ap-southeast-1" = ["ap-southeast-1a", "ap-southeast-1b", "ap-southeast-1c"], "us-east-1" = ["us-east-1a", "us-east-1b", "us-east-1d"] }
  }

  assert {
    condition     = output.regions["eu-west-1"].availability_zones == tolist(["eu-west-1a", "eu-west-1b", "eu-west-1c"])
    error_message = "Default zones must be <region>a, b, c."
  }

  assert {
    condition     = output.regions["us-east-1"].availability_zones == tolist(["us-east-1a", "us-east-1b", "us-east-1d"])
    error_message = "An override must replace the default zones."
  }
}

# Rejected inputs.

run "rejects_zone_of_another_region" {
  command = plan

  variables {
    availability_zone_overrides = { "us-east-1" = ["eu-west-1a", "us-east-1b", "us-east-1c"] }
  }

  expect_failures = [var.availability_zone_overrides]
}

run "rejects_override_with_wrong_zone_count" {
  command = plan

  variables {
    availability_zone_overrides = { "us-east-1" = ["us-east-1a", "us-east-1b"] }
  }

  expect_failures = [output.regions]
}

run "rejects_two_regions" {
  command = plan

  variables {
    regions = ["us-east-1", "eu-west-1"]
  }

  expect_failures = [var.regions]
}

run "rejects_unknown_region" {
  command = plan

  variables {
    regions = ["us-east-1", "eu-west-1", "mars-north-1"]
  }

  expect_failures = [var.regions]
}

run "rejects_duplicate_regions" {
  command = plan

  variables {
    regions = ["us-east-1", "eu-west-1", "eu-west-1"]
  }

  expect_failures = [var.regions]
}

run "rejects_primary_outside_regions" {
  command = plan

  variables {
    primary_region = "us-west-2"
  }

  expect_failures = [var.primary_region]
}

run "rejects_health_check_interval_of_20" {
  command = plan

  variables {
    health_check_interval_seconds = 20
  }

  expect_failures = [var.health_check_interval_seconds]
}

run "rejects_failure_threshold_above_10" {
  command = plan

  variables {
    health_check_failure_threshold = 11
  }

  expect_failures = [var.health_check_failure_threshold]
}

run "rejects_zone_with_trailing_dot" {
  command = plan

  variables {
    zone_name = "geo.example.com."
  }

  expect_failures = [var.zone_name]
}

run "rejects_upper_case_zone" {
  command = plan

  variables {
    zone_name = "Geo.Example.com"
  }

  expect_failures = [var.zone_name]
}

run "rejects_long_name_prefix" {
  command = plan

  variables {
    name_prefix = "averyverylongprefix"
  }

  expect_failures = [var.name_prefix]
}

run "rejects_address_space_that_is_not_a_slash_12" {
  command = plan

  variables {
    address_space = "10.0.0.0/16"
  }

  expect_failures = [var.address_space]
}

run "rejects_ttl_of_one_hour" {
  command = plan

  variables {
    record_ttl_seconds = 3600
  }

  expect_failures = [var.record_ttl_seconds]
}
