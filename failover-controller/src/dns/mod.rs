//! Authoritative DNS for the service's zone: each client gets the instances
//! of the nearest serving region (or a CNAME to that region's alias target
//! when it has no ip instances).
//!
//! Layout:
//! - this module: the zone's static shape ([`ZoneConfig`]), the changing
//!   part ([`DnsView`]: which regions serve), and which region answers whom;
//! - [`lookup`]: the records (or NODATA, NXDOMAIN, REFUSED) for a question;
//! - [`edns`]: EDNS(0) negotiation and whether a reply fits the client's
//!   UDP payload;
//! - [`server`]: the hickory-server request handler, on TCP through
//!   hickory-server and on UDP through [`udp`] (a socket and a task per CPU),
//!   where [`fast_answer`] answers the service name's A and AAAA queries.
//!
//! Every replica builds its view from the drain flags in the database, so
//! every replica answers alike; a view the database has not refreshed for
//! `decision.max_view_age_ms` is not answered from (SERVFAIL).

pub mod edns;
pub mod fast_answer;
pub mod lookup;
pub mod server;
pub mod udp;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use hickory_proto::rr::Name;
use ipnet::IpNet;
use tokio::time::Instant;

use crate::config::Settings;

/// Errors of the DNS boundary.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("dns.{field}: {message}")]
    Name {
        field: &'static str,
        message: String,
    },
    #[error("cannot bind DNS on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// The zone's static shape, from the configuration.
#[derive(Debug, Clone)]
pub struct ZoneConfig {
    pub zone: Name,
    /// The service name answered with A/AAAA records.
    pub service_name: Name,
    pub ttl: u32,
    pub nameservers: Vec<Name>,
    pub hostmaster: Name,
    /// Client subnets, longest prefix first.
    pub client_subnets: Vec<(IpNet, String)>,
    pub default_client_region: String,
    /// Regions in configuration order, with their instance addresses.
    pub regions: Vec<(String, Vec<IpAddr>)>,
    /// Regions without ip instances are answered with a CNAME to their
    /// alias target (the load balancer's name), which resolvers follow.
    pub cnames: BTreeMap<String, Name>,
    /// latency_ms[client_region][region].
    pub latency_ms: BTreeMap<String, BTreeMap<String, f64>>,
    pub use_measured_rtt: bool,
}

impl ZoneConfig {
    pub fn from_settings(settings: &Settings) -> Result<Self, DnsError> {
        let dns = &settings.dns;
        let parse = |field: &'static str, value: &str| {
            Name::from_ascii(value).map_err(|e| DnsError::Name {
                field,
                message: format!("{value:?}: {e}"),
            })
        };
        let zone = parse("zone", &dns.zone)?;
        let service_name = parse("record", &format!("{}.{}", dns.record, dns.zone))?;
        let nameservers = dns
            .nameservers
            .iter()
            .map(|n| parse("nameservers", n))
            .collect::<Result<Vec<_>, _>>()?;
        let mut client_subnets: Vec<(IpNet, String)> = dns
            .client_subnets
            .iter()
            .map(|s| (s.cidr, s.region.clone()))
            .collect();
        client_subnets.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        let default_client_region = settings.default_client_region();
        Ok(Self {
            zone,
            service_name,
            ttl: dns.ttl_seconds,
            nameservers,
            hostmaster: parse("hostmaster", &dns.hostmaster)?,
            client_subnets,
            default_client_region,
            regions: settings
                .regions
                .iter()
                .map(|r| (r.name.clone(), r.instance_ips()))
                .collect(),
            cnames: settings
                .regions
                .iter()
                .filter(|r| r.instances.is_empty() && r.has_alias())
                .map(|r| {
                    let fqdn = format!("{}.", r.alias_dns_name.trim_end_matches('.'));
                    Ok((r.name.clone(), parse("regions.alias_dns_name", &fqdn)?))
                })
                .collect::<Result<_, DnsError>>()?,
            latency_ms: dns.latency_ms.clone(),
            use_measured_rtt: dns.use_measured_rtt,
        })
    }

    /// The client region of an address: longest matching subnet, else the
    /// default.
    pub fn client_region(&self, client: IpAddr) -> &str {
        self.client_subnets
            .iter()
            .find(|(net, _)| net.contains(&client))
            .map(|(_, region)| region.as_str())
            .unwrap_or(&self.default_client_region)
    }
}

/// What changes: which regions serve, the SOA serial, measured latencies.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DnsView {
    pub serving: BTreeSet<String>,
    /// Changes when the drain flags change (newest flag write, Unix seconds),
    /// so every replica reports the same serial.
    pub serial: u32,
    /// measured_rtt_ms[vantage_region][region], from the shared votes.
    pub measured_rtt_ms: BTreeMap<String, BTreeMap<String, f64>>,
    /// When the decision round that built this view started reading the
    /// database; None until a round has succeeded.
    pub refreshed_at: Option<Instant>,
    /// How long after `refreshed_at` the view may still be answered from
    /// (`decision.max_view_age_ms`).
    pub max_age: Duration,
}

