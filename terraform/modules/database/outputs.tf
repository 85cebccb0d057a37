output "cluster_id" {
  description = "CockroachDB Cloud cluster ID."
  value       = cockroach_cluster.this.id
}

output "sql_hosts" {
  description = "Regional SQL host names by region; each region's service connects to its own region's host."
  value       = local.sql_hosts
}

locals {
  # libpq URL parameters of every database URL: TLS with the server checked
  # against the cluster's CA (mounted from the ConfigMap database-ca) and by
  # host name, as CockroachDB Cloud requires.
  url_tls = "sslmode=verify-full&sslrootcert=${var.ca_certificate_path}"
  database_urls = {
    for user, _ in local.sql_users : user => {
      for region, host in local.sql_hosts :
      region => "postgresql://${user}:${random_password.sql[user].result}@${host}:26257/${var.database_name}?${local.url_tls}"
    }
  }
}

output "database_urls" {
  description = "Per SQL user (service, service_migrate, failover_controller, failover_controller_migrate), per region, the database URL. Secret: the Kubernetes Secrets service-database, service-migrate-database, failover-controller (key database-url) and failover-controller-migrate-database."
  sensitive   = true
  value       = local.database_urls
}

output "runtime_roles" {
  description = "The runtime role of each component, which its migrations grant row access to (SERVICE_DATABASE_RUNTIME_ROLE, FAILOVER_DATABASE_RUNTIME_ROLE)."
  value = {
    service             = cockroach_sql_user.this["service"].name
    failover_controller = cockroach_sql_user.this["failover_controller"].name
  }
}

output "cockroach_regions" {
  description = "The cluster's region names (CockroachDB Cloud: aws-<region>), by AWS region, for SERVICE_DATABASE_REGIONS."
  value       = { for region in var.regions : region => "aws-${region}" }
}

output "ca_certificate" {
  description = "PEM CA certificate of the cluster; mount it beside the database URL when the system trust store does not cover the cluster's certificate."
  value       = data.cockroach_cluster_cert.this.cert
}
