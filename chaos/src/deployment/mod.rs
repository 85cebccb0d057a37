//! The local multi-region deployment: one PostgreSQL standing in for the
//! CockroachDB cluster, and per region `R` (1-based) on its own loopback
//! addresses `127.0.R.x`:
//!
//! | address | what |
//! | --- | --- |
//! | `127.0.R.(10+i):8080` | proxy in front of service instance `i` (what DNS hands out) |
//! | `127.0.R.(10+i):18080`, `:19090` | the instance itself, its metrics |
//! | `127.0.R.100:9190`, `:5353` | the region's controller replica: status/admin, DNS |
//! | `127.0.R.200` | source address of the region's clients |
//! | `127.0.R.250:5432` | proxy in front of the database for the region's service instances |
//! | `127.0.R.251:5432` | proxy in front of the database for the region's controller replica |
//!
//! Processes are started from the binaries next to the `chaos` executable,
//! their output goes to `<run dir>/logs/`, and everything started is stopped
//! when the [`Deployment`] is shut down (or dropped).
//!
//! Layout: this module brings the deployment up, waits for it and stops it;
//! `faults` holds the fault operations and [`FaultAction`], their wire form;
//! `setup` the controllers' configuration, database URLs and child
//! processes; `outage` the faults of the outage drills and what they need
//! (a database server of the deployment's own, the loopback Route53 API). [`DeploymentInfo`] is what a drill needs to know about a
//! deployment, in-process or over the control API.

mod faults;
pub mod instances;
pub mod leases;
mod outage;
mod resolvers;
mod setup;
pub mod tls;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

pub use self::faults::{leader_among, FaultAction};
pub use self::outage::{OutageOptions, Route53Info};
pub use self::resolvers::Resolver;
pub use self::setup::replace_database;
use self::setup::{create_database, database_socket};
use self::tls::DeploymentTls;
use crate::controller_settings::ControllerSettings;
use crate::postgres::Postgres;
use crate::proxy::Proxy;

/// The DNS name clients resolve.
pub const SERVICE_NAME: &str = "api.svc.failover.test.";
/// The zone the controllers answer for.
pub const ZONE: &str = "svc.failover.test.";
pub const SERVICE_PORT: u16 = 8080;
const DNS_PORT: u16 = 5353;
const CONTROLLER_PORT: u16 = 9190;

/// What to bring up.
#[derive(Debug, Clone)]
pub struct Options {
    pub regions: Vec<String>,
    pub instances_per_region: u8,
    /// How the controllers probe, decide and answer (production's, unless
    /// a drill overrides some).
    pub controller: ControllerSettings,
    /// The WAN the proxies put between the regions (none: the loopback).
    pub wan: Option<crate::spec::Wan>,
    /// Use this server instead of starting PostgreSQL.
    pub database_url: Option<String>,
    /// Logs and generated configuration.
    pub run_dir: PathBuf,
    /// Where `service` and `failover-controller` are.
    pub bin_dir: PathBuf,
    /// What the outage drills need (own database, Route53 mode, overrides).
    pub outage: OutageOptions,
}

/// One service instance.
#[derive(Debug)]
pub struct Instance {
    pub id: String,
    pub public: SocketAddr,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub proxy: Proxy,
    child: Option<Child>,
}

/// One region's processes and proxies.
#[derive(Debug)]
pub struct Region {
    pub name: String,
    pub index: u8,
    pub instances: Vec<Instance>,
    pub controller_http: SocketAddr,
    pub controller_dns: SocketAddr,
    pub client_address: IpAddr,
    /// The service instances' database path.
    pub database_proxy: Proxy,
    /// The controller replica's own database path, so that a drill can cut
    /// the controller off while the region's instances keep theirs.
    pub controller_database_proxy: Proxy,
    controller: Option<Child>,
}

