variable "regions" {
  description = "AWS regions that run the service, one EKS cluster each. CockroachDB SURVIVE REGION FAILURE needs at least three."
  type        = list(string)

  validation {
    condition     = length(var.regions) >= 3
    error_message = "At least three regions are required: CockroachDB SURVIVE REGION FAILURE needs three, and the failover controller needs a majority of vantage points."
  }

  validation {
    condition     = length(distinct(var.regions)) == length(var.regions)
    error_message = "Region names must be unique."
  }

  validation {
    condition = alltrue([for region in var.regions : contains([
      "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1",
      "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-north-1",
      "ap-southeast-1", "ap-southeast-2", "ap-northeast-1", "ap-northeast-2",
      "ap-south-1", "sa-east-1",
    ], region)])
    error_message = "Every region must be one of the supported AWS regions (see local.region_slot in main.tf); each has a fixed slot in the address plan."
  }
}

variable "primary_region" {
  description = "CockroachDB primary region and the region that runs schema migrations. Must be one of var.regions."
  type        = string

  # Cross-variable validation needs Terraform 1.9 or newer.
  validation {
    condition     = contains(var.regions, var.primary_region)
    error_message = "primary_region must be one of var.regions."
  }
}

variable "zone_name" {
  description = "DNS zone that Terraform hosts in Route53 (for example a delegated subdomain such as geo.example.com). No trailing dot."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.zone_name)) && length(var.zone_name) <= 200
    error_message = "zone_name must be a lower-case DNS name without a trailing dot, for example geo.example.com."
  }
}

variable "service_label" {
  description = "Left-most label of the service name: clients call https://<service_label>.<zone_name>."
  type        = string
  default     = "api"

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$", var.service_label))
    error_message = "service_label must be one DNS label of 1 to 32 lower-case letters, digits or dashes, starting with a letter."
  }
}

variable "authoritative_label" {
  description = "Label of the subdomain that the failover controllers serve themselves in authoritative-DNS mode (<authoritative_label>.<zone_name>)."
  type        = string
  default     = "gslb"

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$", var.authoritative_label))
    error_message = "authoritative_label must be one DNS label of 1 to 32 lower-case letters, digits or dashes, starting with a letter."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (clusters, load balancers, roles). Short, because AWS limits load balancer names to 32 characters."
  type        = string
  default     = "geo"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,9}$", var.name_prefix))
    error_message = "name_prefix must be 1 to 10 lower-case letters, digits or dashes, starting with a letter."
  }
}

variable "health_check_interval_seconds" {
  description = "Route53 health-check request interval. Route53 offers exactly 10 (fast) or 30 (standard) seconds."
  type        = number
  default     = 10

  validation {
    condition     = contains([10, 30], var.health_check_interval_seconds)
    error_message = "health_check_interval_seconds must be 10 or 30: Route53 supports no other interval."
  }
}

variable "health_check_failure_threshold" {
  description = "Consecutive failed Route53 checks before a region's latency record is withdrawn (1 to 10)."
  type        = number
  default     = 2

  validation {
    condition     = var.health_check_failure_threshold >= 1 && var.health_check_failure_threshold <= 10 && floor(var.health_check_failure_threshold) == var.health_check_failure_threshold
    error_message = "health_check_failure_threshold must be a whole number from 1 to 10."
  }
}

variable "record_ttl_seconds" {
  description = "TTL of the records that the failover controller serves in authoritative mode (the latency records are aliases and carry the target's TTL)."
  type        = number
  default     = 30

  validation {
    condition     = var.record_ttl_seconds >= 5 && var.record_ttl_seconds <= 300
    error_message = "record_ttl_seconds must be between 5 and 300: longer TTLs defeat failover, shorter ones overload resolvers."
  }
}

variable "address_space" {
  description = "IPv4 /12 that holds every region's VPC. Each region gets a fixed /16 slot, so adding a region never renumbers another, and the VPCs never overlap (peering stays possible)."
  type        = string
  default     = "10.64.0.0/12"

  validation {
    condition     = can(cidrhost(var.address_space, 0)) && endswith(var.address_space, "/12")
    error_message = "address_space must be an IPv4 CIDR block of prefix length /12, for example 10.64.0.0/12."
  }
}

variable "availability_zone_count" {
  description = "Availability zones used in each region (subnets, NAT gateways, node groups). The service spreads its pods across them."
  type        = number
  default     = 3

  validation {
    condition     = contains([2, 3], var.availability_zone_count)
    error_message = "availability_zone_count must be 2 or 3."
  }
}

variable "kubernetes_namespace" {
  description = "Namespace that the Kubernetes overlays deploy into (the IRSA trust policy names it)."
  type        = string
  default     = "geo"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.kubernetes_namespace))
    error_message = "kubernetes_namespace must be a valid Kubernetes namespace name."
  }
}

variable "availability_zone_overrides" {
  description = "Availability zone names per region where the default (<region>a, <region>b, <region>c) does not fit the account; each list needs availability_zone_count entries."
  type        = map(list(string))
  default     = {}

  validation {
    condition     = alltrue([for region, zones in var.availability_zone_overrides : alltrue([for zone in zones : startswith(zone, region)])])
    error_message = "Every zone in availability_zone_overrides must belong to its region (for example us-west-1b for us-west-1)."
  }
}
