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
//! | `127.0.R.250:5432` | proxy in front of the database for the region's processes |
//!
//! Processes are started from the binaries next to the `chaos` executable,
//! their output goes to `<run dir>/logs/`, and everything started is stopped
//! when the [`Deployment`] is shut down (or dropped).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::postgres::Postgres;
use crate::proxy::{Mode, Proxy};

/// The DNS name clients resolve.
pub const SERVICE_NAME: &str = "api.svc.failover.test.";
const SERVICE_PORT: u16 = 8080;
const DNS_PORT: u16 = 5353;
const CONTROLLER_PORT: u16 = 9190;

/// What to bring up.
#[derive(Debug, Clone)]
pub struct Options {
    pub regions: Vec<String>,
    pub instances_per_region: u8,
    pub probe_interval_ms: u64,
    pub dns_ttl_s: u32,
    /// Use this server instead of starting PostgreSQL.
    pub database_url: Option<String>,
    /// Logs and generated configuration.
    pub run_dir: PathBuf,
    /// Where `service` and `failover-controller` are.
    pub bin_dir: PathBuf,
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
    pub database_proxy: Proxy,
    controller: Option<Child>,
}

/// The running deployment.
#[derive(Debug)]
pub struct Deployment {
    pub options: Options,
    pub regions: Vec<Region>,
    /// URL of the ledger database (direct, not through a proxy).
    pub database_url: String,
    pub admin_token: String,
    postgres: Option<Postgres>,
    controller_config: PathBuf,
}

pub fn region_ip(index: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, index, host))
}

impl Deployment {
    /// Starts the database, migrates, starts every process, waits until all
    /// are ready and a controller holds the lease.
    pub async fn start(options: Options) -> anyhow::Result<Self> {
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
            Some(url) => (None, url.clone()),
            None => {
                let postgres = tokio::task::spawn_blocking(Postgres::start).await??;
                let url = postgres.url();
                (Some(postgres), url)
            }
        };
        let database = format!("ledger_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        create_database(&server_url, &database).await?;
        let database_url = replace_database(&server_url, &database);
        let upstream: SocketAddr = database_socket(&database_url)?;

        let mut deployment = Self {
            controller_config: options.run_dir.join("controller.toml"),
            admin_token: uuid::Uuid::new_v4().simple().to_string(),
            options,
            regions: Vec::new(),
            database_url,
            postgres,
        };
        for (offset, name) in deployment.options.regions.clone().iter().enumerate() {
            let index = u8::try_from(offset + 1).context("too many regions")?;
            let database_proxy =
                Proxy::start(SocketAddr::new(region_ip(index, 250), 5432), upstream)
                    .await
                    .with_context(|| format!("cannot bind the database proxy of {name}"))?;
            let mut instances = Vec::new();
            for i in 1..=deployment.options.instances_per_region {
                let ip = region_ip(index, 10 + i);
                let public = SocketAddr::new(ip, SERVICE_PORT);
                let listen = SocketAddr::new(ip, 10_000 + SERVICE_PORT);
                let proxy = Proxy::start(public, listen)
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
                controller: None,
            });
        }
        std::fs::write(&deployment.controller_config, deployment.controller_toml())?;
        deployment.migrate().await?;
        let names: Vec<String> = deployment.regions.iter().map(|r| r.name.clone()).collect();
        for name in &names {
            deployment.start_region(name)?;
        }
        deployment.wait_ready(Duration::from_secs(60)).await?;
        Ok(deployment)
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