/// What a drill needs to know about a running deployment: addresses,
/// topology and the (throwaway) database. `GET /topology` serves it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeploymentInfo {
    pub regions: Vec<RegionInfo>,
    pub instances_per_region: u8,
    pub controller: ControllerSettings,
    /// The WAN the proxies put between the regions (none: the loopback).
    pub wan: Option<crate::spec::Wan>,
    pub service_name: String,
    /// PEM of the CA that signed the load balancers' certificate: clients
    /// and probes speak HTTPS to the instances' public addresses.
    pub ca_pem: String,
    /// URL of the ledger database (direct, not through a proxy), for the
    /// drill's verification and the controllers' audit log.
    pub database_url: String,
    /// Logs and generated configuration.
    pub run_dir: PathBuf,
    /// Where the running binaries came from, for the report's versions.
    pub bin_dir: PathBuf,
    pub postgres_version: String,
    /// The drills' API key ([`crate::api_key`]); a throwaway deployment's,
    /// served with the topology on the loopback control API.
    #[serde(default)]
    pub api_key: String,
    /// Where the Route53 records are, in Route53 mode.
    #[serde(default)]
    pub route53: Option<Route53Info>,
}

/// One region's addresses.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RegionInfo {
    pub name: String,
    /// 1-based: the `R` of `127.0.R.x`.
    pub index: u8,
    /// Public (proxied) address of each service instance.
    pub instances: Vec<SocketAddr>,
    pub controller_http: SocketAddr,
    pub controller_dns: SocketAddr,
    pub client_address: IpAddr,
    /// The recursive resolver of this region's clients (unbound).
    pub resolver: SocketAddr,
    /// The host name the target file gives the region's endpoints by, which
    /// their certificates name: the drill asks every instance of the region
    /// by it ([`instances::InstanceHttps`]). `None`: by address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl DeploymentInfo {
    /// Public addresses by region.
    pub fn instance_addresses(&self) -> BTreeMap<String, Vec<SocketAddr>> {
        self.regions
            .iter()
            .map(|r| (r.name.clone(), r.instances.clone()))
            .collect()
    }

    /// The host name of every instance reached by name.
    pub fn instance_names(&self) -> BTreeMap<SocketAddr, String> {
        self.regions
            .iter()
            .filter_map(|r| r.host.as_ref().map(|host| (r, host)))
            .flat_map(|(r, host)| r.instances.iter().map(|a| (*a, host.clone())))
            .collect()
    }

    /// HTTPS clients for the instances (the deployment's CA, its API key,
    /// `timeout` per request).
    pub fn instance_https(
        &self,
        timeout: Option<Duration>,
    ) -> reqwest::Result<instances::InstanceHttps> {
        instances::InstanceHttps::new(&self.instance_names(), || {
            let builder = tls::client_builder(&self.ca_pem)
                .default_headers(crate::api_key::headers(&self.api_key));
            match timeout {
                Some(timeout) => builder.timeout(timeout),
                None => builder,
            }
        })
    }
}

/// The running deployment.
#[derive(Debug)]
pub struct Deployment {
    pub options: Options,
    pub regions: Vec<Region>,
    /// URL of the ledger database (direct, not through a proxy).
    pub database_url: String,
    pub admin_token: String,
    /// The drills' API key, created once the schema is migrated.
    pub api_key: String,
    postgres: Option<Postgres>,
    /// The database server is down (`db-crash`), to be restarted.
    database_crashed: bool,
    route53: Option<crate::outage::route53::LoopbackRoute53>,
    controller_config: PathBuf,
    tls: DeploymentTls,
    /// One recursive resolver per client region.
    resolvers: Vec<Resolver>,
}

/// The second byte of every address of the deployment: 0 (`127.0.R.x`)
/// unless `CHAOS_LOOPBACK_NET` names another (1 to 254), so that two
/// deployments on one machine (two test runs, a drill beside `chaos up`)
/// do not fight over the same addresses.
pub fn loopback_net() -> u8 {
    static NET: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *NET.get_or_init(|| {
        std::env::var("CHAOS_LOOPBACK_NET")
            .ok()
            .and_then(|v| v.parse::<u8>().ok())
            .filter(|n| *n < 255)
            .unwrap_or(0)
    })
}

pub fn region_ip(index: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, loopback_net(), index, host))
}

