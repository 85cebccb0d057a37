//! A deployment the drill knows only from its target file: what the load,
//! the DNS watcher, the stop conditions, the verification and the report
//! read of a deployment (its [`DeploymentInfo`]), taken from the file alone,
//! and the [`TargetDriver`] that applies faults to it.
//!
//! This is the path of a real deployment, and the tests take it on the
//! local one: `chaos up`'s `target.yaml` without its `local` section.
//!
//! What the file does not say, the drill does not invent: the controllers'
//! settings are not known (the report's settings table stays empty), nor
//! the binaries' versions; there is no WAN model (the network is real).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::Target;
use crate::controller_settings::ControllerSettings;
use crate::deployment::{DeploymentInfo, FaultAction, RegionInfo};

/// What a drill on `target` knows of it. Host names in the file are
/// resolved once, here (the drill's load resolves the public name through
/// DNS all along; these are the per-region endpoints, for the retry on the
/// next region, the seeding and the checks).
pub async fn deployment_info(target: &Target) -> anyhow::Result<DeploymentInfo> {
    let base = &target.base_dir;
    // Empty without a ledger: `chaos rollback` needs none; a drill
    // refuses such a target (`require_ledger`).
    let database_url = match &target.ledger {
        Some(ledger) => ledger
            .database_url
            .resolve("ledger.database_url", base)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .expose()
            .to_owned(),
        None => String::new(),
    };
    let api_key = target
        .service
        .api_key
        .resolve("service.api_key", base)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ca_pem = match &target.service.ca_file {
        Some(file) => {
            let path = target.path(file);
            std::fs::read_to_string(&path).with_context(|| {
                format!("field `service.ca_file`: cannot read {}", path.display())
            })?
        }
        // The public roots.
        None => String::new(),
    };
    let mut regions = Vec::new();
    let mut instances_per_region = 0u8;
    let mut hosts = std::collections::BTreeMap::new();
    for (offset, (name, region)) in target.regions.iter().enumerate() {
        let mut instances = Vec::new();
        for (i, endpoint) in region.endpoints.iter().enumerate() {
            instances.extend(
                resolve(endpoint)
                    .await
                    .with_context(|| format!("field `regions.{name}.endpoints[{i}]`"))?,
            );
        }
        let host = endpoint_host(name, &region.endpoints)?;
        if let Some(host) = &host {
            if let Some(other) = hosts.insert(host.clone(), name.clone()) {
                bail!(
                    "field `regions.{name}.endpoints`: host {host:?} is also an endpoint of \
                     {other}; each region's endpoints must reach that region alone"
                );
            }
        }
        instances_per_region = instances_per_region.max(instances.len().min(255) as u8);
        // The addresses DNS hands out for the region, when the file names
        // them apart from the endpoints (a load balancer's): the DNS watch
        // knows the region by them.
        let port = instances.first().map_or(443, SocketAddr::port);
        for ip in target.dns_addresses(region) {
            let address = SocketAddr::new(ip, port);
            if !instances.contains(&address) {
                instances.push(address);
            }
        }
        let controller_http = *resolve(&region.controller_admin_url)
            .await
            .with_context(|| format!("field `regions.{name}.controller_admin_url`"))?
            .first()
            .expect("resolve answers at least one address");
        let vantage = target.vantage_points.iter().find(|v| &v.region == name);
        let nameserver = if target.dns.nameservers.is_empty() {
            None
        } else {
            Some(target.dns.nameservers[offset % target.dns.nameservers.len()])
        };
        let resolver = vantage
            .and_then(|v| v.resolver)
            .or_else(|| target.dns.resolvers.get(name).copied())
            .or(nameserver)
            .or_else(|| target.dns.resolvers.values().next().copied())
            .expect("a validated target has resolvers or name servers");
        regions.push(RegionInfo {
            name: name.clone(),
            index: offset as u8 + 1,
            instances,
            controller_http,
            controller_dns: nameserver.unwrap_or(resolver),
            client_address: vantage
                .and_then(|v| v.source_address)
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            resolver,
            host,
        });
    }
    let postgres_version = match crate::database::connect(&database_url).await {
        Ok(client) if !database_url.is_empty() => client
            .query_one("SHOW server_version", &[])
            .await
            .map(|row| row.get::<_, String>(0))
            .unwrap_or_default(),
        // No ledger, or preflight's check will have said why.
        _ => String::new(),
    };
    Ok(DeploymentInfo {
        regions,
        instances_per_region,
        // Not known: the report shows no settings rather than guessed ones.
        controller: ControllerSettings {
            settings: Vec::new(),
        },
        wan: None,
        service_name: fully_qualified(&target.service.public_name),
        ca_pem,
        database_url,
        run_dir: PathBuf::new(),
        bin_dir: PathBuf::new(),
        postgres_version,
        api_key: api_key.expose().to_owned(),
        route53: None,
    })
}