    /// The controllers' shared configuration file.
    fn controller_toml(&self) -> String {
        let options = &self.options;
        let mut toml = format!(
            "[probe]\ninterval_ms = {interval}\ntimeout_ms = {timeout}\n\n\
             [decision]\nmin_healthy_regions = 1\nmax_simultaneous_failures = 1\n\n\
             [lease]\nttl_ms = 2000\nrenew_interval_ms = 500\n\n\
             [dns]\nzone = \"svc.failover.test.\"\nrecord = \"api\"\nttl_seconds = {ttl}\nclient_subnets = [\n",
            interval = options.probe_interval_ms,
            timeout = (options.probe_interval_ms * 4 / 5).max(50),
            ttl = options.dns_ttl_s,
        );
        for region in &self.regions {
            toml.push_str(&format!(
                "  {{ cidr = \"127.0.{}.0/24\", region = \"{}\" }},\n",
                region.index, region.name
            ));
        }
        toml.push_str("]\n\n[dns.latency_ms]\n");
        // A synthetic latency matrix: regions further apart in the list are
        // further apart on the map.
        for from in &self.regions {
            let row: Vec<String> = self
                .regions
                .iter()
                .map(|to| {
                    let distance = u32::from(from.index.abs_diff(to.index));
                    format!("\"{}\" = {}", to.name, 1 + 40 * distance)
                })
                .collect();
            toml.push_str(&format!("\"{}\" = {{ {} }}\n", from.name, row.join(", ")));
        }
        for region in &self.regions {
            let instances: Vec<String> = region
                .instances
                .iter()
                .map(|i| format!("\"{}\"", i.public))
                .collect();
            toml.push_str(&format!(
                "\n[[regions]]\nname = \"{}\"\ninstances = [{}]\naws_region = \"{}\"\nhealth_check_id = \"\"\n",
                region.name,
                instances.join(", "),
                region.name
            ));
        }
        toml
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

    /// Starts every process of `name` that is not running, proxies open.
    pub fn start_region(&mut self, name: &str) -> anyhow::Result<()> {
        let bin_dir = self.options.bin_dir.clone();
        let logs = self.options.run_dir.join("logs");
        let database_url = self.database_url.clone();
        let config = self.controller_config.clone();
        let token = self.admin_token.clone();
        let region = self.region_mut(name)?;
        let via_proxy = replace_host(&database_url, region.database_proxy.listen);
        region.database_proxy.heal();
        for instance in &mut region.instances {
            instance.proxy.heal();
            if instance.child.is_none() {
                let mut command = Command::new(bin_dir.join("service"));
                command
                    .env("SERVICE_REGION", &region.name)
                    .env("SERVICE_INSTANCE_ID", &instance.id)
                    .env("SERVICE_LISTEN_ADDRESS", instance.listen.to_string())
                    .env("SERVICE_ADMIN_ADDRESS", instance.admin.to_string())
                    .env("SERVICE_DATABASE_URL", &via_proxy)
                    .env("SERVICE_DATABASE_POOL_SIZE", "8")
                    .env("SERVICE_READINESS_TIMEOUT_MS", "500")
                    .env("SERVICE_REGION_STATE_REFRESH_MS", "250")
                    .env("SERVICE_DRAIN_PERIOD_MS", "0");
                instance.child = Some(spawn_logged(command, &logs, &instance.id)?);
            }
        }
        if region.controller.is_none() {
            let mut command = Command::new(bin_dir.join("failover-controller"));
            command
                .arg("run")
                .env("FAILOVER_CONFIG", &config)
                .env("FAILOVER_REGION", &region.name)
                .env(
                    "FAILOVER_CONTROLLER_ID",
                    format!("controller-{}", region.name),
                )
                .env("FAILOVER_HTTP_LISTEN", region.controller_http.to_string())
                .env("FAILOVER_DNS_LISTEN", region.controller_dns.to_string())
                .env(
                    "FAILOVER_PROBE__LOCAL_ADDRESS",
                    region.controller_http.ip().to_string(),
                )
                .env("FAILOVER_DATABASE_URL", &via_proxy)
                .env("FAILOVER_ADMIN_TOKEN", &token);
            region.controller = Some(spawn_logged(
                command,
                &logs,
                &format!("controller-{}", region.name),
            )?);
        }
        Ok(())
    }

    /// SIGKILL every process of the region and close its addresses.
    pub fn kill_region(&mut self, name: &str) -> anyhow::Result<()> {
        let region = self.region_mut(name)?;
        for instance in &mut region.instances {
            instance.proxy.set_mode(Mode::Down);
            signal_child(instance.child.take(), Signal::SIGKILL);
        }
        signal_child(region.controller.take(), Signal::SIGKILL);
        Ok(())
    }

    /// The region's addresses stop answering: connections hang. Its
    /// processes are stopped (SIGSTOP) so the controller's DNS hangs too.
    pub fn blackhole_region(&mut self, name: &str, on: bool) -> anyhow::Result<()> {
        let region = self.region_mut(name)?;
        let signal = if on { Signal::SIGSTOP } else { Signal::SIGCONT };
        for instance in &region.instances {
            instance
                .proxy
                .set_mode(if on { Mode::Hold } else { Mode::Pass });
            signal_pid(instance.child.as_ref(), signal);
        }
        signal_pid(region.controller.as_ref(), signal);
        Ok(())
    }

    /// Added delay on the region's service traffic.
    pub fn delay_region(&mut self, name: &str, delay: Option<Duration>) -> anyhow::Result<()> {
        for instance in &self.region(name)?.instances {
            instance
                .proxy
                .set_mode(delay.map_or(Mode::Pass, Mode::Delay));
        }
        Ok(())
    }

    /// Holds (or releases) the region's database connections.
    pub fn stall_database(&mut self, name: &str, on: bool) -> anyhow::Result<()> {
        self.region(name)?
            .database_proxy
            .set_mode(if on { Mode::Hold } else { Mode::Pass });
        Ok(())
    }

    /// Cuts the prober of `name` off from every other region (and heals it).
    pub fn partition_prober(&mut self, name: &str, on: bool) -> anyhow::Result<()> {
        let source = self.region(name)?.controller_http.ip();
        for region in self.regions.iter().filter(|r| r.name != name) {
            for instance in &region.instances {
                if on {
                    instance.proxy.block_source(source);
                } else {
                    instance.proxy.heal();
                }
            }
        }
        Ok(())
    }

    /// SIGKILL the controller replica of `name`.
    pub fn kill_controller(&mut self, name: &str) -> anyhow::Result<()> {
        signal_child(self.region_mut(name)?.controller.take(), Signal::SIGKILL);
        Ok(())
    }

    /// The region whose controller holds the lease, asked over /status.
    pub async fn leader(&self) -> Option<String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .ok()?;
        for region in &self.regions {
            let url = format!("http://{}/status", region.controller_http);
            if let Ok(response) = client.get(url).send().await {
                if let Ok(status) = response.json::<serde_json::Value>().await {
                    if status["lease"]["held"] == true {
                        return Some(region.name.clone());
                    }
                }
            }
        }
        None
    }

