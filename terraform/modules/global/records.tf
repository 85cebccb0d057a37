# Record ownership: one owner per record.
#
# Terraform creates the zone, the health checks, the regional records
# (api-<region>.<zone>, in the region module) and the static records below
# (the controllers' name servers and their delegation). The latency records
# of the service name (one per region, SetIdentifier = region, an alias to
# the region's load balancer carrying the region's health check) belong to
# the failover controller alone: it creates them on its first pass (a
# serving region's record is UPSERTed), removes a drained region's and
# restores it, from the configuration Terraform renders for it
# (terraform/modules/k8s-config). Terraform never declares them, so an
# apply while a region is drained cannot put its record back, and a destroy
# leaves them to the controller (delete them before deleting the zone).
#
# One HTTPS health check per region on the service's /healthz/region
# (admission) through the region's own name: the controller's latency
# records carry it. This is the data-plane gate of DESIGN.md: a region
# whose instances answer 503 (drained, or database unreachable) leaves DNS
# answers even when the failover controller or the Route53 API is down.
# When the controller restores a region it clears the drain flag first, so
# this check turns healthy again (after failure_threshold checks) as the
# record comes back: the controller decides when a region returns.
#
# A second health check per region probes /healthz/instance (health apart
# from the drain flag, the path the controllers probe), attached to no
# record: it tells an operator, in the console and CloudWatch, whether a
# drained region is well enough to come back.

resource "aws_route53_health_check" "region" {
  for_each          = var.regions
  type              = var.health_check.type
  fqdn              = each.value.regional_fqdn
  port              = var.health_check.port
  resource_path     = var.health_check.resource_path
  request_interval  = var.health_check.request_interval
  failure_threshold = var.health_check.failure_threshold
  enable_sni        = true
  measure_latency   = true

  tags = merge(var.tags, { Name = "${each.key} region health", "geo:region" = each.key })
}

resource "aws_route53_health_check" "instance" {
  for_each          = var.regions
  type              = var.health_check.type
  fqdn              = each.value.regional_fqdn
  port              = var.health_check.port
  resource_path     = var.health_check.instance_resource_path
  request_interval  = var.health_check.request_interval
  failure_threshold = var.health_check.failure_threshold
  enable_sni        = true

  tags = merge(var.tags, { Name = "${each.key} instance health (not routed)", "geo:region" = each.key })
}

# Authoritative-DNS mode: glue records of the controllers' name servers and
# the delegation of the authoritative subdomain to them.
resource "aws_route53_record" "controller_name_server" {
  # checkov:skip=CKV2_AWS_23: The addresses are the controllers' DNS load balancers in each region's cluster, given as input; they are not resources of this module.
  for_each = var.controller_name_servers
  zone_id  = aws_route53_zone.this.zone_id
  name     = each.value.fqdn
  type     = "A"
  ttl      = 300
  records  = each.value.ipv4_address
}

resource "aws_route53_record" "authoritative_delegation" {
  count   = length(var.controller_name_servers) > 0 ? 1 : 0
  zone_id = aws_route53_zone.this.zone_id
  name    = var.authoritative_zone
  type    = "NS"
  ttl     = 300
  records = [for region, server in var.controller_name_servers : server.fqdn]
}
