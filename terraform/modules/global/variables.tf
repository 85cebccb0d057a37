# Pass the aws provider configured for us-east-1: Route53 query logging and
# DNSSEC keys must live there.

variable "zone_name" {
  description = "Hosted zone to create (topology output zone_name), usually a subdomain delegated from the organisation's zone."
  type        = string
}

variable "parent_zone_id" {
  description = "Route53 zone of the parent domain. When set, the module adds the NS delegation (and the DS record when DNSSEC is on) there; otherwise delegate by hand with the name_servers output."
  type        = string
  default     = null
}

variable "service_fqdn" {
  description = "Name of the latency records (topology output service_fqdn)."
  type        = string
}

variable "regions" {
  description = "Per region: set_identifier (of the latency record the failover controller owns) and regional_fqdn (the name its health checks probe), from the topology module."
  type = map(object({
    set_identifier = string
    regional_fqdn  = string
  }))

  validation {
    condition     = length(var.regions) >= 3
    error_message = "At least three regions are required."
  }

  validation {
    condition     = alltrue([for region, settings in var.regions : settings.set_identifier == region])
    error_message = "Each region's set_identifier must be the region name: the failover controller finds its records by it."
  }
}

variable "health_check" {
  description = "Route53 health-check settings (topology output health_check)."
  type = object({
    type          = string
    port          = number
    resource_path = string
    # Health apart from the drain flag, for the unrouted second check.
    instance_resource_path = string
    request_interval       = number
    failure_threshold      = number
  })

  validation {
    condition     = contains([10, 30], var.health_check.request_interval) && var.health_check.failure_threshold >= 1 && var.health_check.failure_threshold <= 10
    error_message = "request_interval must be 10 or 30 and failure_threshold 1 to 10."
  }

  validation {
    condition     = var.health_check.type == "HTTPS" && var.health_check.port == 443
    error_message = "Health checks must use HTTPS on port 443, where the load balancer listens."
  }
}

variable "authoritative_zone" {
  description = "Subdomain served by the failover controllers in authoritative-DNS mode (topology output authoritative_zone)."
  type        = string
}

variable "controller_name_servers" {
  description = "Authoritative-DNS mode only: per region, the name server host name (topology output name_server_fqdn) and the public IPv4 addresses where that region's controller answers DNS on port 53. Empty (the default) creates no delegation."
  type = map(object({
    fqdn         = string
    ipv4_address = list(string)
  }))
  default = {}

  validation {
    condition     = length(var.controller_name_servers) == 0 || length(var.controller_name_servers) >= 2
    error_message = "Delegate to at least two controllers' name servers, or to none."
  }
}

variable "enable_dnssec" {
  description = "Sign the zone with DNSSEC. Turn it off only while the parent cannot publish a DS record."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of the DNS query log."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