    /// Heals every proxy, resumes stopped processes, restarts killed ones.
    pub fn restore_all(&mut self) -> anyhow::Result<()> {
        for name in self.options.regions.clone() {
            self.blackhole_region(&name, false)?;
            self.start_region(&name)?;
        }
        Ok(())
    }

    /// Waits until every instance is ready and a controller leads.
    pub async fn wait_ready(&self, within: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()?;
        let started = Instant::now();
        let mut pending: Vec<String> = Vec::new();
        while started.elapsed() < within {
            pending.clear();
            for region in &self.regions {
                for instance in &region.instances {
                    let url = format!("http://{}/healthz/region", instance.public);
                    if !matches!(client.get(url).send().await, Ok(r) if r.status().is_success()) {
                        pending.push(instance.id.clone());
                    }
                }
                let url = format!("http://{}/readyz", region.controller_http);
                if !matches!(client.get(url).send().await, Ok(r) if r.status().is_success()) {
                    pending.push(format!("controller-{}", region.name));
                }
            }
            if pending.is_empty() && self.leader().await.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!(
            "not ready after {:?}: {} (logs in {})",
            within,
            if pending.is_empty() {
                "no controller holds the lease".to_owned()
            } else {
                pending.join(", ")
            },
            self.options.run_dir.join("logs").display()
        )
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

    /// Region of an instance address, for labelling answers.
    pub fn region_of(&self, ip: IpAddr) -> Option<&str> {
        self.regions
            .iter()
            .find(|r| r.instances.iter().any(|i| i.public.ip() == ip))
            .map(|r| r.name.as_str())
    }

    /// Public addresses by region.
    pub fn instance_addresses(&self) -> BTreeMap<String, Vec<SocketAddr>> {
        self.regions
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    r.instances.iter().map(|i| i.public).collect(),
                )
            })
            .collect()
    }

    /// Stops every process (SIGTERM, then SIGKILL) and the database.
    pub async fn shutdown(&mut self) {
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

fn spawn_logged(mut command: Command, logs: &Path, name: &str) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join(format!("{name}.log")))?;
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    command
        .spawn()
        .with_context(|| format!("cannot start {name}"))
}

fn signal_child(child: Option<Child>, signal: Signal) {
    if let Some(mut child) = child {
        signal_pid(Some(&child), signal);
        // Reap in the background so no zombie is left.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
    }
}

fn signal_pid(child: Option<&Child>, signal: Signal) {
    if let Some(pid) = child.and_then(Child::id) {
        let _ = kill(Pid::from_raw(pid as i32), signal);
    }
}

async fn create_database(server_url: &str, name: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(server_url, tokio_postgres::NoTls)
        .await
        .with_context(|| "cannot connect to the database server".to_string())?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    Ok(())
}

/// `postgres://u@h:p/db?x` with another database name.
pub fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut result = format!("{}/{}", &base[..path_start], database);
    if let Some(query) = query {
        result.push('?');
        result.push_str(query);
    }
    result
}

/// The same URL pointing at `proxy` instead of the server.
fn replace_host(url: &str, proxy: SocketAddr) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[scheme_end..]
        .find('/')
        .map_or(url.len(), |i| scheme_end + i);
    let authority = &url[scheme_end..authority_end];
    let user = authority
        .rsplit_once('@')
        .map(|(user, _)| format!("{user}@"))
        .unwrap_or_default();
    format!(
        "{}{user}{proxy}{}",
        &url[..scheme_end],
        &url[authority_end..]
    )
}

fn database_socket(url: &str) -> anyhow::Result<SocketAddr> {
    let config: tokio_postgres::Config = url.parse().context("invalid database URL")?;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => bail!("the database URL must name a TCP host"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let ip: IpAddr = if host == "localhost" {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse()?
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_rewritten() {
        let url = "postgres://postgres@127.0.0.1:5555/postgres?sslmode=disable";
        assert_eq!(
            replace_database(url, "x"),
            "postgres://postgres@127.0.0.1:5555/x?sslmode=disable"
        );
        let proxy: SocketAddr = "127.0.2.250:5432".parse().unwrap();
        assert_eq!(
            replace_host(url, proxy),
            "postgres://postgres@127.0.2.250:5432/postgres?sslmode=disable"
        );
        assert_eq!(
            database_socket(url).unwrap(),
            "127.0.0.1:5555".parse().unwrap()
        );
    }
}
