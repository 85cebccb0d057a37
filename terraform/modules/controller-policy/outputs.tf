output "policy_json" {
  description = "IAM policy document (JSON) for the failover controller's IRSA role."
  value = jsonencode({
    Version   = "2012-10-17"
    Statement = local.statements
  })
}

output "actions" {
  description = "Every IAM action the policy allows, sorted; tests and reviewers compare it with the three the controller needs."
  value       = sort(flatten([for statement in local.statements : statement.Action]))
}
