variable "region_order" {
  description = "The regions, primary first (topology output database_regions): the order of the controller's [[regions]] and of SERVICE_DATABASE_REGIONS."
  type        = list(string)

  validation {
    condition     = length(var.region_order) >= 3 && length(distinct(var.region_order)) == length(var.region_order)
    error_message = "region_order must list at least three distinct regions."
  }
}

variable "regions" {
  description = "Per region: health_url (the controllers' probe, /healthz/instance through the region's own name), alias_dns_name and alias_hosted_zone_id (its load balancer, the latency record's alias target), health_check_id (the Route53 health check the latency record carries), controller_role_arn (IRSA), target_group_arn (the ALB's, for the service pods), dns_target_group_arn (the DNS load balancer's, for the controller pod), database_region (the CockroachDB region that serves it, e.g. aws-us-east-1)."
  type = map(object({
    health_url           = string
    alias_dns_name       = string
    alias_hosted_zone_id = string
    health_check_id      = string
    controller_role_arn  = string
    target_group_arn     = string
    dns_target_group_arn = string
    database_region      = string
  }))

  validation {
    condition     = alltrue([for region in values(var.regions) : startswith(region.health_url, "https://") && !endswith(region.health_url, "/healthz/region")])
    error_message = "Every health_url must be https:// and never /healthz/region (the admission path: a drained region could never return)."
  }
}

variable "hosted_zone_id" {
  description = "Route53 hosted zone of the service name (route53.hosted_zone_id)."
  type        = string
}

variable "service_fqdn" {
  description = "The service name; the controller owns its latency records (one per region, SetIdentifier = region)."
  type        = string
}

variable "route53_api_region" {
  description = "Region of the Route53 API endpoint the controller calls."
  type        = string
  default     = "us-east-1"
}

variable "authoritative_zone" {
  description = "Subdomain the controllers serve themselves (authoritative-DNS mode)."
  type        = string
}

variable "name_servers" {
  description = "The controllers' name servers, one per region, in region_order."
  type        = list(string)
}

variable "hostmaster" {
  description = "SOA RNAME of the authoritative zone."
  type        = string
}

variable "dns_ttl_seconds" {
  description = "TTL of the controllers' answers."
  type        = number
  default     = 30
}

variable "probe" {
  description = "The controllers' probe settings across the WAN: interval, timeout (at most the interval) and consecutive failures before a vantage point votes a region down. A cold HTTPS connection costs about three round trips (about 650 ms us-east-1 to ap-southeast-1), so the timeout leaves room for one, and three failures are needed."
  type = object({
    interval_ms      = number
    timeout_ms       = number
    failures_to_down = number
  })
  default = {
    interval_ms      = 1000
    timeout_ms       = 1000
    failures_to_down = 3
  }

  validation {
    condition     = var.probe.timeout_ms >= 1 && var.probe.timeout_ms <= var.probe.interval_ms && var.probe.failures_to_down >= 1
    error_message = "probe.timeout_ms must be between 1 and probe.interval_ms, and failures_to_down at least 1."
  }
}

variable "round_trip_ms" {
  description = "Round trips between the regions in milliseconds, either direction (public inter-region figures by default; measure your own). Each controller probes a region with the time of a cold HTTPS connection to it, three of these round trips and 200 ms, when that is more than probe.timeout_ms; that time must fit in probe.interval_ms."
  type        = map(map(number))
  default = {
    "us-east-1" = { "eu-west-1" = 70, "ap-southeast-1" = 220 }
    "eu-west-1" = { "ap-southeast-1" = 165 }
  }

  validation {
    condition = alltrue(flatten([
      for from, row in var.round_trip_ms : [
        for to, rtt in row : rtt >= 0 && 3 * rtt + 200 <= var.probe.interval_ms
      ]
    ]))
    error_message = "Every round trip must be at least 0 and a cold connection across it (3 round trips and 200 ms) must fit in probe.interval_ms: raise the interval for regions this far apart."
  }
}

variable "runtime_roles" {
  description = "The runtime SQL roles the migrations grant row access to: service and failover_controller."
  type = object({
    service             = string
    failover_controller = string
  })
}

variable "database_ca_certificate" {
  description = "PEM CA certificate of the database cluster (the ConfigMap database-ca, named by the database URLs as sslrootcert)."
  type        = string

  validation {
    condition     = strcontains(var.database_ca_certificate, "-----BEGIN CERTIFICATE-----")
    error_message = "database_ca_certificate must be a PEM certificate."
  }
}