/// A drill checks every acknowledged write against the ledger: a target
/// without one cannot be drilled (it can be checked and rolled back).
pub fn require_ledger(target: &Target) -> anyhow::Result<()> {
    if target.ledger.is_none() {
        bail!(
            "target {:?}: a drill checks every acknowledged write against the ledger, and the \
             target file has no `ledger.database_url` (a read-only URL is enough)",
            target.name
        );
    }
    Ok(())
}

/// The host name a region's endpoints are given by (their certificates name
/// it, not their addresses), or `None` when they are given by address. One
/// region, one name: the drill asks every address of the region by it.
fn endpoint_host(region: &str, endpoints: &[String]) -> anyhow::Result<Option<String>> {
    let mut names = std::collections::BTreeSet::new();
    let mut by_address = false;
    for endpoint in endpoints {
        match url::Url::parse(endpoint)
            .ok()
            .and_then(|u| u.host().map(|h| h.to_owned()))
        {
            Some(url::Host::Domain(name)) => {
                names.insert(name.trim_end_matches('.').to_ascii_lowercase());
            }
            _ => by_address = true,
        }
    }
    let names: Vec<String> = names.into_iter().collect();
    match names.as_slice() {
        [] => Ok(None),
        [name] if !by_address => Ok(Some(name.clone())),
        _ => bail!(
            "field `regions.{region}.endpoints`: give the region's endpoints by one host name \
             (the one its certificate names) or all by address, not {}",
            if by_address {
                format!("host names ({}) beside addresses", names.join(", "))
            } else {
                format!("several host names ({})", names.join(", "))
            }
        ),
    }
}

/// `api.example.com.`: the name as the resolvers are asked for it.
fn fully_qualified(name: &str) -> String {
    format!("{}.", name.trim().trim_end_matches('.'))
}

/// The addresses of an `http(s)://host:port` URL's host (its port, or the
/// scheme's).
async fn resolve(url: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let parsed = url::Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
    let port = parsed
        .port_or_known_default()
        .with_context(|| format!("{url:?} has no port"))?;
    let addresses: Vec<SocketAddr> = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Some(url::Host::Domain(host)) => tokio::net::lookup_host((host, port))
            .await
            .with_context(|| format!("cannot resolve {host}"))?
            .collect(),
        None => bail!("{url:?} has no host"),
    };
    if addresses.is_empty() {
        bail!("{url:?}: its host resolves to no address");
    }
    Ok(addresses)
}

/// Faults on a deployment known only from its target file: actuators
/// (evacuate, command, http) act through the deployment's own machinery;
/// local faults (kill, blackhole, stall, latency, partition) have nothing
/// to act on and are refused; the local catch-alls have nothing to heal.
#[derive(Debug)]
pub struct TargetDriver {
    pub info: DeploymentInfo,
    /// The controllers' admin URLs, for the leader (`/status`).
    pub controller_admin_urls: Vec<String>,
    /// Where the target file is, for the journal (`chaos rollback`).
    pub target_file: PathBuf,
}