impl Deployment {
    /// Starts the database, migrates, starts every process, waits until all
    /// are ready and a controller holds the lease.
    pub async fn start(mut options: Options) -> anyhow::Result<Self> {
        // Absolute, because the resolvers (unbound) and PostgreSQL chdir
        // to it or below it: a relative run directory (the README's
        // `--report-dir reports/<drill>`) made unbound exit at start.
        options.run_dir = std::path::absolute(&options.run_dir)
            .with_context(|| format!("cannot make {} absolute", options.run_dir.display()))?;
        std::fs::create_dir_all(options.run_dir.join("logs"))?;
        for binary in ["service", "failover-controller"] {
            if !options.bin_dir.join(binary).exists() {
                bail!(
                    "{} not found in {}: build the workspace first (cargo build --release --workspace)",
                    binary,
                    options.bin_dir.display()
                );
            }
        }
        let (postgres, server_url) = match &options.database_url {
            Some(url) if !options.outage.own_database => (None, url.clone()),
            _ => {
                let settings = options.outage.overrides.database.clone();
                let postgres =
                    tokio::task::spawn_blocking(move || Postgres::start_with(&settings)).await??;
                let url = postgres.url();
                (Some(postgres), url)
            }
        };
        let database = format!("ledger_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        create_database(&server_url, &database).await?;
        let database_url = replace_database(&server_url, &database);
        let upstream: SocketAddr = database_socket(&database_url)?;

        let public_addresses: Vec<SocketAddr> = (1..=options.regions.len())
            .flat_map(|index| {
                (1..=options.instances_per_region)
                    .map(move |i| SocketAddr::new(region_ip(index as u8, 10 + i), SERVICE_PORT))
            })
            .collect();
        let tls = DeploymentTls::create(&options.run_dir, SERVICE_NAME, &public_addresses)?;
        let mut deployment = Self {
            controller_config: options.run_dir.join("controller.toml"),
            tls,
            resolvers: Vec::new(),
            admin_token: uuid::Uuid::new_v4().simple().to_string(),
            api_key: String::new(),
            options,
            regions: Vec::new(),
            database_url,
            postgres,
            database_crashed: false,
            route53: None,
        };
        for (offset, name) in deployment.options.regions.clone().iter().enumerate() {
            let index = u8::try_from(offset + 1).context("too many regions")?;
            let database_proxy =
                Proxy::start(SocketAddr::new(region_ip(index, 250), 5432), upstream)
                    .await
                    .with_context(|| format!("cannot bind the database proxy of {name}"))?;
            let controller_database_proxy =
                Proxy::start(SocketAddr::new(region_ip(index, 251), 5432), upstream)
                    .await
                    .with_context(|| {
                        format!("cannot bind the controller's database proxy of {name}")
                    })?;
            let mut instances = Vec::new();
            for i in 1..=deployment.options.instances_per_region {
                let ip = region_ip(index, 10 + i);
                let public = SocketAddr::new(ip, SERVICE_PORT);
                let listen = SocketAddr::new(ip, 10_000 + SERVICE_PORT);
                let proxy =
                    Proxy::start_with_tls(public, listen, Some(deployment.tls.acceptor.clone()))
                        .await
                        .with_context(|| format!("cannot bind {public}"))?;
                instances.push(Instance {
                    id: format!("{name}-{i}"),
                    public,
                    listen,
                    admin: SocketAddr::new(ip, 19090),
                    proxy,
                    child: None,
                });
            }
            deployment.regions.push(Region {
                name: name.clone(),
                index,
                instances,
                controller_http: SocketAddr::new(region_ip(index, 100), CONTROLLER_PORT),
                controller_dns: SocketAddr::new(region_ip(index, 100), DNS_PORT),
                client_address: region_ip(index, 200),
                database_proxy,
                controller_database_proxy,
                controller: None,
            });
        }
        deployment.apply_wan();
        deployment.start_route53().await?;
        std::fs::write(&deployment.controller_config, deployment.controller_toml())?;
        deployment.migrate().await?;
        deployment.api_key = crate::api_key::create(
            &deployment.options.bin_dir.join("service"),
            &deployment.options.regions[0],
            &deployment.database_url,
        )
        .await?;
        let names: Vec<String> = deployment.regions.iter().map(|r| r.name.clone()).collect();
        for name in &names {
            deployment.start_region(name)?;
        }
        deployment.wait_ready(Duration::from_secs(60)).await?;
        for region in &deployment.regions {
            let resolver = Resolver::start(
                region,
                &deployment.regions,
                ZONE,
                &deployment.options.run_dir,
            )?;
            deployment.resolvers.push(resolver);
        }
        for resolver in &mut deployment.resolvers {
            resolver.wait_ready(ZONE, Duration::from_secs(10)).await?;
        }
        deployment
            .wait_route53_records(Duration::from_secs(30))
            .await?;
        Ok(deployment)
    }

    /// Puts the WAN on every proxy: an instance's round trip depends on the
    /// region its client comes from (`127.0.S.x`), a region's database path
    /// has that region's round trip to the database.
    fn apply_wan(&self) {
        let Some(wan) = &self.options.wan else {
            return;
        };
        let jitter = Duration::from_secs_f64(wan.jitter_ms / 1000.0);
        for to in &self.regions {
            let rtt_by_region = self
                .regions
                .iter()
                .map(|from| {
                    let rtt = wan.rtt(&from.name, &to.name).unwrap_or_default();
                    (from.index, rtt)
                })
                .collect();
            let link = crate::proxy::Wan {
                rtt_by_region,
                // Sources of no region (127.0.0.1: this tool's own checks)
                // are local.
                default_rtt: wan.rtt(&to.name, &to.name).unwrap_or_default(),
                jitter,
                loss: wan.loss,
                commit_rtt: Duration::ZERO,
            };
            for instance in &to.instances {
                instance.proxy.set_wan(Some(link.clone()));
            }
            // The SQL gateway is in the region; a write's commit waits for a
            // quorum in another region (docs/drills.md, "The database's
            // geography").
            let database_link = crate::proxy::Wan {
                default_rtt: wan.rtt(&to.name, &to.name).unwrap_or_default(),
                jitter,
                loss: wan.loss,
                commit_rtt: wan.database_rtt(&to.name, &self.options.regions),
                ..crate::proxy::Wan::default()
            };
            to.controller_database_proxy
                .set_wan(Some(database_link.clone()));
            to.database_proxy.set_wan(Some(database_link));
        }
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        let bin = &self.options.bin_dir;
        for (binary, env_prefix) in [("service", "SERVICE"), ("failover-controller", "FAILOVER")] {
            let output = Command::new(bin.join(binary))
                .arg("migrate")
                .env(format!("{env_prefix}_REGION"), &self.options.regions[0])
                .env(format!("{env_prefix}_DATABASE_URL"), &self.database_url)
                .env("FAILOVER_CONFIG", &self.controller_config)
                .output()
                .await
                .with_context(|| format!("cannot run {binary} migrate"))?;
            if !output.status.success() {
                bail!(
                    "{binary} migrate failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
        Ok(())
    }

    fn region(&self, name: &str) -> anyhow::Result<&Region> {
        self.regions
            .iter()
            .find(|r| r.name == name)
            .with_context(|| format!("no region {name}"))
    }

    fn region_mut(&mut self, name: &str) -> anyhow::Result<&mut Region> {
        self.regions
            .iter_mut()
            .find(|r| r.name == name)
            .with_context(|| format!("no region {name}"))
    }

    /// Waits until every instance is ready, a controller leads, and every
    /// replica names that leader (a replica that has not read the lease
    /// yet names none: `chaos check` right after `chaos up` would see the
    /// controllers disagree).
    pub async fn wait_ready(&self, within: Duration) -> anyhow::Result<()> {
        let client = tls::client_builder(&self.tls.ca_pem)
            .timeout(Duration::from_millis(1500))
            .build()?;
        let started = Instant::now();
        let mut pending: Vec<String> = Vec::new();
        while started.elapsed() < within {
            pending.clear();
            for region in &self.regions {
                for instance in &region.instances {
                    let url = format!("https://{}/healthz/region", instance.public);
                    if !matches!(client.get(url).send().await, Ok(r) if r.status().is_success()) {
                        pending.push(instance.id.clone());
                    }
                }
                let url = format!("http://{}/readyz", region.controller_http);
                if !matches!(client.get(url).send().await, Ok(r) if r.status().is_success()) {
                    pending.push(format!("controller-{}", region.name));
                }
            }
            if pending.is_empty() {
                if self.leader().await.is_none() {
                    pending.push("no controller holds the lease".to_owned());
                } else {
                    let named = self.lease_holders_named(&client).await;
                    if !named[0].is_empty() && named.iter().all(|holder| *holder == named[0]) {
                        return Ok(());
                    }
                    pending.push(format!(
                        "the replicas name different lease holders: {}",
                        named.join(", ")
                    ));
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!(
            "not ready after {:?}: {} (logs in {})",
            within,
            pending.join(", "),
            self.options.run_dir.join("logs").display()
        )
    }

    /// The lease holder each replica's `/status` names ("" when it names
    /// none or does not answer).
    async fn lease_holders_named(&self, client: &reqwest::Client) -> Vec<String> {
        let mut holders = Vec::new();
        for region in &self.regions {
            let url = format!("http://{}/status", region.controller_http);
            let status = match client.get(url).send().await {
                Ok(response) => response.json::<serde_json::Value>().await.ok(),
                Err(_) => None,
            };
            holders.push(
                status
                    .as_ref()
                    .and_then(|s| s["lease"]["holder"].as_str())
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        holders
    }

    /// Where everything listens, for people.
    pub fn endpoints(&self) -> String {
        let mut text =
            format!("service name   {SERVICE_NAME} (A records from any controller's DNS)\n");
        for region in &self.regions {
            let instances: Vec<String> = region
                .instances
                .iter()
                .map(|i| i.public.to_string())
                .collect();
            text.push_str(&format!(
                "{:<14} instances {}  dns {}  status http://{}/\n",
                region.name,
                instances.join(" "),
                region.controller_dns,
                region.controller_http
            ));
        }
        text.push_str(&format!(
            "try            dig @{} -p {} {SERVICE_NAME} A -b {}\n",
            self.regions[0].controller_dns.ip(),
            DNS_PORT,
            self.regions[0].client_address
        ));
        text
    }

    pub fn postgres_version(&self) -> String {
        self.postgres
            .as_ref()
            .map(Postgres::version)
            .unwrap_or_else(|| "external".into())
    }

    /// Addresses and topology, for drills.
    pub fn info(&self) -> DeploymentInfo {
        DeploymentInfo {
            regions: self
                .regions
                .iter()
                .map(|r| RegionInfo {
                    name: r.name.clone(),
                    index: r.index,
                    instances: r.instances.iter().map(|i| i.public).collect(),
                    controller_http: r.controller_http,
                    controller_dns: r.controller_dns,
                    client_address: r.client_address,
                    resolver: resolvers::address_of(r),
                    host: None,
                })
                .collect(),
            instances_per_region: self.options.instances_per_region,
            controller: self.options.controller.clone(),
            wan: self.options.wan.clone(),
            service_name: SERVICE_NAME.to_owned(),
            ca_pem: self.tls.ca_pem.clone(),
            database_url: self.database_url.clone(),
            run_dir: self.options.run_dir.clone(),
            bin_dir: self.options.bin_dir.clone(),
            postgres_version: self.postgres_version(),
            api_key: self.api_key.clone(),
            route53: self.route53_info(),
        }
    }

    /// Stops every process (SIGTERM, then SIGKILL) and the database.
    pub async fn shutdown(&mut self) {
        for resolver in self.resolvers.drain(..) {
            resolver.stop().await;
        }
        for region in &mut self.regions {
            let mut children: Vec<Child> = region
                .instances
                .iter_mut()
                .filter_map(|i| i.child.take())
                .collect();
            children.extend(region.controller.take());
            for child in &children {
                if let Some(pid) = child.id() {
                    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGCONT);
                    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
                }
            }
            for mut child in children {
                if tokio::time::timeout(Duration::from_secs(5), child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.kill().await;
                }
            }
        }
        if let Some(postgres) = self.postgres.take() {
            let _ = tokio::task::spawn_blocking(move || drop(postgres)).await;
        }
    }
}