impl DnsView {
    /// A view in which every region serves, never refreshed: it is not
    /// answered from until a decision round replaces it.
    pub fn all_serving(zone: &ZoneConfig) -> Self {
        Self {
            serving: zone.regions.iter().map(|(r, _)| r.clone()).collect(),
            serial: 1,
            ..Self::default()
        }
    }

    /// Whether answers may come from this view at `now`: it was read from
    /// the database no longer than `max_age` ago. A replica cut off from the
    /// database does not know which regions the others have drained since.
    pub fn is_fresh(&self, now: Instant) -> bool {
        self.refreshed_at
            .is_some_and(|at| now.saturating_duration_since(at) <= self.max_age)
    }
}

/// Regions ordered nearest first for a client region.
pub fn region_order(zone: &ZoneConfig, view: &DnsView, client_region: &str) -> Vec<String> {
    let configured = zone.latency_ms.get(client_region);
    let measured = if zone.use_measured_rtt {
        view.measured_rtt_ms.get(client_region)
    } else {
        None
    };
    let mut regions: Vec<(usize, &String)> =
        zone.regions.iter().map(|(r, _)| r).enumerate().collect();
    let distance = |region: &String| -> f64 {
        if region == client_region {
            return 0.0;
        }
        measured
            .and_then(|m| m.get(region))
            .or_else(|| configured.and_then(|c| c.get(region)))
            .copied()
            .unwrap_or(f64::MAX / 2.0)
    };
    regions.sort_by(|(ia, a), (ib, b)| distance(a).total_cmp(&distance(b)).then(ia.cmp(ib)));
    regions.into_iter().map(|(_, r)| r.clone()).collect()
}

/// The region that answers a client, and its addresses. When no region
/// serves (which the safety rules prevent), the nearest one answers anyway:
/// failing open beats answering nothing.
pub fn answer_for(zone: &ZoneConfig, view: &DnsView, client: IpAddr) -> (String, Vec<IpAddr>) {
    let order = region_order(zone, view, zone.client_region(client));
    let chosen = order
        .iter()
        .find(|r| view.serving.contains(*r))
        .or(order.first())
        .cloned()
        .unwrap_or_default();
    let addresses = zone
        .regions
        .iter()
        .find(|(r, _)| *r == chosen)
        .map(|(_, ips)| ips.clone())
        .unwrap_or_default();
    (chosen, addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn zone() -> ZoneConfig {
        let text = include_str!("../../config/example-3-regions.toml");
        let path = std::env::temp_dir().join(format!("fc-dns-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, text).unwrap();
        let env = vec![("FAILOVER_REGION".to_string(), "region-1".to_string())];
        let settings = crate::config::load(Some(&path), env, &Default::default()).unwrap();
        std::fs::remove_file(path).unwrap();
        ZoneConfig::from_settings(&settings).unwrap()
    }

    #[test]
    fn nearest_serving_region_answers() {
        let zone = zone();
        let mut view = DnsView::all_serving(&zone);
        let client2: IpAddr = "127.0.2.50".parse().unwrap();
        assert_eq!(answer_for(&zone, &view, client2).0, "region-2");
        view.serving.remove("region-2");
        assert_eq!(answer_for(&zone, &view, client2).0, "region-1");
        let client3: IpAddr = "127.0.3.9".parse().unwrap();
        assert_eq!(answer_for(&zone, &view, client3).0, "region-3");
        let unknown: IpAddr = "127.9.9.9".parse().unwrap();
        assert_eq!(answer_for(&zone, &view, unknown).0, "region-1");
    }

    #[tokio::test(start_paused = true)]
    async fn a_view_is_fresh_for_its_max_age_only() {
        let mut view = DnsView::all_serving(&zone());
        let now = Instant::now();
        assert!(!view.is_fresh(now), "never refreshed");
        view.refreshed_at = Some(now);
        view.max_age = Duration::from_secs(12);
        assert!(view.is_fresh(now + Duration::from_secs(12)));
        assert!(!view.is_fresh(now + Duration::from_millis(12_001)));
    }

    #[test]
    fn measured_rtt_reorders_when_enabled() {
        let mut zone = zone();
        zone.use_measured_rtt = true;
        let mut view = DnsView::all_serving(&zone);
        view.serving.remove("region-3");
        view.measured_rtt_ms.insert(
            "region-3".into(),
            [
                ("region-1".to_string(), 5.0),
                ("region-2".to_string(), 50.0),
            ]
            .into(),
        );
        let client3: IpAddr = "127.0.3.9".parse().unwrap();
        assert_eq!(answer_for(&zone, &view, client3).0, "region-1");
    }
}
