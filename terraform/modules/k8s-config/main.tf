# The files kustomize reads, rendered from Terraform's own values so that
# nothing is copied by hand: the failover controller's configuration (the
# same file in every region), each overlay's params.env, the migrate Jobs'
# database settings and the database CA. Paths are relative to the
# repository root; terraform/environments/example writes them.

locals {
  controller_regions = [
    for name in var.region_order : {
      name                 = name
      aws_region           = name
      health_url           = var.regions[name].health_url
      alias_dns_name       = var.regions[name].alias_dns_name
      alias_hosted_zone_id = var.regions[name].alias_hosted_zone_id
      health_check_id      = var.regions[name].health_check_id
    }
  ]

  controller_config = templatefile("${path.module}/templates/failover-controller.toml.tftpl", {
    hosted_zone_id     = var.hosted_zone_id
    record_name        = "${trimsuffix(var.service_fqdn, ".")}."
    route53_api_region = var.route53_api_region
    zone               = "${trimsuffix(var.authoritative_zone, ".")}."
    ttl_seconds        = var.dns_ttl_seconds
    name_servers       = [for server in var.name_servers : "${trimsuffix(server, ".")}."]
    hostmaster         = "${trimsuffix(var.hostmaster, ".")}."
    # The primary region (first of region_order) answers resolvers no
    # client_subnets prefix places, the same from every name server.
    default_client_region = var.region_order[0]
    probe                 = var.probe
    round_trip_ms         = var.round_trip_ms
    regions               = local.controller_regions
  })

  database_regions = join(",", [for name in var.region_order : "${name}=${var.regions[name].database_region}"])

  migrate_env = join("\n", [
    "SERVICE_DATABASE_REGIONS=${local.database_regions}",
    "SERVICE_DATABASE_RUNTIME_ROLE=${var.runtime_roles.service}",
    "FAILOVER_DATABASE_RUNTIME_ROLE=${var.runtime_roles.failover_controller}",
    "",
  ])

  params_env = {
    for name in var.region_order : name => join("\n", [
      "REGION=${name}",
      "SERVICE_FQDN=${trimsuffix(var.service_fqdn, ".")}",
      "HOSTED_ZONE_ID=${var.hosted_zone_id}",
      "CONTROLLER_ROLE_ARN=${var.regions[name].controller_role_arn}",
      "TARGET_GROUP_ARN=${var.regions[name].target_group_arn}",
      "DNS_TARGET_GROUP_ARN=${var.regions[name].dns_target_group_arn}",
      "",
    ])
  }
}
