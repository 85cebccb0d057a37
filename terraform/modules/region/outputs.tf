output "cluster_name" {
  description = "EKS cluster name; `aws eks update-kubeconfig --name <this> --region <region>`."
  value       = aws_eks_cluster.this.name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint (private unless cluster_endpoint_public_access_cidrs is set)."
  value       = aws_eks_cluster.this.endpoint
}

output "vpc_id" {
  description = "The region's VPC."
  value       = aws_vpc.this.id
}

output "nat_public_ips" {
  description = "Egress addresses of the region (one NAT gateway per zone); the database allow-list admits exactly these."
  value       = aws_eip.nat[*].public_ip
}

output "load_balancer_dns_name" {
  description = "DNS name of the service's ALB; the latency record aliases it."
  value       = aws_lb.service.dns_name
}

output "load_balancer_zone_id" {
  description = "Canonical hosted zone of the ALB, for alias records."
  value       = aws_lb.service.zone_id
}

output "target_group_arn" {
  description = "Target group of the service pods; set it as TARGET_GROUP_ARN in the region's k8s overlay (params.env)."
  value       = aws_lb_target_group.service.arn
}

output "regional_fqdn" {
  description = "Name that always reaches this region's load balancer (Route53 health checks, drills)."
  value       = aws_route53_record.regional.fqdn
}

output "failover_controller_role_arn" {
  description = "IRSA role of the failover controller; set it as CONTROLLER_ROLE_ARN in the region's k8s overlay (params.env)."
  value       = aws_iam_role.failover_controller.arn
}

output "load_balancer_controller_role_arn" {
  description = "IRSA role for the AWS Load Balancer Controller (install it in kube-system with this role annotation)."
  value       = aws_iam_role.load_balancer_controller.arn
}

output "kms_key_arn" {
  description = "The region's KMS key (EKS secrets, log groups)."
  value       = aws_kms_key.this.arn
}

output "dns_addresses" {
  description = "Static public IPv4 addresses of the controller's DNS load balancer (one per public subnet): the glue of ns-<region>.<zone>."
  value       = aws_eip.dns[*].public_ip
}

output "dns_target_group_arn" {
  description = "IP target group of the controller's DNS (TCP_UDP 5353), for the TargetGroupBinding failover-controller-dns."
  value       = aws_lb_target_group.dns.arn
}
