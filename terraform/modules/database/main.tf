# CockroachDB multi-region cluster through CockroachDB Cloud (Advanced plan,
# dedicated nodes) in the same AWS regions as the EKS clusters.
#
# Why CockroachDB Cloud and not self-hosted on the EKS clusters: a
# self-hosted multi-region cluster needs pod-to-pod routing between three
# VPCs (peering or Transit Gateway plus cross-cluster DNS), per-node TLS
# certificates, and a team that upgrades, rebalances and backs up
# CockroachDB; the managed service gives the same SQL and survival goals
# without that. The service's migrations (not Terraform) run the
# CockroachDB-only statements: ALTER DATABASE ... PRIMARY REGION / ADD
# REGION / SURVIVE REGION FAILURE, and table localities.

resource "cockroach_cluster" "this" {
  name           = var.cluster_name
  cloud_provider = "AWS"
  plan           = "ADVANCED"

  dedicated = {
    storage_gib      = var.storage_gib
    num_virtual_cpus = var.vcpus_per_node
  }

  regions = [for region in var.regions : {
    name       = region
    node_count = var.nodes_per_region
  }]

  delete_protection = true
}

resource "cockroach_allow_list" "egress" {
  for_each = merge([
    for region, ips in var.allowed_egress_ips : {
      for index, ip in ips : "${region}-${index}" => ip
    }
  ]...)

  cluster_id = cockroach_cluster.this.id
  name       = "eks-${each.key}"
  cidr_ip    = each.value
  cidr_mask  = 32
  sql        = true
  ui         = false
}

resource "cockroach_database" "this" {
  cluster_id = cockroach_cluster.this.id
  name       = var.database_name
}

# One SQL user per binary, so that the audit log and connection limits tell
# them apart. Grants are applied by the service's migrations.
resource "random_password" "sql" {
  for_each = toset(["service", "failover_controller"])
  length   = 40
  special  = false
}

resource "cockroach_sql_user" "this" {
  for_each   = random_password.sql
  cluster_id = cockroach_cluster.this.id
  name       = each.key
  password   = each.value.result
}

locals {
  # The cluster's regional SQL endpoints, by region name.
  sql_hosts = { for region in cockroach_cluster.this.regions : region.name => region.sql_dns }
}

# CA certificate of the cluster, for clients that verify the server
# (sslmode=verify-full with sslrootcert).
data "cockroach_cluster_cert" "this" {
  id = cockroach_cluster.this.id
}
