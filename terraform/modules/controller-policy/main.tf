locals {
  zone_arn = "arn:aws:route53:::hostedzone/${var.hosted_zone_id}"

  # Exactly the three calls the controller makes (see DESIGN.md, failover
  # control plane): change the records in one batch, list them to repair
  # drift, and poll GetChange until INSYNC. Nothing else, and only on the zone
  # and the record names it owns.
  statements = [
    {
      Sid      = "ChangeOwnedLatencyRecords"
      Effect   = "Allow"
      Action   = ["route53:ChangeResourceRecordSets"]
      Resource = [local.zone_arn]
      Condition = {
        "ForAllValues:StringEquals" = {
          "route53:ChangeResourceRecordSetsNormalizedRecordNames" = var.record_names
          "route53:ChangeResourceRecordSetsRecordTypes"           = var.record_types
          "route53:ChangeResourceRecordSetsActions"               = ["CREATE", "UPSERT", "DELETE"]
        }
      }
    },
    {
      Sid      = "ListRecordsOfTheZone"
      Effect   = "Allow"
      Action   = ["route53:ListResourceRecordSets"]
      Resource = [local.zone_arn]
    },
    {
      Sid    = "WaitForChangesToBeInSync"
      Effect = "Allow"
      Action = ["route53:GetChange"]
      # GetChange does not support resource-level scoping to a zone; change
      # IDs are not known in advance.
      Resource = ["arn:aws:route53:::change/*"]
    },
  ]
}
