# Example environment: the service in us-east-1, eu-west-1 and
# ap-southeast-1, one CockroachDB cluster across them, Route53 latency
# routing with a health check per region. See docs/deploy.md.

locals {
  tags = { "geo:environment" = "example", "geo:managed-by" = "terraform" }
}

module "topology" {
  source = "../../modules/topology"

  regions                        = ["us-east-1", "eu-west-1", "ap-southeast-1"]
  primary_region                 = "us-east-1"
  zone_name                      = var.zone_name
  name_prefix                    = var.name_prefix
  health_check_interval_seconds  = var.health_check_interval_seconds
  health_check_failure_threshold = var.health_check_failure_threshold
}

module "controller_policy" {
  source = "../../modules/controller-policy"

  hosted_zone_id = module.global.zone_id
  record_names   = module.topology.controller_record_names
}

module "region_us_east_1" {
  source    = "../../modules/region"
  providers = { aws = aws.us_east_1 }

  region                               = "us-east-1"
  cluster_name                         = module.topology.regions["us-east-1"].cluster_name
  short_name                           = module.topology.regions["us-east-1"].short_name
  name_prefix                          = var.name_prefix
  availability_zones                   = module.topology.regions["us-east-1"].availability_zones
  vpc_cidr                             = module.topology.regions["us-east-1"].vpc_cidr
  private_subnet_cidrs                 = module.topology.regions["us-east-1"].private_subnet_cidrs
  public_subnet_cidrs                  = module.topology.regions["us-east-1"].public_subnet_cidrs
  service_fqdn                         = module.topology.service_fqdn
  regional_fqdn                        = module.topology.regions["us-east-1"].regional_fqdn
  hosted_zone_id                       = module.global.zone_id
  controller_policy_json               = module.controller_policy.policy_json
  kubernetes_namespace                 = module.topology.kubernetes_namespace
  kubernetes_version                   = var.kubernetes_version
  cluster_admin_role_arns              = var.cluster_admin_role_arns
  cluster_endpoint_public_access_cidrs = var.cluster_endpoint_public_access_cidrs
}

module "region_eu_west_1" {
  source    = "../../modules/region"
  providers = { aws = aws.eu_west_1 }

  region                               = "eu-west-1"
  cluster_name                         = module.topology.regions["eu-west-1"].cluster_name
  short_name                           = module.topology.regions["eu-west-1"].short_name
  name_prefix                          = var.name_prefix
  availability_zones                   = module.topology.regions["eu-west-1"].availability_zones
  vpc_cidr                             = module.topology.regions["eu-west-1"].vpc_cidr
  private_subnet_cidrs                 = module.topology.regions["eu-west-1"].private_subnet_cidrs
  public_subnet_cidrs                  = module.topology.regions["eu-west-1"].public_subnet_cidrs
  service_fqdn                         = module.topology.service_fqdn
  regional_fqdn                        = module.topology.regions["eu-west-1"].regional_fqdn
  hosted_zone_id                       = module.global.zone_id
  controller_policy_json               = module.controller_policy.policy_json
  kubernetes_namespace                 = module.topology.kubernetes_namespace
  kubernetes_version                   = var.kubernetes_version
  cluster_admin_role_arns              = var.cluster_admin_role_arns
  cluster_endpoint_public_access_cidrs = var.cluster_endpoint_public_access_cidrs
}

module "region_ap_southeast_1" {
  source    = "../../modules/region"
  providers = { aws = aws.ap_southeast_1 }

