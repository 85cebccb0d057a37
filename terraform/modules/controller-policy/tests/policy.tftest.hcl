# Least-privilege tests of the failover controller's Route53 policy.

variables {
  hosted_zone_id = "Z0123456789ABCDEFGHIJ"
  record_names   = ["api.geo.example.com"]
}

run "allows_exactly_the_three_route53_calls" {
  command = plan

  assert {
    condition     = output.actions == tolist(["route53:ChangeResourceRecordSets", "route53:GetChange", "route53:ListResourceRecordSets"])
    error_message = "Only ChangeResourceRecordSets, ListResourceRecordSets and GetChange are allowed."
  }

  assert {
    condition     = jsondecode(output.policy_json).Statement[0].Resource == ["arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ"]
    error_message = "Record changes must be limited to the one hosted zone."
  }

  assert {
    condition     = jsondecode(output.policy_json).Statement[0].Condition["ForAllValues:StringEquals"]["route53:ChangeResourceRecordSetsNormalizedRecordNames"] == ["api.geo.example.com"]
    error_message = "Record changes must be limited to the service name."
  }

  assert {
    condition     = jsondecode(output.policy_json).Statement[0].Condition["ForAllValues:StringEquals"]["route53:ChangeResourceRecordSetsRecordTypes"] == ["A"]
    error_message = "Record changes must be limited to A records by default."
  }

  assert {
    condition     = alltrue([for statement in jsondecode(output.policy_json).Statement : !contains(statement.Resource, "*")])
    error_message = "No statement may use a bare * resource."
  }
}

run "rejects_zone_id_with_prefix" {
  command = plan

  variables {
    hosted_zone_id = "/hostedzone/Z0123456789ABCDEFGHIJ"
  }

  expect_failures = [var.hosted_zone_id]
}

run "rejects_wildcard_record_names" {
  command = plan

  variables {
    record_names = ["*.geo.example.com"]
  }

  expect_failures = [var.record_names]
}

run "rejects_empty_record_names" {
  command = plan

  variables {
    record_names = []
  }

  expect_failures = [var.record_names]
}

run "rejects_ns_record_type" {
  command = plan

  variables {
    record_types = ["A", "NS"]
  }

  expect_failures = [var.record_types]
}
