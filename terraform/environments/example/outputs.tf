output "service_url" {
  description = "Where clients call the service."
  value       = "https://${module.topology.service_fqdn}"
}

output "regional_urls" {
  description = "Per region, the URL that reaches that region only (drills, debugging)."
  value       = { for region, settings in module.topology.regions : region => "https://${settings.regional_fqdn}" }
}

output "zone_id" {
  description = "Route53 zone of the service; the failover controller's configuration needs it."
  value       = module.global.zone_id
}

output "name_servers" {
  description = "Delegate zone_name to these from the parent domain (done for you when parent_zone_id is set)."
  value       = module.global.name_servers
}

output "ds_record" {
  description = "DS record to publish in the parent domain (done for you when parent_zone_id is set)."
  value       = module.global.ds_record
}

output "health_check_ids" {
  description = "Route53 health check per region."
  value       = module.global.health_check_ids
}

output "k8s_files" {
  description = "The files under k8s/ that this apply wrote (module k8s_config): the controller's configuration, the overlays' params.env, the migrate Jobs' database settings, the database CA."
  value       = sort([for file in local_file.k8s : file.filename])
}

output "clusters" {
  description = "Per region, primary first: the EKS cluster, its VPC and the AWS Load Balancer Controller's IRSA role, for scripts/deploy.sh."
  value = {
    for region in module.topology.database_regions : region => {
      cluster_name                      = local.region_modules[region].cluster_name
      vpc_id                            = local.region_modules[region].vpc_id
      load_balancer_controller_role_arn = local.region_modules[region].load_balancer_controller_role_arn
      primary                           = region == module.topology.primary_region
    }
  }
}

output "database_urls" {
  description = "Per SQL user, per region, the database URL (TLS, verify-full against the CA in k8s/base/database-ca.crt): service -> Secret service-database (url), service_migrate -> service-migrate-database (url), failover_controller -> failover-controller (database-url), failover_controller_migrate -> failover-controller-migrate-database (url). scripts/deploy.sh creates the Secrets."
  sensitive   = true
  value       = module.database.database_urls
}
