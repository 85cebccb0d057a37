variable "hosted_zone_id" {
  description = "Route53 hosted zone ID (without the /hostedzone/ prefix) that holds the controller's records."
  type        = string

  validation {
    condition     = can(regex("^Z[A-Z0-9]{1,31}$", var.hosted_zone_id))
    error_message = "hosted_zone_id must be a Route53 zone ID such as Z0123456789ABCDEFGHIJ, without the /hostedzone/ prefix."
  }
}

variable "record_names" {
  description = "Fully qualified record names (no trailing dot, lower case) that the controller may create, change or delete."
  type        = list(string)

  validation {
    condition     = length(var.record_names) > 0 && alltrue([for name in var.record_names : can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", name))])
    error_message = "record_names must hold at least one lower-case DNS name without a trailing dot; wildcards are not allowed."
  }
}

variable "record_types" {
  description = "Record types the controller may change. The latency records are A (and AAAA with dual-stack load balancers) aliases."
  type        = list(string)
  default     = ["A"]

  validation {
    condition     = length(var.record_types) > 0 && alltrue([for type in var.record_types : contains(["A", "AAAA"], type)])
    error_message = "record_types may contain only A and AAAA: the controller never touches NS, SOA, TXT or any other type."
  }
}