impl TargetDriver {
    pub async fn new(target: &Target, target_file: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            info: deployment_info(target).await?,
            controller_admin_urls: target
                .regions
                .values()
                .map(|r| r.controller_admin_url.trim_end_matches('/').to_owned())
                .collect(),
            target_file: std::path::absolute(target_file)
                .unwrap_or_else(|_| target_file.to_owned()),
        })
    }

    pub fn apply(&self, action: &FaultAction) -> anyhow::Result<()> {
        match action {
            FaultAction::HealNetwork | FaultAction::RestoreAll => Ok(()),
            other => bail!(
                "{other:?} is a local fault: only a `chaos up` deployment (a target with a \
                 `local` section) can apply it"
            ),
        }
    }

    /// The region whose controller says it holds the lease.
    pub async fn leader(&self) -> anyhow::Result<Option<String>> {
        Ok(crate::deployment::leader_among(
            self.info
                .regions
                .iter()
                .map(|r| r.name.clone())
                .zip(self.controller_admin_urls.iter().cloned())
                .collect(),
        )
        .await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `chaos rollback --target` needs the endpoints and DNS, not the
    /// ledger; only a drill does.
    #[tokio::test]
    async fn a_target_without_a_ledger_can_be_rolled_back_but_not_drilled() {
        std::env::set_var("CHAOS_DEPLOYMENT_TEST_KEY", "lk_test_secret");
        let target = Target::parse(
            r#"
name: no-ledger
service:
  public_name: api.gslb.example.com
  api_key: {env: CHAOS_DEPLOYMENT_TEST_KEY}
dns:
  nameservers: ["127.0.1.100:5353"]
regions:
  us-east-1:
    endpoints: ["https://127.0.1.11:8080", "https://127.0.1.12:8080"]
    controller_admin_url: http://127.0.1.100:9190
controller:
  admin_token: {env: CHAOS_DEPLOYMENT_TEST_KEY}
blast_radius:
  may_touch: [us-east-1]
  min_serving_regions: 0
"#,
        )
        .unwrap();
        let info = deployment_info(&target).await.unwrap();
        assert_eq!(info.database_url, "");
        assert_eq!(info.service_name, "api.gslb.example.com.");
        assert_eq!(info.regions[0].instances.len(), 2);
        assert_eq!(
            info.regions[0].controller_dns,
            "127.0.1.100:5353".parse().unwrap()
        );
        let refusal = require_ledger(&target).unwrap_err().to_string();
        assert!(refusal.contains("no `ledger.database_url`"), "{refusal}");
    }

    /// Endpoints given by name are asked by that name: the region keeps it
    /// for every address it resolved to.
    #[tokio::test]
    async fn a_region_given_by_host_name_is_asked_by_it() {
        std::env::set_var("CHAOS_DEPLOYMENT_TEST_KEY", "lk_test_secret");
        let target = Target::parse(
            r#"
name: by-name
service:
  public_name: api.gslb.example.com
  api_key: {env: CHAOS_DEPLOYMENT_TEST_KEY}
dns:
  nameservers: ["127.0.1.100:5353"]
regions:
  us-east-1:
    endpoints: ["https://LocalHost:8443/"]
    controller_admin_url: http://127.0.1.100:9190
  eu-west-1:
    endpoints: ["https://127.0.2.11:8080"]
    controller_admin_url: http://127.0.2.100:9190
controller:
  admin_token: {env: CHAOS_DEPLOYMENT_TEST_KEY}
blast_radius:
  may_touch: [us-east-1]
  min_serving_regions: 0
"#,
        )
        .unwrap();
        let info = deployment_info(&target).await.unwrap();
        let us = info.regions.iter().find(|r| r.name == "us-east-1").unwrap();
        assert_eq!(us.host.as_deref(), Some("localhost"));
        let names = info.instance_names();
        assert!(!us.instances.is_empty());
        for address in &us.instances {
            assert_eq!(names[address], "localhost");
        }
        assert!(!names.contains_key(&"127.0.2.11:8080".parse().unwrap()));
        let https = info.instance_https(None).unwrap();
        assert_eq!(
            https.url(us.instances[0], "/readyz"),
            "https://localhost:8443/readyz"
        );
        assert_eq!(
            https.url("127.0.2.11:8080".parse().unwrap(), "/readyz"),
            "https://127.0.2.11:8080/readyz"
        );
    }

    #[test]
    fn a_region_names_one_host_or_none() {
        let urls = |list: &[&str]| list.iter().map(|u| (*u).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            endpoint_host(
                "r",
                &urls(&["https://a.example.com", "https://A.example.com:8443"])
            )
            .unwrap()
            .as_deref(),
            Some("a.example.com")
        );
        assert_eq!(
            endpoint_host("r", &urls(&["https://10.0.0.1"])).unwrap(),
            None
        );
        let two = endpoint_host(
            "r",
            &urls(&["https://a.example.com", "https://b.example.com"]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            two.contains("`regions.r.endpoints`") && two.contains("a.example.com, b.example.com"),
            "{two}"
        );
        let mixed = endpoint_host("r", &urls(&["https://a.example.com", "https://10.0.0.1"]))
            .unwrap_err()
            .to_string();
        assert!(mixed.contains("beside addresses"), "{mixed}");
    }

    #[tokio::test]
    async fn urls_resolve_to_their_hosts_and_ports() {
        assert_eq!(
            resolve("https://127.0.2.11:8080/").await.unwrap(),
            vec!["127.0.2.11:8080".parse().unwrap()]
        );
        assert_eq!(
            resolve("https://[::1]").await.unwrap(),
            vec!["[::1]:443".parse().unwrap()]
        );
        assert_eq!(
            resolve("http://localhost:9190").await.unwrap()[0].port(),
            9190
        );
        assert_eq!(fully_qualified("api.example.com"), "api.example.com.");
        assert_eq!(fully_qualified("api.example.com."), "api.example.com.");
    }
}
