output "regions" {
  description = "Per region: name, is_primary, short_name, cluster_name, availability_zones, vpc_cidr, private_subnet_cidrs, public_subnet_cidrs, set_identifier (latency record), regional_fqdn (this region's load balancer) and name_server_fqdn (authoritative mode)."
  value       = local.regions

  precondition {
    condition     = length(local.zone_count_mismatches) == 0
    error_message = "availability_zone_overrides must list exactly availability_zone_count zones for: ${join(", ", local.zone_count_mismatches)}."
  }
}

output "region_names" {
  description = "The regions in the order given, for resources that need a list."
  value       = var.regions
}

output "primary_region" {
  description = "CockroachDB primary region; the schema migration Job runs only here."
  value       = var.primary_region
}

output "database_regions" {
  description = "Regions for the CockroachDB cluster, primary first (ALTER DATABASE ... PRIMARY REGION, then ADD REGION for the rest)."
  value       = concat([var.primary_region], [for region in var.regions : region if region != var.primary_region])
}

output "zone_name" {
  description = "The Route53 hosted zone that Terraform manages."
  value       = var.zone_name
}

output "service_fqdn" {
  description = "The name clients call; one latency record per region answers it."
  value       = local.service_fqdn
}

output "authoritative_zone" {
  description = "Subdomain delegated to the failover controllers in authoritative-DNS mode."
  value       = local.authoritative_zone
}

output "controller_record_names" {
  description = "The only record names the failover controller may change in Route53 (the IAM policy pins them through route53:ChangeResourceRecordSetsNormalizedRecordNames)."
  value       = [local.service_fqdn]
}

output "health_check" {
  description = "Route53 health-check settings shared by every region: type, port, resource_path, request_interval, failure_threshold and detection_seconds (interval x threshold)."
  value       = local.health_check
}

output "ports" {
  description = "Ports of the contract with the binaries: service_http, service_admin, controller_http, controller_dns, load_balancer_https."
  value       = local.ports
}

output "paths" {
  description = "HTTP paths of the contract with the service: liveness, readiness, region_health (admission, Route53 health checks), instance_health (the controllers' probes), metrics."
  value       = local.paths
}

output "kubernetes_namespace" {
  description = "Namespace of the Kubernetes overlays; the controller's IRSA trust policy is bound to it."
  value       = var.kubernetes_namespace
}

output "record_ttl_seconds" {
  description = "TTL of the answers the controllers serve in authoritative mode."
  value       = var.record_ttl_seconds
}
