//! Typed configuration: what the controller probes, how it decides, where it
//! listens and what it may change.
//!
//! Loaded in layers (see [`load`]) and checked by [`Settings::validate`]
//! before any port is bound, so a bad setting exits naming its field.

mod load;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::secret::Secret;

pub use load::{load, ConfigError, Overrides as FlagOverrides, DEFAULT_TOML};

/// Every setting of one controller replica.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Names this replica in the lease and the audit log.
    pub controller_id: String,
    /// The region this replica runs in; it is the vantage point's name.
    pub region: String,
    /// When set, decisions are made and reported but nothing is changed.
    pub dry_run: bool,
    /// Admin port: status page, JSON status, metrics, health, admin API.
    pub http_listen: SocketAddr,
    /// Authoritative DNS, served on UDP and TCP.
    pub dns_listen: SocketAddr,
    /// The shared database (votes, lease, overrides, audit, drain flags).
    pub database_url: Secret,
    /// Bearer token of the admin API; empty disables the admin API.
    pub admin_token: Secret,
    /// The role the replicas connect as; `migrate` (run as the migration
    /// role) grants it the controller's privileges. Empty: no grants.
    pub database_runtime_role: String,
    /// How long SIGTERM keeps the process unready before closing listeners.
    pub shutdown_drain_seconds: u64,
    pub probe: ProbeSettings,
    pub decision: DecisionSettings,
    pub lease: LeaseSettings,
    pub dns: DnsSettings,
    pub route53: Route53Settings,
    /// The regions this controller watches and steers.
    #[serde(default)]
    pub regions: Vec<RegionSettings>,
}

/// How often and how strictly every region is probed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSettings {
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Consecutive failures (K) that turn a vantage point's verdict down.
    pub failures_to_down: u32,
    /// Consecutive successes (M) that turn it up again.
    pub successes_to_up: u32,
    /// Votes older than this are ignored: that vantage is not "heard from".
    pub vote_freshness_ms: u64,
    pub path: String,
    /// How `regions[].instances` are probed: `http`, or `https` when the
    /// instances sit behind a TLS-terminating load balancer that has a
    /// certificate for their IP addresses (trusted through `ca_file`).
    /// `health_urls` carry their own scheme.
    pub instance_scheme: String,
    /// Source address for probes; empty lets the kernel choose.
    pub local_address: String,
    /// PEM bundle of private CAs trusted for https health URLs beside the
    /// public web PKI roots (internal load balancers, service meshes);
    /// empty trusts the public roots only.
    pub ca_file: String,
    /// PEM certificate (chain, leaf first) the probes present to https
    /// health URLs that require a client certificate (mutual TLS: a mesh in
    /// STRICT mode, a gateway in MUTUAL mode); set with `client_key_file`,
    /// or neither. Empty: the probes present no certificate.
    pub client_cert_file: String,
    /// PEM private key of `client_cert_file` (PKCS#8, PKCS#1 or SEC1).
    pub client_key_file: String,
    /// Round trips between regions, in milliseconds
    /// (`round_trip_ms["us-east-1"]["ap-southeast-1"] = 220`, either
    /// direction): a region far from this replica gets the time of a cold
    /// HTTPS connection to it, `cold_round_trips` round trips and
    /// `timeout_margin_ms`, when that is more than `timeout_ms`
    /// ([`ProbeSettings::timeout_for`]). Empty: `timeout_ms` for every region.
    #[serde(default)]
    pub round_trip_ms: BTreeMap<String, BTreeMap<String, f64>>,
    /// Round trips of a cold HTTPS connection and its request: TCP, TLS 1.3
    /// and the request itself.
    pub cold_round_trips: f64,
    /// Added to the cold connection's round trips (server time, jitter).
    pub timeout_margin_ms: u64,
}

impl ProbeSettings {
    /// The round trip between `from` and `to`, as configured (either
    /// direction).
    pub fn round_trip(&self, from: &str, to: &str) -> Option<f64> {
        let get = |a: &str, b: &str| self.round_trip_ms.get(a).and_then(|m| m.get(b)).copied();
        get(from, to).or_else(|| get(to, from))
    }

    /// The probe timeout of region `target` from a replica in `vantage`:
    /// `timeout_ms`, or a cold connection's time when that is longer, so
    /// that one reconnect across the WAN is never a failure.
    pub fn timeout_for(&self, vantage: &str, target: &str) -> u64 {
        let cold = self.round_trip(vantage, target).map_or(0, |rtt| {
            (self.cold_round_trips * rtt).ceil() as u64 + self.timeout_margin_ms
        });
        self.timeout_ms.max(cold)
    }
}

/// Decision loop cadence, safety rules and hold-down.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionSettings {
    pub interval_ms: u64,
    /// Never drain a region when fewer would remain serving.
    pub min_healthy_regions: usize,
    /// More regions failing at once than this freezes automation.
    pub max_simultaneous_failures: usize,
    pub hold_down_base_ms: u64,
    pub hold_down_max_ms: u64,
    /// The flap penalty halves over this long without a drain.
    pub hold_down_half_life_ms: u64,
    /// An automatic freeze lifts after the failures have cleared this long.
    pub auto_unfreeze_after_ms: u64,
    /// How old this replica's view (votes, overrides and drain flags, read
    /// from the database by the last decision round that succeeded) may grow
    /// before the replica stops answering DNS for the zone (SERVFAIL, so that
    /// resolvers ask another name server) and reports not ready. A replica
    /// cut off from the database must not steer clients from a view it can
    /// no longer refresh; a short database stall must not take every name
    /// server down at once, hence a few lease TTLs.
    pub max_view_age_ms: u64,
}

