//! Integration tests of the failover controller, against the real things:
//! PostgreSQL, HTTP and HTTPS servers (mutual TLS too) on loopback, the moto
//! Route53 API server, a real DNS client (and dig, drill and dnsviz), and the
//! controller binary itself.

mod admin;
mod bench;
mod database_tls;
mod db_outage;
mod db_proxy;
mod dns;
mod dns_conformance;
mod dns_tools;
mod early_leave;
mod end_to_end;
mod endpoints;
mod failback;
mod fencing;
mod helpers;
mod mtls_probe;
mod processes;
mod quorum;
mod route53;
mod route53_fencing;
mod route53_proxy;
mod runtime_role;
mod services;
mod tls_probe;
mod wan_probe;
