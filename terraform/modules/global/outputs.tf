output "zone_id" {
  description = "Route53 hosted zone ID (FAILOVER route53 zone in the controller's configuration)."
  value       = aws_route53_zone.this.zone_id
}

output "zone_arn" {
  description = "ARN of the hosted zone."
  value       = aws_route53_zone.this.arn
}

output "name_servers" {
  description = "Name servers of the zone; delegate to them from the parent when parent_zone_id is not set."
  value       = aws_route53_zone.this.name_servers
}

output "ds_record" {
  description = "DS record to publish in the parent when DNSSEC is on and parent_zone_id is not set (null otherwise)."
  value       = var.enable_dnssec ? aws_route53_key_signing_key.this[0].ds_record : null
}

output "health_check_ids" {
  description = "Route53 health check ID per region; the controller's configuration and dashboards refer to them."
  value       = { for region, check in aws_route53_health_check.region : region => check.id }
}

output "controller_owned_records" {
  description = "The latency records the failover controller owns and Terraform never declares: per region, the name and the SetIdentifier, and the health check the record must carry."
  value = {
    for region, settings in var.regions : region => {
      name            = var.service_fqdn
      set_identifier  = settings.set_identifier
      health_check_id = aws_route53_health_check.region[region].id
    }
  }
}
