# Most inputs come from one entry of module.topology.regions; see
# ../../environments/example/main.tf for the wiring.

variable "region" {
  description = "AWS region of this module's provider; must match the provider configuration passed in."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as us-east-1."
  }
}

variable "cluster_name" {
  description = "EKS cluster name (topology output regions[region].cluster_name)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,99}$", var.cluster_name))
    error_message = "cluster_name must be lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "short_name" {
  description = "Short region code for names AWS limits to 32 characters (topology output regions[region].short_name)."
  type        = string

  validation {
    condition     = length(var.short_name) <= 6
    error_message = "short_name must be at most 6 characters."
  }
}

variable "name_prefix" {
  description = "Prefix of resource names, as given to the topology module."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,9}$", var.name_prefix))
    error_message = "name_prefix must be 1 to 10 lower-case letters, digits or dashes."
  }
}

variable "vpc_cidr" {
  description = "The region's VPC block (topology output)."
  type        = string

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be an IPv4 CIDR block."
  }
}

variable "availability_zones" {
  description = "Availability zone names, one per subnet pair (topology output regions[region].availability_zones)."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2
    error_message = "At least two availability zones are required."
  }
}

variable "private_subnet_cidrs" {
  description = "One private subnet per availability zone, for nodes and pods (topology output)."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_cidrs) >= 2
    error_message = "At least two private subnets (availability zones) are required; EKS needs two."
  }
}

variable "public_subnet_cidrs" {
  description = "One public subnet per availability zone, for the load balancer and NAT gateways (topology output)."
  type        = list(string)

  validation {
    condition     = length(var.public_subnet_cidrs) >= 2
    error_message = "At least two public subnets (availability zones) are required; an ALB needs two."
  }
}

variable "service_fqdn" {
  description = "Name clients call (topology output service_fqdn); the load balancer's certificate covers it."
  type        = string
}

variable "regional_fqdn" {
  description = "Name of this region's load balancer (topology output regions[region].regional_fqdn); Route53 health checks and drills use it."
  type        = string
}

variable "hosted_zone_id" {
  description = "Route53 zone (global module output zone_id) for certificate validation records."
  type        = string
}

variable "controller_policy_json" {
  description = "Route53 policy of the failover controller (controller-policy module output policy_json)."
  type        = string
}

variable "kubernetes_namespace" {
  description = "Namespace of the service and the failover controller; the IRSA trust is bound to it."
  type        = string
  default     = "geo"
}

variable "kubernetes_version" {
  description = "EKS Kubernetes version. k8s/ manifests are validated against this version's schemas."
  type        = string
  default     = "1.33"

  validation {
    condition     = contains(["1.32", "1.33", "1.34"], var.kubernetes_version)
    error_message = "kubernetes_version must be 1.32, 1.33 or 1.34 (the versions the manifests are validated for)."
  }
}

variable "node_instance_types" {
  description = "Instance types of the managed node group."
  type        = list(string)
  default     = ["m6i.large", "m6a.large"]
}

variable "node_count" {
  description = "Managed node group size: min, desired, max. At least one node per availability zone."
  type        = object({ min = number, desired = number, max = number })
  default     = { min = 3, desired = 3, max = 9 }

  validation {
    condition     = var.node_count.min >= 2 && var.node_count.min <= var.node_count.desired && var.node_count.desired <= var.node_count.max
    error_message = "node_count needs 2 <= min <= desired <= max."
  }
}

variable "cluster_admin_role_arns" {
  description = "IAM roles granted cluster-admin through EKS access entries (API authentication mode)."
  type        = list(string)
  default     = []
}

variable "cluster_endpoint_public_access_cidrs" {
  description = "CIDR blocks allowed to reach the Kubernetes API from the internet. Empty (the default) keeps the endpoint private: reach it through a VPN, bastion or CI runner inside the VPC."
  type        = list(string)
  default     = []

  validation {
    condition     = !contains(var.cluster_endpoint_public_access_cidrs, "0.0.0.0/0")
    error_message = "The Kubernetes API must not be open to 0.0.0.0/0."
  }
}

variable "log_retention_days" {
  description = "Retention of the region's CloudWatch log groups (flow logs, WAF, EKS control plane)."
  type        = number
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch retention value of at least one year."
  }
}

variable "waf_rate_limit_per_ip" {
  description = "Requests per IP per 5 minutes beyond which the WAF blocks that IP."
  type        = number
  default     = 6000

  validation {
    condition     = var.waf_rate_limit_per_ip >= 100
    error_message = "waf_rate_limit_per_ip must be at least 100 (the WAF minimum)."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
