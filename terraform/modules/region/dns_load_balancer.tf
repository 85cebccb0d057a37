# The failover controller's authoritative DNS from the internet: a Network
# Load Balancer with one Elastic IP per public subnet (static addresses, so
# the glue records of ns-<region>.<zone> never change), one TCP_UDP
# listener on 53 forwarding to the controller pod's 5353 (an IP target
# group that the AWS Load Balancer Controller fills through the
# TargetGroupBinding failover-controller-dns). The target's health is the
# controller's /readyz, which fails while its view of the database is
# stale (its answers are SERVFAIL then), so the NLB stops sending it
# queries and resolvers ask the other regions' name servers.

resource "aws_eip" "dns" {
  # checkov:skip=CKV2_AWS_19: These addresses belong to the DNS load balancer (subnet_mapping), not to EC2 instances.
  count  = length(aws_subnet.public)
  domain = "vpc"
  tags   = merge(local.tags, { Name = "${var.cluster_name}-dns-${count.index}" })
}

resource "aws_lb" "dns" {
  # checkov:skip=CKV_AWS_91: NLB access logs cover TLS listeners only; DNS queries are logged by the controller (and Route53 query logs cover the parent zone).
  name               = "${var.name_prefix}-${var.short_name}-dns"
  load_balancer_type = "network"
  internal           = false
  # One controller replica per region: every address must reach it,
  # whichever zone it runs in.
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = true

  dynamic "subnet_mapping" {
    for_each = aws_subnet.public
    content {
      subnet_id     = subnet_mapping.value.id
      allocation_id = aws_eip.dns[subnet_mapping.key].id
    }
  }

  tags = local.tags
}

resource "aws_lb_target_group" "dns" {
  name        = "${var.name_prefix}-${var.short_name}-dns-pods"
  target_type = "ip"
  protocol    = "TCP_UDP"
  port        = 5353
  vpc_id      = aws_vpc.this.id
  # A replacement pod takes over within the controller's shutdown drain.
  deregistration_delay = 10

  health_check {
    protocol            = "HTTP"
    port                = "9190"
    path                = "/readyz"
    matcher             = "200"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = local.tags
}

resource "aws_lb_listener" "dns" {
  # checkov:skip=CKV_AWS_2: DNS over port 53 is plain UDP/TCP by protocol; there is no TLS to terminate.
  # checkov:skip=CKV_AWS_103: No TLS on a DNS listener (see CKV_AWS_2).
  load_balancer_arn = aws_lb.dns.arn
  port              = 53
  protocol          = "TCP_UDP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.dns.arn
  }

  tags = local.tags
}

# The pods (the cluster security group) accept DNS from anywhere (UDP keeps
# the client's address through the NLB) and the NLB's health checks on the
# status port from inside the VPC.
resource "aws_vpc_security_group_ingress_rule" "pods_dns" {
  for_each          = toset(["udp", "tcp"])
  security_group_id = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
  description       = "Controller DNS (${each.key} 5353) from the DNS load balancer's clients"
  ip_protocol       = each.key
  from_port         = 5353
  to_port           = 5353
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "pods_dns_health" {
  security_group_id = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
  description       = "Controller /readyz from the DNS load balancer's health checks"
  ip_protocol       = "tcp"
  from_port         = 9190
  to_port           = 9190
  cidr_ipv4         = var.vpc_cidr
}
