//! Real `service` processes as the regions' instances: the same binary that
//! is deployed, on the test's database, reading the real drain flag. Used by
//! the failback tests, where a health server that ignored the drain flag
//! once hid that a drained region could never return.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::wait_for;

/// `target/<profile>/service`, built beside this test binary.
fn service_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .join("service");
    assert!(
        path.exists(),
        "{} missing: build the workspace binaries first (`cargo build --workspace --bins`; scripts/test.sh does)",
        path.display()
    );
    path
}

fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind(format!("{ip}:0"))
        .expect("bind a free port")
        .local_addr()
        .expect("local address")
        .port()
}

/// One instance: where it listens, and its process while it runs.
pub struct ServiceInstance {
    pub region: String,
    pub id: String,
    pub addr: SocketAddr,
    admin: SocketAddr,
    database_url: String,
    child: Option<Child>,
}

impl ServiceInstance {
    fn start(&mut self) {
        let child = Command::new(service_binary())
            .env("SERVICE_REGION", &self.region)
            .env("SERVICE_INSTANCE_ID", &self.id)
            .env("SERVICE_LISTEN_ADDRESS", self.addr.to_string())
            .env("SERVICE_ADMIN_ADDRESS", self.admin.to_string())
            .env("SERVICE_DATABASE_URL", &self.database_url)
            .env("SERVICE_DATABASE_POOL_SIZE", "2")
            .env("SERVICE_WORKER_THREADS", "1")
            .env("SERVICE_REGION_STATE_REFRESH_MS", "250")
            .env("SERVICE_DRAIN_PERIOD_MS", "0")
            .env("SERVICE_LOG_FILTER", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the service binary");
        self.child = Some(child);
    }

    /// SIGKILL, as a region dies.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ServiceInstance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every region's instances: `region-R` on `127.0.R.i`.
pub struct ServiceRegions {
    pub regions: Vec<Vec<ServiceInstance>>,
}

impl ServiceRegions {
    /// Starts `count` regions of two instances and waits until every one
    /// answers its health endpoint.
    pub async fn start(database_url: &str, count: usize) -> Self {
        let mut regions = Vec::new();
        for r in 1..=count {
            let mut instances = Vec::new();
            for i in 1..=2 {
                let ip = format!("127.0.{r}.{i}");
                let mut instance = ServiceInstance {
                    region: format!("region-{r}"),
                    id: format!("region-{r}-{i}"),
                    addr: format!("{ip}:{}", free_port(&ip)).parse().unwrap(),
                    admin: format!("{ip}:{}", free_port(&ip)).parse().unwrap(),
                    database_url: database_url.to_owned(),
                    child: None,
                };
                instance.start();
                instances.push(instance);
            }
            regions.push(instances);
        }
        let started = Self { regions };
        for index in 0..count {
            started.wait_region(index, "/healthz/instance", 200).await;
        }
        started
    }

    /// SIGKILLs every instance of the region.
    pub fn kill_region(&mut self, index: usize) {
        self.regions[index]
            .iter_mut()
            .for_each(ServiceInstance::kill);
    }

    /// Starts the region's instances again on the same addresses and waits
    /// until they answer their health endpoint.
    pub async fn restart_region(&mut self, index: usize) {
        self.regions[index]
            .iter_mut()
            .for_each(ServiceInstance::start);
        self.wait_region(index, "/healthz/instance", 200).await;
    }

    /// Waits until every instance of the region answers `path` with `status`.
    pub async fn wait_region(&self, index: usize, path: &str, status: u16) {
        let client = reqwest::Client::new();
        let urls: Vec<String> = self.regions[index]
            .iter()
            .map(|i| format!("http://{}{path}", i.addr))
            .collect();
        let reached = wait_for(Duration::from_secs(20), || {
            let (client, urls) = (client.clone(), urls.clone());
            async move {
                for url in &urls {
                    let answered = client.get(url).send().await.ok()?.status().as_u16();
                    if answered != status {
                        return None;
                    }
                }
                Some(())
            }
        })
        .await;
        assert!(
            reached.is_some(),
            "region-{} did not answer {path} with {status}",
            index + 1
        );
    }

    /// What the region's first instance answers on `path`: status and body.
    pub async fn answer(&self, index: usize, path: &str) -> (u16, serde_json::Value) {
        let url = format!("http://{}{path}", self.regions[index][0].addr);
        let response = reqwest::get(url).await.expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// The `[[regions]]` TOML for these instances, each region with the
    /// Route53 health check id given for it (empty: none).
    pub fn toml(&self, health_check_ids: &[String]) -> String {
        let mut text = String::new();
        for (i, region) in self.regions.iter().enumerate() {
            let instances: Vec<String> = region.iter().map(|s| format!("\"{}\"", s.addr)).collect();
            text.push_str(&format!(
                "[[regions]]\nname = \"region-{n}\"\ninstances = [{}]\naws_region = \"{}\"\nhealth_check_id = \"{}\"\n\n",
                instances.join(", "),
                ["us-east-1", "eu-west-1", "ap-southeast-1"][i % 3],
                health_check_ids.get(i).map_or("", String::as_str),
                n = i + 1
            ));
        }
        text
    }

    /// The region's instance addresses, as DNS answers them.
    pub fn ips(&self, index: usize) -> Vec<std::net::IpAddr> {
        self.regions[index].iter().map(|i| i.addr.ip()).collect()
    }
}
