output "cluster_id" {
  description = "CockroachDB Cloud cluster ID."
  value       = cockroach_cluster.this.id
}

output "sql_hosts" {
  description = "Regional SQL host names by region; each region's service connects to its own region's host."
  value       = local.sql_hosts
}

output "service_database_urls" {
  description = "Per region, the service's database URL (SERVICE_DATABASE_URL). Secret: store it in the Kubernetes Secret service-database, key url."
  sensitive   = true
  value = {
    for region, host in local.sql_hosts :
    region => "postgresql://service:${random_password.sql["service"].result}@${host}:26257/${var.database_name}?sslmode=verify-full"
  }
}

output "controller_database_urls" {
  description = "Per region, the failover controller's database URL (FAILOVER_DATABASE_URL). Secret: store it in the Kubernetes Secret failover-controller, key database-url."
  sensitive   = true
  value = {
    for region, host in local.sql_hosts :
    region => "postgresql://failover_controller:${random_password.sql["failover_controller"].result}@${host}:26257/${var.database_name}?sslmode=verify-full"
  }
}

output "ca_certificate" {
  description = "PEM CA certificate of the cluster; mount it beside the database URL when the system trust store does not cover the cluster's certificate."
  value       = data.cockroach_cluster_cert.this.cert
}
