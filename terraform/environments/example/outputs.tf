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

output "failover_controller_regions_toml" {
  description = "The [[regions]] blocks of k8s/base/failover-controller/config.toml (the same file in every region): per region the HTTPS health URL through its own name (the service's /healthz/instance: health apart from the drain flag, so a drained region can return), its ALB as the Route53 alias target (with evaluate_target_health as in the global module's latency records) and its Route53 health check. `terraform output -raw failover_controller_regions_toml`, see docs/deploy.md."
  value = join("\n", [
    for region in module.topology.region_names : join("\n", [
      "[[regions]]",
      "name = \"${region}\"",
      "aws_region = \"${region}\"",
      "health_urls = [\"https://${module.topology.regions[region].regional_fqdn}${module.topology.paths.instance_health}\"]",
      "alias_dns_name = \"${local.region_modules[region].load_balancer_dns_name}\"",
      "alias_hosted_zone_id = \"${local.region_modules[region].load_balancer_zone_id}\"",
      "evaluate_target_health = true",
      "health_check_id = \"${module.global.health_check_ids[region]}\"",
      "",
    ])
  ])
}

output "clusters" {
  description = "EKS cluster name per region, for `aws eks update-kubeconfig`."
  value       = { for region, outputs in local.region_modules : region => outputs.cluster_name }
}

output "k8s_overlay_params" {
  description = "Per region, the contents of k8s/overlays/<region>/params.env (see docs/deploy.md)."
  value = {
    for region, outputs in local.region_modules : region => join("\n", [
      "REGION=${region}",
      "SERVICE_FQDN=${module.topology.service_fqdn}",
      "HOSTED_ZONE_ID=${module.global.zone_id}",
      "CONTROLLER_ROLE_ARN=${outputs.failover_controller_role_arn}",
      "TARGET_GROUP_ARN=${outputs.target_group_arn}",
      "",
    ])
  }
}

output "load_balancer_controller_role_arns" {
  description = "Per region, the IRSA role to annotate the AWS Load Balancer Controller's service account with."
  value       = { for region, outputs in local.region_modules : region => outputs.load_balancer_controller_role_arn }
}

output "database_urls" {
  description = "Per SQL user, per region, the database URL (TLS, verify-full against the CA in k8s/base/database-ca.crt): service -> Secret service-database (url), service_migrate -> service-migrate-database (url), failover_controller -> failover-controller (database-url), failover_controller_migrate -> failover-controller-migrate-database (url). scripts/deploy.sh creates the Secrets."
  sensitive   = true
  value       = module.database.database_urls
}
