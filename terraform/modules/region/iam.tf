# IRSA roles of the pods that talk to AWS: the failover controller (Route53,
# least privilege from the controller-policy module) and the AWS Load
# Balancer Controller (only what a TargetGroupBinding on an existing target
# group needs). The service itself has no AWS role: it never calls AWS.

locals {
  oidc_issuer = replace(aws_iam_openid_connect_provider.this.url, "https://", "")

  irsa_subjects = {
    failover_controller      = "system:serviceaccount:${var.kubernetes_namespace}:failover-controller"
    load_balancer_controller = "system:serviceaccount:kube-system:aws-load-balancer-controller"
  }
}

data "aws_iam_policy_document" "irsa_trust" {
  for_each = local.irsa_subjects

  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.this.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = [each.value]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "failover_controller" {
  name                 = "${var.cluster_name}-failover-controller"
  description          = "IRSA role of the failover controller: Route53 record changes on the service name only"
  assume_role_policy   = data.aws_iam_policy_document.irsa_trust["failover_controller"].json
  max_session_duration = 3600
  tags                 = local.tags
}

resource "aws_iam_role_policy" "failover_controller_route53" {
  name   = "route53-owned-records"
  role   = aws_iam_role.failover_controller.id
  policy = var.controller_policy_json
}

resource "aws_iam_role" "load_balancer_controller" {
  name                 = "${var.cluster_name}-aws-lb-controller"
  description          = "IRSA role of the AWS Load Balancer Controller: register pod IPs in the service target group"
  assume_role_policy   = data.aws_iam_policy_document.irsa_trust["load_balancer_controller"].json
  max_session_duration = 3600
  tags                 = local.tags
}

data "aws_iam_policy_document" "load_balancer_controller" {
  statement {
    sid       = "RegisterServicePods"
    effect    = "Allow"
    actions   = ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"]
    resources = [aws_lb_target_group.service.arn]
  }

  # Describe calls support no resource-level permissions.
  statement {
    sid    = "DescribeLoadBalancing"
    effect = "Allow"
    actions = [
      "elasticloadbalancing:DescribeTargetGroups",
      "elasticloadbalancing:DescribeTargetHealth",
      "elasticloadbalancing:DescribeLoadBalancers",
      "elasticloadbalancing:DescribeListeners",
      "elasticloadbalancing:DescribeTags",
      "ec2:DescribeInstances",
      "ec2:DescribeNetworkInterfaces",
      "ec2:DescribeSecurityGroups",
      "ec2:DescribeSubnets",
      "ec2:DescribeVpcs",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "load_balancer_controller" {
  name   = "target-group-binding"
  role   = aws_iam_role.load_balancer_controller.id
  policy = data.aws_iam_policy_document.load_balancer_controller.json
}
