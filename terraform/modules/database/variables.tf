variable "cluster_name" {
  description = "Name of the CockroachDB Cloud cluster."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{5,39}$", var.cluster_name))
    error_message = "cluster_name must be 6 to 40 lower-case letters, digits or dashes, starting with a letter (CockroachDB Cloud's rule)."
  }
}

variable "regions" {
  description = "AWS regions of the cluster, primary first (topology output database_regions). The same regions as the EKS clusters, so every service instance has a local replica to read from."
  type        = list(string)

  validation {
    condition     = length(var.regions) >= 3 && length(distinct(var.regions)) == length(var.regions)
    error_message = "SURVIVE REGION FAILURE needs at least three distinct regions."
  }
}

variable "nodes_per_region" {
  description = "CockroachDB nodes per region. Three keep a region's ranges available through one node failure."
  type        = number
  default     = 3

  validation {
    condition     = var.nodes_per_region >= 3
    error_message = "nodes_per_region must be at least 3."
  }
}

variable "vcpus_per_node" {
  description = "vCPUs per node (CockroachDB Cloud machine size)."
  type        = number
  default     = 4

  validation {
    condition     = contains([4, 8, 16, 32], var.vcpus_per_node)
    error_message = "vcpus_per_node must be 4, 8, 16 or 32."
  }
}

variable "storage_gib" {
  description = "Storage per node in GiB."
  type        = number
  default     = 150

  validation {
    condition     = var.storage_gib >= 15
    error_message = "storage_gib must be at least 15."
  }
}

variable "database_name" {
  description = "SQL database of the service and the controller (tables of both live in it)."
  type        = string
  default     = "geo"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.database_name))
    error_message = "database_name must be a lower-case SQL identifier."
  }
}

variable "allowed_egress_ips" {
  description = "Per region, the public egress IPv4 addresses of the EKS cluster (region module output nat_public_ips). Only these reach SQL; the console stays closed."
  type        = map(list(string))

  validation {
    condition     = alltrue(flatten([for region, ips in var.allowed_egress_ips : [for ip in ips : can(cidrhost("${ip}/32", 0))]]))
    error_message = "allowed_egress_ips must hold IPv4 addresses."
  }
}

variable "ca_certificate_path" {
  description = "Where the pods find the cluster's CA certificate (the ConfigMap database-ca mounted at /etc/database-ca); the database URLs name it as sslrootcert."
  type        = string
  default     = "/etc/database-ca/ca.crt"

  validation {
    condition     = startswith(var.ca_certificate_path, "/")
    error_message = "ca_certificate_path must be an absolute path."
  }
}
