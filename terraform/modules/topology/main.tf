locals {
  # Fixed slot of every supported region in the address plan, and its short
  # code for names that AWS limits in length. A region keeps
  # its slot whatever the other regions are, so adding or removing a region
  # never renumbers an existing VPC. Slots are /16 blocks of var.address_space.
  region_slot = {
    "us-east-1"      = { index = 0, short = "use1" }
    "us-east-2"      = { index = 1, short = "use2" }
    "us-west-1"      = { index = 2, short = "usw1" }
    "us-west-2"      = { index = 3, short = "usw2" }
    "ca-central-1"   = { index = 4, short = "cac1" }
    "eu-west-1"      = { index = 5, short = "euw1" }
    "eu-west-2"      = { index = 6, short = "euw2" }
    "eu-west-3"      = { index = 7, short = "euw3" }
    "eu-central-1"   = { index = 8, short = "euc1" }
    "eu-north-1"     = { index = 9, short = "eun1" }
    "ap-southeast-1" = { index = 10, short = "apse1" }
    "ap-southeast-2" = { index = 11, short = "apse2" }
    "ap-northeast-1" = { index = 12, short = "apne1" }
    "ap-northeast-2" = { index = 13, short = "apne2" }
    "ap-south-1"     = { index = 14, short = "aps1" }
    "sa-east-1"      = { index = 15, short = "sae1" }
  }

  # Contract with the binaries (service/config/default.toml and the failover
  # controller's configuration); scripts/../deploy-tests checks that k8s/ and
  # the binaries agree with these numbers and paths.
  ports = {
    service_http        = 8080
    service_admin       = 9090
    controller_http     = 9190
    controller_dns      = 5353
    load_balancer_https = 443
  }
  paths = {
    liveness  = "/livez"
    readiness = "/readyz"
    # Admission: 503 while the region is drained (or cannot serve). The
    # Route53 health checks on the latency records probe it.
    region_health = "/healthz/region"
    # Health apart from the drain flag: what the failover controllers probe,
    # so that a drained region can prove it is well and come back.
    instance_health = "/healthz/instance"
    metrics         = "/metrics"
  }

  service_fqdn       = "${var.service_label}.${var.zone_name}"
  authoritative_zone = "${var.authoritative_label}.${var.zone_name}"

  regions = {
    for region in var.regions : region => {
      name       = region
      is_primary = region == var.primary_region
      # Short form used where AWS limits names (load balancers: 32 characters).
      short_name   = local.region_slot[region].short
      cluster_name = "${var.name_prefix}-${region}"
      # Named zones, not "the first N available": a zone AWS adds later must
      # not move subnets.
      availability_zones = lookup(var.availability_zone_overrides, region, [for az in range(var.availability_zone_count) : "${region}${substr("abcdef", az, 1)}"])
      vpc_cidr           = cidrsubnet(var.address_space, 4, local.region_slot[region].index)
      # Private /19s for nodes and pods (VPC CNI gives pods VPC addresses), and
      # small public /24s for load balancers and NAT gateways only.
      private_subnet_cidrs = [for az in range(var.availability_zone_count) : cidrsubnet(cidrsubnet(var.address_space, 4, local.region_slot[region].index), 3, az)]
      public_subnet_cidrs  = [for az in range(var.availability_zone_count) : cidrsubnet(cidrsubnet(var.address_space, 4, local.region_slot[region].index), 8, 240 + az)]
      # Route53: the latency record's SetIdentifier is the region name, which
      # is what the failover controller looks for (one record per region).
      set_identifier = region
      # Regional name that always points at this region's load balancer; the
      # health check and drills use it to reach one region directly.
      regional_fqdn = "${var.service_label}-${region}.${var.zone_name}"
      # Name server of this region's controller in authoritative mode.
      name_server_fqdn = "ns-${region}.${var.zone_name}"
    }
  }

  zone_count_mismatches = [for region, zones in var.availability_zone_overrides : region if length(zones) != var.availability_zone_count]

  health_check = {
    type          = "HTTPS"
    port          = local.ports.load_balancer_https
    resource_path = local.paths.region_health
    # The unrouted check on health apart from the drain flag.
    instance_resource_path = local.paths.instance_health
    request_interval       = var.health_check_interval_seconds
    failure_threshold      = var.health_check_failure_threshold
    # Worst case from a region failing to its record leaving DNS answers.
    detection_seconds = var.health_check_interval_seconds * var.health_check_failure_threshold
  }
}