  region                               = "ap-southeast-1"
  cluster_name                         = module.topology.regions["ap-southeast-1"].cluster_name
  short_name                           = module.topology.regions["ap-southeast-1"].short_name
  name_prefix                          = var.name_prefix
  availability_zones                   = module.topology.regions["ap-southeast-1"].availability_zones
  vpc_cidr                             = module.topology.regions["ap-southeast-1"].vpc_cidr
  private_subnet_cidrs                 = module.topology.regions["ap-southeast-1"].private_subnet_cidrs
  public_subnet_cidrs                  = module.topology.regions["ap-southeast-1"].public_subnet_cidrs
  service_fqdn                         = module.topology.service_fqdn
  regional_fqdn                        = module.topology.regions["ap-southeast-1"].regional_fqdn
  hosted_zone_id                       = module.global.zone_id
  controller_policy_json               = module.controller_policy.policy_json
  kubernetes_namespace                 = module.topology.kubernetes_namespace
  kubernetes_version                   = var.kubernetes_version
  cluster_admin_role_arns              = var.cluster_admin_role_arns
  cluster_endpoint_public_access_cidrs = var.cluster_endpoint_public_access_cidrs
}

locals {
  # The region modules by name, for the global and database modules.
  region_modules = {
    "us-east-1"      = module.region_us_east_1
    "eu-west-1"      = module.region_eu_west_1
    "ap-southeast-1" = module.region_ap_southeast_1
  }
}

module "global" {
  source    = "../../modules/global"
  providers = { aws = aws.us_east_1 }

  zone_name          = module.topology.zone_name
  parent_zone_id     = var.parent_zone_id
  service_fqdn       = module.topology.service_fqdn
  authoritative_zone = module.topology.authoritative_zone
  health_check       = module.topology.health_check
  regions = {
    for region, settings in module.topology.regions : region => {
      set_identifier = settings.set_identifier
      regional_fqdn  = settings.regional_fqdn
    }
  }
  # The controllers' name servers: each region's DNS load balancer (static
  # addresses), glued in the zone and delegated the authoritative subdomain.
  controller_name_servers = {
    for region, settings in module.topology.regions : region => {
      fqdn         = settings.name_server_fqdn
      ipv4_address = local.region_modules[region].dns_addresses
    }
  }
}

module "database" {
  source = "../../modules/database"

  cluster_name       = "${var.name_prefix}-ledger"
  regions            = module.topology.database_regions
  nodes_per_region   = var.database_nodes_per_region
  allowed_egress_ips = { for region, outputs in local.region_modules : region => outputs.nat_public_ips }
}

# The files kustomize reads, rendered from the values above (no hand
# copies): the controller's configuration, each overlay's params.env, the
# migrate Jobs' database settings and the database CA. Written into this
# repository's k8s/ tree, so the next `kubectl apply -k` uses them.
module "k8s_config" {
  source = "../../modules/k8s-config"

  region_order = module.topology.database_regions
  regions = {
    for region, settings in module.topology.regions : region => {
      health_url           = "https://${settings.regional_fqdn}${module.topology.paths.instance_health}"
      alias_dns_name       = local.region_modules[region].load_balancer_dns_name
      alias_hosted_zone_id = local.region_modules[region].load_balancer_zone_id
      health_check_id      = module.global.health_check_ids[region]
      controller_role_arn  = local.region_modules[region].failover_controller_role_arn
      target_group_arn     = local.region_modules[region].target_group_arn
      dns_target_group_arn = local.region_modules[region].dns_target_group_arn
      database_region      = module.database.cockroach_regions[region]
    }
  }
  hosted_zone_id          = module.global.zone_id
  service_fqdn            = module.topology.service_fqdn
  authoritative_zone      = module.topology.authoritative_zone
  name_servers            = [for region in module.topology.database_regions : module.topology.regions[region].name_server_fqdn]
  hostmaster              = "hostmaster.${module.topology.zone_name}"
  dns_ttl_seconds         = module.topology.record_ttl_seconds
  runtime_roles           = module.database.runtime_roles
  database_ca_certificate = module.database.ca_certificate
}

resource "local_file" "k8s" {
  for_each        = module.k8s_config.files
  filename        = "${path.root}/../../../${each.key}"
  content         = each.value
  file_permission = "0644"
}

