//! Test helpers: a fresh database per test, tiny region-health servers on
//! loopback addresses, controllers built in-process, a moto Route53 server,
//! and a real DNS client bound to a chosen source address.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use failover_controller::config::{self, Settings};
use hickory_client::client::{Client, ClientHandle};
use hickory_client::proto::rr::{DNSClass, Name, RData, RecordType};
use hickory_client::proto::runtime::TokioRuntimeProvider;
use hickory_client::proto::udp::UdpClientStream;
use sqlx::{Connection, PgConnection, PgPool};

/// The PostgreSQL server of the test run.
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .expect("TEST_DATABASE_URL must point at a PostgreSQL server (scripts/test.sh sets it)")
}

/// A fresh, UUID-named database with the service's and the controller's
/// migrations applied.
pub struct TestDb {
    pub pool: PgPool,
    pub url: String,
}

pub async fn test_db() -> TestDb {
    let server = server_url();
    let name = format!("fc_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&server)
        .await
        .expect("connect to the test server");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create the test database");
    let base = server
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .unwrap_or(server.clone());
    let url = format!("{base}/{name}");
    let pool = failover_controller::db::connect(&url, 5)
        .await
        .expect("connect to the test database");
    let mut service = sqlx::migrate!("../service/migrations");
    service.set_ignore_missing(true);
    service.run(&pool).await.expect("service migrations");
    failover_controller::db::migrate(&pool)
        .await
        .expect("controller migrations");
    TestDb { pool, url }
}

/// How a fake service instance answers its region-health endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Health {
    Ok = 0,
    Unavailable = 1,
    Hang = 2,
}

/// A tiny `/healthz/instance` server on a loopback address.
pub struct HealthServer {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

/// The `/healthz/instance` route of a fake instance, answering as `mode` says
/// (a [`Health`] value), shared by the plain-HTTP and the TLS servers.
pub fn health_router(mode: Arc<AtomicU8>) -> Router {
    Router::new().route(
        "/healthz/instance",
        get(move || {
            let mode = mode.load(Ordering::SeqCst);
            async move {
                match mode {
                    0 => (StatusCode::OK, r#"{"status":"ok"}"#),
                    1 => (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"drained"}"#),
                    _ => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        (StatusCode::OK, "late")
                    }
                }
            }
        }),
    )
}

impl HealthServer {
    pub async fn start(ip: &str) -> Self {
        let mode = Arc::new(AtomicU8::new(Health::Ok as u8));
        let app = health_router(Arc::clone(&mode));
        let listener = tokio::net::TcpListener::bind(format!("{ip}:0"))
            .await
            .expect("bind health server");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, mode, task }
    }

