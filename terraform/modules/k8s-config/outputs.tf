output "files" {
  description = "Repository-relative path => content of every file kustomize reads that comes from Terraform."
  value = merge(
    {
      "k8s/base/failover-controller/config.toml" = local.controller_config
      "k8s/base/migrate/migrate.env"             = local.migrate_env
      "k8s/base/database-ca.crt"                 = var.database_ca_certificate
    },
    { for name, content in local.params_env : "k8s/overlays/${name}/params.env" => content },
  )
}

output "controller_regions" {
  description = "The controller's [[regions]] as rendered: what it probes and the latency records it owns (name, SetIdentifier = region, alias target, health check)."
  value       = local.controller_regions
}

output "database_regions" {
  description = "SERVICE_DATABASE_REGIONS as rendered: service region = CockroachDB region, primary first."
  value       = local.database_regions
}
