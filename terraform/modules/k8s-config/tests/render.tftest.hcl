# The rendered files kustomize reads: the controller's configuration from
# Terraform's values (regions, health URLs, alias targets, health check ids,
# zone), the database settings of the migrate Jobs, the overlays' params.

variables {
  region_order = ["us-east-1", "eu-west-1", "ap-southeast-1"]
  regions = {
    "us-east-1" = {
      health_url           = "https://api-us-east-1.geo.example.com/healthz/instance"
      alias_dns_name       = "geo-use1-api-1.us-east-1.elb.amazonaws.com"
      alias_hosted_zone_id = "Z35SXDOTRQ7X7K"
      health_check_id      = "hc-use1"
      controller_role_arn  = "arn:aws:iam::123456789012:role/geo-us-east-1-failover-controller"
      target_group_arn     = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/geo-use1-api-pods/1"
      dns_target_group_arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/geo-use1-dns-pods/1"
      database_region      = "aws-us-east-1"
    }
    "eu-west-1" = {
      health_url           = "https://api-eu-west-1.geo.example.com/healthz/instance"
      alias_dns_name       = "geo-euw1-api-1.eu-west-1.elb.amazonaws.com"
      alias_hosted_zone_id = "Z32O12XQLNTSW2"
      health_check_id      = "hc-euw1"
      controller_role_arn  = "arn:aws:iam::123456789012:role/geo-eu-west-1-failover-controller"
      target_group_arn     = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/geo-euw1-api-pods/1"
      dns_target_group_arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/geo-euw1-dns-pods/1"
      database_region      = "aws-eu-west-1"
    }
    "ap-southeast-1" = {
      health_url           = "https://api-ap-southeast-1.geo.example.com/healthz/instance"
      alias_dns_name       = "geo-apse1-api-1.ap-southeast-1.elb.amazonaws.com"
      alias_hosted_zone_id = "Z1LMS91P8CMLE5"
      health_check_id      = "hc-apse1"
      controller_role_arn  = "arn:aws:iam::123456789012:role/geo-ap-southeast-1-failover-controller"
      target_group_arn     = "arn:aws:elasticloadbalancing:ap-southeast-1:123456789012:targetgroup/geo-apse1-api-pods/1"
      dns_target_group_arn = "arn:aws:elasticloadbalancing:ap-southeast-1:123456789012:targetgroup/geo-apse1-dns-pods/1"
      database_region      = "aws-ap-southeast-1"
    }
  }
  hosted_zone_id          = "Z0123456789EXAMPLEZONE"
  service_fqdn            = "api.geo.example.com"
  authoritative_zone      = "gslb.geo.example.com"
  name_servers            = ["ns-us-east-1.geo.example.com", "ns-eu-west-1.geo.example.com", "ns-ap-southeast-1.geo.example.com"]
  hostmaster              = "hostmaster.geo.example.com"
  runtime_roles           = { service = "service", failover_controller = "failover_controller" }
  database_ca_certificate = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
}

