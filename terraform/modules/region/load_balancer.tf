# The service's public entry in this region: an internet-facing ALB with TLS
# (ACM), a WAF, access logs, and an IP target group that the AWS Load
# Balancer Controller fills with the service's pods (k8s TargetGroupBinding).
# Terraform owns the ALB so that the Route53 health check and latency record
# (global module) can name it before any pod exists.

locals {
  lb_name = "${var.name_prefix}-${var.short_name}-api"
}

resource "aws_acm_certificate" "service" {
  domain_name               = var.service_fqdn
  subject_alternative_names = [var.regional_fqdn]
  validation_method         = "DNS"
  tags                      = local.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "certificate_validation" {
  for_each = {
    for option in aws_acm_certificate.service.domain_validation_options : option.domain_name => option
  }
  zone_id = var.hosted_zone_id
  name    = each.value.resource_record_name
  type    = each.value.resource_record_type
  records = [each.value.resource_record_value]
  ttl     = 300
  # Every region validates the same service name and gets the same CNAME.
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "service" {
  certificate_arn         = aws_acm_certificate.service.arn
  validation_record_fqdns = [for record in aws_route53_record.certificate_validation : record.fqdn]
}

resource "aws_security_group" "load_balancer" {
  name        = "${var.cluster_name}-api-lb"
  description = "Public HTTPS to the service load balancer"
  vpc_id      = aws_vpc.this.id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "load_balancer_https" {
  security_group_id = aws_security_group.load_balancer.id
  description       = "HTTPS from clients and Route53 health checkers"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "load_balancer_to_pods" {
  security_group_id            = aws_security_group.load_balancer.id
  description                  = "To the service pods' HTTP port"
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
  referenced_security_group_id = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

resource "aws_vpc_security_group_ingress_rule" "pods_from_load_balancer" {
  security_group_id            = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
  description                  = "Service pods' HTTP port from the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
  referenced_security_group_id = aws_security_group.load_balancer.id
}

resource "aws_lb" "service" {
  name                       = local.lb_name
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = aws_subnet.public[*].id
  security_groups            = [aws_security_group.load_balancer.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = true
  # Longer than the service's request_timeout_ms (10 s).
  idle_timeout = 30

  access_logs {
    bucket  = aws_s3_bucket.access_logs.id
    prefix  = "alb"
    enabled = true
  }

  tags = local.tags

  depends_on = [aws_s3_bucket_policy.access_logs]
}

resource "aws_lb_target_group" "service" {
  name        = "${local.lb_name}-pods"
  target_type = "ip"
  # checkov:skip=CKV_AWS_378: TLS ends at the ALB; pods speak HTTP inside the VPC on 8080, guarded by security groups and NetworkPolicy.
  protocol = "HTTP"
  port     = 8080
  vpc_id   = aws_vpc.this.id

  # Shorter than the pods' drain period plus shutdown grace (15 s): a pod
  # that is terminating has deregistered before it stops answering.
  deregistration_delay = 15

  health_check {
    path                = "/readyz"
    port                = "traffic-port"
    protocol            = "HTTP"
    matcher             = "200"
    interval            = 5
    timeout             = 2
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = local.tags
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.service.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = aws_acm_certificate_validation.service.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.service.arn
  }

  tags = local.tags
}

# api-<region>.<zone>: always this region's load balancer, whatever the
# latency record says. Route53 health checks and drills use it.
resource "aws_route53_record" "regional" {
  zone_id = var.hosted_zone_id
  name    = var.regional_fqdn
  type    = "A"

  alias {
    name                   = aws_lb.service.dns_name
    zone_id                = aws_lb.service.zone_id
    evaluate_target_health = false
  }
}
