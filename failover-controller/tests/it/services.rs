//! Real `service` processes as the regions' instances: the same binary that
//! is deployed, on the test's database, reading the real drain flag. Used by
//! the failback tests, where a health server that ignored the drain flag
//! once hid that a drained region could never return.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

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

/// Each harness gets addresses of its own, `127.B.R.i`, so that tests
/// running at once never share an address: a port another test took while
/// a region was down cannot be mistaken for the region coming back.
fn address_block() -> u8 {
    static NEXT: AtomicU8 = AtomicU8::new(0);
    120 + NEXT.fetch_add(1, Ordering::Relaxed) % 100
}

/// Two distinct free ports on `ip` (both bound before either is released).
fn two_free_ports(ip: &str) -> (SocketAddr, SocketAddr) {
    let bind = || std::net::TcpListener::bind(format!("{ip}:0")).expect("bind a free port");
    let (first, second) = (bind(), bind());
    (first.local_addr().unwrap(), second.local_addr().unwrap())
}

/// One instance: where it listens, and its process while it runs.
pub struct ServiceInstance {
    pub region: String,
    pub id: String,
    pub addr: SocketAddr,
    admin: SocketAddr,
    database_url: String,
    /// Where its stdout and stderr go, shown when it does not answer.
    log: PathBuf,
    child: Option<Child>,
}

impl ServiceInstance {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the instance's log");
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
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start the service binary");
        self.child = Some(child);
    }

    /// Why it cannot answer, if its process has ended: the exit status
    /// and the end of its log.
    fn exited(&mut self) -> Option<String> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        Some(format!(
            "{} exited ({status}); its log ends:\n{}",
            self.id,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
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
        let block = address_block();
        let logs = std::env::temp_dir().join(format!("fc-services-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&logs).expect("log directory");
        let mut regions = Vec::new();
        for r in 1..=count {
            let mut instances = Vec::new();
            for i in 1..=2 {
                let ip = format!("127.{block}.{r}.{i}");
                let (addr, admin) = two_free_ports(&ip);
                let id = format!("region-{r}-{i}");
                let mut instance = ServiceInstance {
                    region: format!("region-{r}"),
                    log: logs.join(format!("{id}.log")),
                    id,
                    addr,
                    admin,
                    database_url: database_url.to_owned(),
                    child: None,
                };
                instance.start();
                instances.push(instance);
            }
            regions.push(instances);
        }
        let mut started = Self { regions };
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

    /// Waits until every instance of the region answers `path` with
    /// `status`; fails at once, with its log, if an instance has exited.
    pub async fn wait_region(&mut self, index: usize, path: &str, status: u16) {
        let client = reqwest::Client::new();
        let urls: Vec<String> = self.regions[index]
            .iter()
            .map(|i| format!("http://{}{path}", i.addr))
            .collect();
        let started = tokio::time::Instant::now();
        'waiting: loop {
            if let Some(why) = self.regions[index]
                .iter_mut()
                .find_map(ServiceInstance::exited)
            {
                panic!("region-{} cannot answer {path}: {why}", index + 1);
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "region-{} did not answer {path} with {status} (logs in {})",
                index + 1,
                self.regions[index][0].log.parent().unwrap().display()
            );
            for url in &urls {
                let answered = client.get(url).send().await.map(|r| r.status().as_u16());
                if answered.ok() != Some(status) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue 'waiting;
                }
            }
            return;
        }
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
