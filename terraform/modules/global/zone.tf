# The hosted zone, its delegation from the parent, query logging and DNSSEC.

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
}

resource "aws_route53_zone" "this" {
  name          = var.zone_name
  comment       = "Multi-region service; the latency records of the service name belong to the failover controller"
  force_destroy = false
  tags          = var.tags

  lifecycle {
    precondition {
      condition     = data.aws_region.current.name == "us-east-1"
      error_message = "Pass this module an aws provider configured for us-east-1: Route53 query logs and DNSSEC keys must be there."
    }
  }
}

resource "aws_route53_record" "delegation" {
  count   = var.parent_zone_id == null ? 0 : 1
  zone_id = var.parent_zone_id
  name    = var.zone_name
  type    = "NS"
  ttl     = 172800
  records = aws_route53_zone.this.name_servers
}

resource "aws_kms_key" "logs" {
  description             = "${var.zone_name}: DNS query log encryption"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsEncrypts"
        Effect    = "Allow"
        Principal = { Service = "logs.us-east-1.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = { "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:us-east-1:${local.account_id}:log-group:*" }
        }
      },
    ]
  })
  tags = var.tags
}

resource "aws_cloudwatch_log_group" "queries" {
  name              = "/aws/route53/${var.zone_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.logs.arn
  tags              = var.tags
}

data "aws_iam_policy_document" "route53_writes_query_logs" {
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.queries.arn}:*"]

    principals {
      type        = "Service"
      identifiers = ["route53.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_cloudwatch_log_resource_policy" "route53_query_logging" {
  policy_name     = "route53-query-logging-${replace(var.zone_name, ".", "-")}"
  policy_document = data.aws_iam_policy_document.route53_writes_query_logs.json
}

resource "aws_route53_query_log" "this" {
  zone_id                  = aws_route53_zone.this.zone_id
  cloudwatch_log_group_arn = aws_cloudwatch_log_group.queries.arn

  depends_on = [aws_cloudwatch_log_resource_policy.route53_query_logging]
}

resource "aws_kms_key" "dnssec" {
  # checkov:skip=CKV_AWS_7: DNSSEC needs an asymmetric ECC_NIST_P256 key, and KMS cannot rotate asymmetric keys; rotate by adding a second key-signing key.
  count                    = var.enable_dnssec ? 1 : 0
  description              = "${var.zone_name}: DNSSEC key-signing key"
  customer_master_key_spec = "ECC_NIST_P256"
  key_usage                = "SIGN_VERIFY"
  deletion_window_in_days  = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "Route53DnssecSigns"
        Effect    = "Allow"
        Principal = { Service = "dnssec-route53.amazonaws.com" }
        Action    = ["kms:DescribeKey", "kms:GetPublicKey", "kms:Sign", "kms:Verify"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      },
      {
        Sid       = "Route53DnssecGrants"
        Effect    = "Allow"
        Principal = { Service = "dnssec-route53.amazonaws.com" }
        Action    = "kms:CreateGrant"
        Resource  = "*"
        Condition = { Bool = { "kms:GrantIsForAWSResource" = "true" } }
      },
    ]
  })
  tags = var.tags
}

resource "aws_route53_key_signing_key" "this" {
  count                      = var.enable_dnssec ? 1 : 0
  hosted_zone_id             = aws_route53_zone.this.id
  key_management_service_arn = aws_kms_key.dnssec[0].arn
  name                       = "ksk-1"
}

resource "aws_route53_hosted_zone_dnssec" "this" {
  count          = var.enable_dnssec ? 1 : 0
  hosted_zone_id = aws_route53_key_signing_key.this[0].hosted_zone_id

  depends_on = [aws_route53_key_signing_key.this]
}

# The DS record goes into the parent only once the zone is signed: a DS
# published before signing is active makes validating resolvers reject the
# whole zone. The controllers' subdomain (authoritative_zone) stays
# unsigned, an insecure delegation (NS without DS): their DNS server does
# not sign, and a DS for it would make validating resolvers reject it.
resource "aws_route53_record" "delegation_signer" {
  count   = var.enable_dnssec && var.parent_zone_id != null ? 1 : 0
  zone_id = var.parent_zone_id
  name    = var.zone_name
  type    = "DS"
  ttl     = 3600
  records = [aws_route53_key_signing_key.this[0].ds_record]

  depends_on = [aws_route53_hosted_zone_dnssec.this]
}