run "controller_config_holds_every_region_from_terraform" {
  command = plan

  assert {
    condition     = [for r in output.controller_regions : r.name] == ["us-east-1", "eu-west-1", "ap-southeast-1"]
    error_message = "The controller's regions must be Terraform's, primary first."
  }

  assert {
    condition = alltrue([for r in output.controller_regions : strcontains(output.files["k8s/base/failover-controller/config.toml"], join("\n", [
      "[[regions]]",
      "name = \"${r.name}\"",
      "aws_region = \"${r.name}\"",
      "health_urls = [\"https://api-${r.name}.geo.example.com/healthz/instance\"]",
      "alias_dns_name = \"${var.regions[r.name].alias_dns_name}\"",
      "alias_hosted_zone_id = \"${var.regions[r.name].alias_hosted_zone_id}\"",
      "evaluate_target_health = true",
      "health_check_id = \"${var.regions[r.name].health_check_id}\"",
    ]))])
    error_message = "Each [[regions]] block must carry its health URL, alias target and health check id from Terraform."
  }

  assert {
    condition     = strcontains(output.files["k8s/base/failover-controller/config.toml"], "hosted_zone_id = \"Z0123456789EXAMPLEZONE\"\nrecord_name = \"api.geo.example.com.\"")
    error_message = "route53 must name the zone and the service's record (the latency records the controller owns)."
  }

  assert {
    condition     = strcontains(output.files["k8s/base/failover-controller/config.toml"], "zone = \"gslb.geo.example.com.\"") && strcontains(output.files["k8s/base/failover-controller/config.toml"], "nameservers = [\"ns-us-east-1.geo.example.com.\", \"ns-eu-west-1.geo.example.com.\", \"ns-ap-southeast-1.geo.example.com.\"]")
    error_message = "dns must name the authoritative zone and the name servers, fully qualified."
  }

  assert {
    condition     = strcontains(output.files["k8s/base/failover-controller/config.toml"], "interval_ms = 1000\ntimeout_ms = 1000\nfailures_to_down = 3")
    error_message = "The probes must default to WAN-safe settings (1 s interval and timeout, three failures)."
  }

  assert {
    condition     = strcontains(output.files["k8s/base/failover-controller/config.toml"], "path = \"/healthz/instance\"") && !strcontains(output.files["k8s/base/failover-controller/config.toml"], "/healthz/region\"")
    error_message = "The controller must never probe the admission path."
  }
}

run "migrate_jobs_get_the_mapped_database_regions_and_roles" {
  command = plan

  assert {
    condition     = output.database_regions == "us-east-1=aws-us-east-1,eu-west-1=aws-eu-west-1,ap-southeast-1=aws-ap-southeast-1"
    error_message = "SERVICE_DATABASE_REGIONS must map every service region to its CockroachDB region, primary first."
  }

  assert {
    condition     = output.files["k8s/base/migrate/migrate.env"] == "SERVICE_DATABASE_REGIONS=us-east-1=aws-us-east-1,eu-west-1=aws-eu-west-1,ap-southeast-1=aws-ap-southeast-1\nSERVICE_DATABASE_RUNTIME_ROLE=service\nFAILOVER_DATABASE_RUNTIME_ROLE=failover_controller\n"
    error_message = "migrate.env must carry the regions and both runtime roles."
  }

  assert {
    condition     = output.files["k8s/base/database-ca.crt"] == var.database_ca_certificate
    error_message = "The database CA must be written as given."
  }
}

run "every_overlay_gets_its_params" {
  command = plan

  assert {
    condition     = sort([for path, _ in output.files : path if endswith(path, "/params.env")]) == sort(["k8s/overlays/us-east-1/params.env", "k8s/overlays/eu-west-1/params.env", "k8s/overlays/ap-southeast-1/params.env"])
    error_message = "One params.env per region."
  }

  assert {
    condition     = output.files["k8s/overlays/eu-west-1/params.env"] == "REGION=eu-west-1\nSERVICE_FQDN=api.geo.example.com\nHOSTED_ZONE_ID=Z0123456789EXAMPLEZONE\nCONTROLLER_ROLE_ARN=arn:aws:iam::123456789012:role/geo-eu-west-1-failover-controller\nTARGET_GROUP_ARN=arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/geo-euw1-api-pods/1\nDNS_TARGET_GROUP_ARN=arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/geo-euw1-dns-pods/1\n"
    error_message = "params.env must carry the region's role and target group."
  }
}

run "rejects_the_admission_path_as_health_url" {
  command = plan

  variables {
    regions = {
      "us-east-1" = {
        health_url           = "https://api-us-east-1.geo.example.com/healthz/region"
        alias_dns_name       = "a"
        alias_hosted_zone_id = "Z"
        health_check_id      = "h"
        controller_role_arn  = "r"
        target_group_arn     = "t"
        dns_target_group_arn = "d"
        database_region      = "aws-us-east-1"
      }
    }
  }

  expect_failures = [var.regions]
}

