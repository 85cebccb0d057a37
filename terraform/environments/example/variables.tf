variable "zone_name" {
  description = "Route53 zone to create for the service, e.g. geo.example.com (delegated from your domain)."
  type        = string
}

variable "parent_zone_id" {
  description = "Route53 zone ID of the parent domain, to create the delegation and DS records there; null to delegate by hand."
  type        = string
  default     = null
}

variable "name_prefix" {
  description = "Prefix of resource names."
  type        = string
  default     = "geo"
}

variable "health_check_interval_seconds" {
  description = "Route53 health-check interval, 10 or 30 seconds."
  type        = number
  default     = 10
}

variable "health_check_failure_threshold" {
  description = "Failed Route53 checks before a region leaves DNS (1 to 10)."
  type        = number
  default     = 2
}

variable "cluster_admin_role_arns" {
  description = "IAM roles that get cluster-admin on every EKS cluster."
  type        = list(string)
  default     = []
}

variable "cluster_endpoint_public_access_cidrs" {
  description = "CIDRs allowed to reach the Kubernetes APIs from the internet; empty keeps them private."
  type        = list(string)
  default     = []
}

variable "kubernetes_version" {
  description = "EKS version of every cluster (the manifests are validated for 1.33)."
  type        = string
  default     = "1.33"
}

variable "database_nodes_per_region" {
  description = "CockroachDB nodes per region."
  type        = number
  default     = 3
}