/// The leader lease in the database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseSettings {
    pub name: String,
    pub ttl_ms: u64,
    pub renew_interval_ms: u64,
}

/// The zone served by the authoritative DNS server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSettings {
    pub enabled: bool,
    pub zone: String,
    pub record: String,
    pub ttl_seconds: u32,
    pub nameservers: Vec<String>,
    pub hostmaster: String,
    /// The client region of a query whose source address matches no
    /// `client_subnets` prefix; empty means the first configured region.
    /// Never this replica's own region: every replica must give such a
    /// client the same answer.
    pub default_client_region: String,
    pub use_measured_rtt: bool,
    pub client_subnets: Vec<ClientSubnet>,
    /// latency_ms[client_region][serving_region], in milliseconds.
    pub latency_ms: BTreeMap<String, BTreeMap<String, f64>>,
}

/// Clients whose address is in `cidr` are treated as being in `region`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSubnet {
    pub cidr: IpNet,
    pub region: String,
}

/// The Route53 latency records this controller owns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route53Settings {
    pub enabled: bool,
    pub hosted_zone_id: String,
    pub record_name: String,
    pub record_ttl: i64,
    /// Only for tests: a local Route53 API server.
    pub endpoint_url: String,
    pub aws_region: String,
    /// Kept well under Route53's 5 requests per second per account.
    pub max_requests_per_second: f64,
    pub max_retries: u32,
    pub insync_timeout_ms: u64,
    pub drift_check_interval_ms: u64,
    /// Lets a region's record go without a Route53 health check (no
    /// `health_check_id`). Off: such a configuration is refused at start-up,
    /// because the health check is the data-plane drain that works when the
    /// controller or the Route53 API is down.
    pub allow_records_without_health_check: bool,
}

/// One region: where its instances are, and its Route53 record.
///
/// Two shapes, which may be mixed: `instances` (ip:port, probed over plain
/// HTTP at `probe.path`; their IPs are the DNS answers and, by default, the
/// Route53 record values), as on one machine; or, as on AWS, `health_urls`
/// (full http/https URLs of the region's load balancer) with an alias target
/// (`alias_dns_name`, `alias_hosted_zone_id`) for the Route53 record.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSettings {
    pub name: String,
    /// host:port of each service instance; probed at `probe.path`, and their
    /// IPs are the DNS answers for this region.
    #[serde(default)]
    pub instances: Vec<String>,
    /// Full region-health URLs (e.g. the region's load balancer,
    /// `https://api-us-east-1.example.com/healthz/instance`), probed as given,
    /// beside the instances: TLS with SNI and hostnames resolved each probe.
    #[serde(default)]
    pub health_urls: Vec<String>,
    /// Route53 alias target (e.g. the region's ALB DNS name); when set, the
    /// latency record is an alias record instead of A records with values.
    /// In authoritative DNS, a region without ip instances is answered with
    /// a CNAME to this name.
    #[serde(default)]
    pub alias_dns_name: String,
    /// The canonical hosted zone of the alias target (the ALB's zone id).
    #[serde(default)]
    pub alias_hosted_zone_id: String,
    /// Route53 EvaluateTargetHealth of the alias record.
    #[serde(default)]
    pub evaluate_target_health: bool,
    /// The AWS region of the latency record.
    #[serde(default)]
    pub aws_region: String,
    /// The Route53 health check attached to this region's record.
    #[serde(default)]
    pub health_check_id: String,
    /// Values of the Route53 record; empty means the instances' IPs. Not
    /// with an alias target.
    #[serde(default)]
    pub route53_values: Vec<String>,
}

impl Settings {
    /// The probe interval as a duration.
    pub fn probe_interval(&self) -> Duration {
        Duration::from_millis(self.probe.interval_ms)
    }

    /// The names of all configured regions, in configuration order.
    pub fn region_names(&self) -> Vec<String> {
        self.regions.iter().map(|r| r.name.clone()).collect()
    }

    /// The client region of addresses that match no `dns.client_subnets`
    /// prefix: `dns.default_client_region`, else the first configured
    /// region. It depends on the shared configuration only, so every replica
    /// answers such a client alike.
    pub fn default_client_region(&self) -> String {
        match self.dns.default_client_region.as_str() {
            "" => self
                .regions
                .first()
                .map(|r| r.name.clone())
                .unwrap_or_default(),
            configured => configured.to_string(),
        }
    }

    /// The controller id, derived from the region and host when not set.
    pub fn effective_controller_id(&self) -> String {
        if !self.controller_id.is_empty() {
            return self.controller_id.clone();
        }
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        format!("{}-{}-{}", self.region, host.trim(), std::process::id())
    }
}

impl RegionSettings {
    /// Every URL the prober checks for this region: the instances at
    /// `probe_path` over `scheme` (`probe.instance_scheme`), then the health
    /// URLs as given.
    pub fn probe_urls(&self, scheme: &str, probe_path: &str) -> Vec<String> {
        self.instances
            .iter()
            .map(|i| format!("{scheme}://{i}{probe_path}"))
            .chain(self.health_urls.iter().cloned())
            .collect()
    }

    /// Whether the Route53 record is an alias record.
    pub fn has_alias(&self) -> bool {
        !self.alias_dns_name.is_empty()
    }

    /// The IP addresses of this region's instances, deduplicated, in order.
    pub fn instance_ips(&self) -> Vec<std::net::IpAddr> {
        let mut ips = Vec::new();
        for instance in &self.instances {
            if let Ok(addr) = instance.parse::<SocketAddr>() {
                if !ips.contains(&addr.ip()) {
                    ips.push(addr.ip());
                }
            }
        }
        ips
    }
}