# The files committed under k8s/ are this module's rendering of the example
# environment's shape (placeholder ids), so that what kustomize renders and
# the offline checks see is what Terraform would write.
run "the_committed_files_are_the_rendering_of_the_example" {
  command = plan

  variables {
    regions = {
      "us-east-1"      = { health_url = "https://api-us-east-1.geo.example.com/healthz/instance", alias_dns_name = "geo-use1-api-1234567890.us-east-1.elb.amazonaws.com", alias_hosted_zone_id = "Z35SXDOTRQ7X7K", health_check_id = "0b6c6f1e-1111-4a8e-9d3b-0123456789ab", controller_role_arn = "arn:aws:iam::123456789012:role/geo-us-east-1-failover-controller", target_group_arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/geo-use1-api-pods/0123456789abcdef", dns_target_group_arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/geo-use1-dns-pods/0123456789abcdef", database_region = "aws-us-east-1" }
      "eu-west-1"      = { health_url = "https://api-eu-west-1.geo.example.com/healthz/instance", alias_dns_name = "geo-euw1-api-1234567890.eu-west-1.elb.amazonaws.com", alias_hosted_zone_id = "Z32O12XQLNTSW2", health_check_id = "0b6c6f1e-2222-4a8e-9d3b-0123456789ab", controller_role_arn = "arn:aws:iam::123456789012:role/geo-eu-west-1-failover-controller", target_group_arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/geo-euw1-api-pods/0123456789abcdef", dns_target_group_arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/geo-euw1-dns-pods/0123456789abcdef", database_region = "aws-eu-west-1" }
      "ap-southeast-1" = { health_url = "https://api-ap-southeast-1.geo.example.com/healthz/instance", alias_dns_name = "geo-apse1-api-1234567890.ap-southeast-1.elb.amazonaws.com", alias_hosted_zone_id = "Z1LMS91P8CMLE5", health_check_id = "0b6c6f1e-3333-4a8e-9d3b-0123456789ab", controller_role_arn = "arn:aws:iam::123456789012:role/geo-ap-southeast-1-failover-controller", target_group_arn = "arn:aws:elasticloadbalancing:ap-southeast-1:123456789012:targetgroup/geo-apse1-api-pods/0123456789abcdef", dns_target_group_arn = "arn:aws:elasticloadbalancing:ap-southeast-1:123456789012:targetgroup/geo-apse1-dns-pods/0123456789abcdef", database_region = "aws-ap-southeast-1" }
    }
  }

  assert {
    condition = alltrue([
      for committed in ["k8s/base/failover-controller/config.toml", "k8s/base/migrate/migrate.env", "k8s/overlays/us-east-1/params.env", "k8s/overlays/eu-west-1/params.env", "k8s/overlays/ap-southeast-1/params.env"] :
      output.files[committed] == file("${path.module}/../../../${committed}")
    ])
    error_message = "A committed file under k8s/ differs from this module's rendering of the example: update it from the module (see docs/deploy.md), never by hand."
  }
}

# The controllers probe a far region with the time of a cold HTTPS
# connection to it: the round trips are rendered for them, and a pair too
# far apart for the probe interval is refused.
run "round_trips_are_rendered_for_the_probe_timeouts" {
  command = plan

  assert {
    condition = strcontains(output.files["k8s/base/failover-controller/config.toml"], join("\n", [
      "[probe.round_trip_ms.\"us-east-1\"]",
      "\"ap-southeast-1\" = 220.0",
      "\"eu-west-1\" = 70.0",
    ]))
    error_message = "The controller's configuration must carry the round trips its probe timeouts derive from."
  }
}

run "rejects_a_round_trip_too_long_for_the_probe_interval" {
  command = plan

  variables {
    round_trip_ms = { "us-east-1" = { "ap-southeast-1" = 300 } }
  }

  expect_failures = [var.round_trip_ms]
}
