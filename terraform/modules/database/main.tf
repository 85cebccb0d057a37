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

# Two SQL users per component: a migration role, which the migrate Jobs use
# (schema changes, the multi-region DDL, grants), and a runtime role, which
# the pods use and which the migrations grant only row access on their own
# tables (service/src/db/grants.rs, failover-controller/src/db.rs) and take
# out of `admin`, which CockroachDB Cloud gives every user it creates. The
# provider has no grant resource, so the grants live in the migrations,
# where they are tested against PostgreSQL.
locals {
  sql_users = {
    service_migrate             = "migration"
    service                     = "runtime"
    failover_controller_migrate = "migration"
    failover_controller         = "runtime"
  }
}

resource "random_password" "sql" {
  for_each = local.sql_users
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