    pub fn set(&self, health: Health) {
        self.mode.store(health as u8, Ordering::SeqCst);
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Three regions with two instances each on 127.0.R.x.
pub struct Regions {
    pub servers: Vec<Vec<HealthServer>>,
}

impl Regions {
    pub async fn start(count: usize) -> Self {
        let mut servers = Vec::new();
        for r in 1..=count {
            let mut region = Vec::new();
            for i in 1..=2 {
                region.push(HealthServer::start(&format!("127.0.{r}.{i}")).await);
            }
            servers.push(region);
        }
        Self { servers }
    }

    pub fn set_region(&self, index: usize, health: Health) {
        for server in &self.servers[index] {
            server.set(health);
        }
    }

    /// The `[[regions]]` TOML for these servers.
    pub fn toml(&self) -> String {
        let mut text = String::new();
        for (i, region) in self.servers.iter().enumerate() {
            let instances: Vec<String> = region.iter().map(|s| format!("\"{}\"", s.addr)).collect();
            text.push_str(&format!(
                "[[regions]]\nname = \"region-{n}\"\ninstances = [{}]\naws_region = \"{}\"\n\n",
                instances.join(", "),
                ["us-east-1", "eu-west-1", "ap-southeast-1", "us-west-2"][i % 4],
                n = i + 1
            ));
        }
        text
    }
}

/// The tables every test controller shares: 500 ms probes, a 100 ms
/// decision loop, the lease timing, and DNS for `api.svc.failover.test.`
/// with client subnets 127.0.R.0/24 for regions 1-3.
pub fn base_toml(lease_ttl_ms: u64, lease_renew_ms: u64) -> String {
    format!(
        r#"[probe]
interval_ms = 500
timeout_ms = 300
[decision]
interval_ms = 100
hold_down_base_ms = 3000
[lease]
ttl_ms = {lease_ttl_ms}
renew_interval_ms = {lease_renew_ms}
[dns]
zone = "svc.failover.test."
record = "api"
ttl_seconds = 1
client_subnets = [
  {{ cidr = "127.0.1.0/24", region = "region-1" }},
  {{ cidr = "127.0.2.0/24", region = "region-2" }},
  {{ cidr = "127.0.3.0/24", region = "region-3" }},
]
[dns.latency_ms]
region-1 = {{ region-2 = 40, region-3 = 90 }}
region-2 = {{ region-1 = 40, region-3 = 60 }}
region-3 = {{ region-1 = 90, region-2 = 60 }}
"#
    )
}

/// Settings for one replica: `extra` TOML goes on top of the test base.
pub fn settings(region: &str, db_url: &str, regions_toml: &str, extra: &str) -> Settings {
    let r = region.trim_start_matches("region-");
    let text = format!(
        r#"controller_id = "controller-{region}"
http_listen = "127.0.{r}.100:0"
dns_listen = "127.0.{r}.100:0"
admin_token = "test-admin-token"
{base}{extra}
{regions_toml}"#,
        base = base_toml(3000, 500)
    );
    let path = std::env::temp_dir().join(format!("fc-it-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&path, text).unwrap();
    let env = vec![
        ("FAILOVER_REGION".to_string(), region.to_string()),
        ("FAILOVER_DATABASE_URL".to_string(), db_url.to_string()),
    ];
    let settings =
        config::load(Some(&path), env, &Default::default()).expect("valid test settings");
    std::fs::remove_file(path).ok();
    settings
}

/// Asks the DNS server for the A records of `name`, from `source` (the
/// client's address decides its client region).
pub async fn resolve_a(
    server: SocketAddr,
    source: IpAddr,
    name: &str,
) -> (hickory_client::proto::op::ResponseCode, Vec<IpAddr>) {
    let stream = UdpClientStream::builder(server, TokioRuntimeProvider::default())
        .with_bind_addr(Some(SocketAddr::new(source, 0)))
        .with_timeout(Some(Duration::from_secs(2)))
        .build();
    let (mut client, background) = Client::connect(stream).await.expect("dns client");
    let bg = tokio::spawn(background);
    let response = client
        .query(Name::from_ascii(name).unwrap(), DNSClass::IN, RecordType::A)
        .await
        .expect("dns query");
    bg.abort();
    let ips = response
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect();
    (response.response_code(), ips)
}

/// Polls `check` every 50 ms until it returns Some or `limit` passes.
pub async fn wait_for<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = tokio::time::Instant::now();
    while started.elapsed() < limit {
        if let Some(value) = check().await {
            return Some(value);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// POSTs an override to a replica's admin API (`base`) with the test token.
pub async fn post_override(
    base: &str,
    body: &serde_json::Value,
) -> reqwest::Result<reqwest::Response> {
    reqwest::Client::new()
        .post(format!("{base}/v1/admin/overrides"))
        .bearer_auth("test-admin-token")
        .json(body)
        .send()
        .await
}

/// Sends an admin drain until it is accepted (201), for 15 s. A replica
/// judges a drain against the regions its last round saw up; on a loaded
/// machine a probe can time out between the test's look at `/status` and
/// the request, and the replica then refuses (409) as it should. Returns
/// the accepted response, or `None` with the statuses printed.
pub async fn accepted_drain(base: &str, body: &serde_json::Value) -> Option<reqwest::Response> {
    let mut refused = Vec::new();
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        if let Ok(response) = post_override(base, body).await {
            if response.status() == 201 {
                if !refused.is_empty() {
                    println!("drain answered {refused:?} before it was accepted");
                }
                return Some(response);
            }
            refused.push(response.status().as_u16());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("drain never accepted; it answered {refused:?}");
    None
}

/// A controller running in-process until [`Running::stop`].
pub struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    run: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub fn start(app: failover_controller::app::Application) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Self { stop, run }
    }

    pub async fn stop(self) {
        self.stop.send(()).unwrap();
        self.run.await.unwrap().unwrap();
    }
}

/// The replicas of region-2 and region-3 beside a test's own region-1
/// replica: a region counts as up only when a majority of the configured
/// vantage points sees it, so one replica alone never sees a region up
/// (and its admin API refuses every drain that min_healthy_regions guards).
/// `adjust` changes their settings as the test changed its own replica's.
pub async fn start_peers(
    db_url: &str,
    regions_toml: &str,
    adjust: impl Fn(&mut Settings),
) -> Vec<Running> {
    let mut peers = Vec::new();
    for region in ["region-2", "region-3"] {
        let mut settings = settings(region, db_url, regions_toml, "");
        adjust(&mut settings);
        let app = failover_controller::app::Application::build(settings)
            .await
            .expect("a peer replica starts");
        peers.push(Running::start(app));
    }
    peers
}

/// Waits until a controller's `/readyz` answers 200: it has read its view
/// from the database (before that its DNS answers SERVFAIL).
pub async fn wait_ready(http: &str) {
    let url = format!("{http}/readyz");
    wait_for(Duration::from_secs(15), || async {
        let response = reqwest::get(&url).await.ok()?;
        (response.status() == StatusCode::OK).then_some(())
    })
    .await
    .expect("the controller becomes ready");
}

/// GETs JSON from a controller.
pub async fn get_json(url: &str) -> serde_json::Value {
    reqwest::get(url)
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON")
}

/// Waits until a controller's last decision round saw every region up: its
/// admin API judges a drain against the regions seen up, and refuses one
/// while it has seen none.
pub async fn wait_all_seen_up(http: &str) {
    let url = format!("{http}/status");
    wait_for(Duration::from_secs(15), || async {
        let status: serde_json::Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
        let regions = status["regions"].as_array()?;
        (!regions.is_empty() && regions.iter().all(|r| r["verdict"] == "up")).then_some(())
    })
    .await
    .expect("every region seen up");
}
