//! Open-loop load: each client region sends at its own fixed rate from its
//! own address, resolves the service name through its region's recursive
//! resolver (unbound, which caches by TTL), speaks HTTPS to the regions'
//! load balancers, and records every operation from its intended start (no
//! coordinated omission) to ok, fail or unknown.
//!
//! Clients as they are: every other operation goes through a pooled
//! keep-alive client (the default of every SDK), whose connections are
//! keyed by the service's name, so that it keeps using a connection to a
//! region whatever DNS says since, until the server closes it; the others
//! through a client that opens a fresh connection (and resolves) each time.
//!
//! A failed attempt is retried on the next region of the client's
//! preference list that it has not tried yet, up to three attempts in all
//! (the AWS SDKs' standard retry mode makes three), with the same
//! Idempotency-Key for writes (reads are safe to retry by HTTP semantics).
//! An answer that asks the client to wait (429 or 503 with `Retry-After`:
//! the per-principal rate limit, load shedding) is honoured before the
//! next attempt, up to [`MAX_RETRY_AFTER`], as SDKs do with throttling.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::deployment::instances::InstanceHttps;

/// How an operation ended (Jepsen's :ok, :fail, :info).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Fail,
    /// A write whose effect the client cannot know (timed out after sending).
    Unknown,
}

/// One operation of the history (a line of `history.jsonl`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Operation {
    pub client_region: String,
    /// "read" or "write".
    pub kind: String,
    pub key: Option<String>,
    /// Seconds after t = 0 at which the operation should have started.
    pub intended_s: f64,
    /// From the intended start to the final answer.
    pub latency_ms: f64,
    pub outcome: Outcome,
    pub served_by: Option<String>,
    /// The client the operation went through.
    #[serde(default)]
    pub connection: Connection,
    pub attempts: u8,
    /// Error of the first attempt when it failed (retried or not).
    pub first_error: Option<String>,
    /// A write's transfer as the client asked for it: what the verifier
    /// reconciles every account against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferSent>,
    /// The account a read asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Uuid>,
    /// The transfer id an acknowledged write was answered with: the ledger
    /// must hold this transfer under the write's key, not another one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_id: Option<Uuid>,
    /// The balance a successful read returned (never negative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<i64>,
}

/// How a client holds its connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    /// Keep-alive connections reused across requests, keyed by host name.
    #[default]
    Pooled,
    /// A new connection, and a new resolution, for every request.
    Fresh,
}

/// Attempts per operation: the first, then one on each of the next regions.
pub const MAX_ATTEMPTS: u8 = 3;

/// The longest `Retry-After` a client waits before its next attempt.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(2);

/// Amount of every transfer the load sends (minor units).
pub const TRANSFER_AMOUNT: i64 = 1;

/// A transfer as the client sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferSent {
    pub from: Uuid,
    pub to: Uuid,
    pub amount: i64,
}

/// What the load needs to know about the deployment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// DNS servers of every controller replica (the authoritative view).
    pub dns_servers: Vec<SocketAddr>,
    /// The recursive resolver of each client region.
    pub resolvers: BTreeMap<String, SocketAddr>,
    /// PEM of the CA the load balancers' certificate chains to.
    pub ca_pem: String,
    /// Source address of each client region.
    pub client_addresses: BTreeMap<String, IpAddr>,
    /// Instances of each region, for the retry on the next region.
    pub instances: BTreeMap<String, Vec<SocketAddr>>,
    /// The host name of each instance reached by name
    /// ([`crate::deployment::instances`]).
    pub instance_names: BTreeMap<SocketAddr, String>,
    /// Regions in order of preference for each client region.
    pub preference: BTreeMap<String, Vec<String>>,
    /// Sent as `Authorization: Bearer` on every request.
    pub api_key: String,
    /// The name clients resolve (fully qualified, with its final dot).
    pub service_name: String,
    /// The port clients connect to.
    pub service_port: u16,
}

/// The region whose instance has address `ip`.
pub fn region_of(instances: &BTreeMap<String, Vec<SocketAddr>>, ip: IpAddr) -> Option<&str> {
    instances
        .iter()
        .find(|(_, addresses)| addresses.iter().any(|address| address.ip() == ip))
        .map(|(region, _)| region.as_str())
}

/// The load's shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub client_regions: Vec<String>,
    /// Added to each client region's place in `client_regions` to seed its
    /// requests: a runner that sends one region's load sends what this
    /// machine would have sent for it.
    #[serde(default)]
    pub seed_offset: u64,
    pub rate_per_client_region: f64,
    pub write_ratio: f64,
    pub duration: Duration,
    pub request_timeout: Duration,
    pub accounts: Vec<Uuid>,
    pub seed: u64,
}

/// Live counters for progress and abort decisions.
#[derive(Debug, Default)]
pub struct LiveCounters {
    pub per_region: Mutex<BTreeMap<String, (u64, u64)>>,
    pub failed_total: AtomicU64,
    pub completed_total: AtomicU64,
}

impl LiveCounters {
    /// (ok, not ok) per client region since the last call.
    pub fn take_window(&self) -> BTreeMap<String, (u64, u64)> {
        std::mem::take(&mut *self.per_region.lock().expect("counter lock"))
    }

    fn record(&self, region: &str, ok: bool) {
        if ok {
            self.add(region, 1, 0);
        } else {
            self.add(region, 0, 1);
        }
    }

    /// Counts operations that ended elsewhere (a remote runner's window).
    pub fn add(&self, region: &str, ok: u64, failed: u64) {
        let mut map = self.per_region.lock().expect("counter lock");
        let entry = map.entry(region.to_owned()).or_default();
        entry.0 += ok;
        entry.1 += failed;
        self.failed_total.fetch_add(failed, Ordering::Relaxed);
        self.completed_total
            .fetch_add(ok + failed, Ordering::Relaxed);
    }
}

/// A stub resolver that asks `dns_servers` (from `source` when given),
/// caching by TTL when `cache` is set.
pub fn resolver(dns_servers: &[SocketAddr], source: Option<IpAddr>, cache: bool) -> TokioResolver {
    let mut config = ResolverConfig::new();
    for server in dns_servers {
        let mut name_server = NameServerConfig::new(*server, Protocol::Udp);
        name_server.bind_addr = source.map(|source| SocketAddr::new(source, 0));
        config.add_name_server(name_server);
    }
    let mut options = ResolverOpts::default();
    // A recursive resolver may need a name server's timeout and another
    // name server to answer.
    options.timeout = Duration::from_millis(1500);
    options.attempts = 1;
    options.cache_size = if cache { 32 } else { 0 };
    options.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
    options.server_ordering_strategy =
        hickory_resolver::config::ServerOrderingStrategy::QueryStatistics;
    let mut builder =
        TokioResolver::builder_with_config(config, TokioConnectionProvider::default());
    *builder.options_mut() = options;
    builder.build()
}

/// The machine's own resolver (`/etc/resolv.conf`), without a cache of
/// ours, as the stub resolver of a client there; the controllers' answer
/// TTLs are the recursive resolver's to honour.
fn system_resolver() -> TokioResolver {
    let mut builder = TokioResolver::builder_tokio().unwrap_or_else(|error| {
        tracing::warn!(%error, "no system resolver configuration; asking 127.0.0.53");
        let mut config = ResolverConfig::new();
        config.add_name_server(NameServerConfig::new(
            SocketAddr::from(([127, 0, 0, 53], 53)),
            Protocol::Udp,
        ));
        TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
    });
    builder.options_mut().cache_size = 0;
    builder.options_mut().use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
    builder.build()
}

/// Runs the load to its end (or until `abort` is set) and returns the history.
pub async fn run(
    plan: Plan,
    target: Target,
    t0: Instant,
    live: Arc<LiveCounters>,
    abort: Arc<AtomicBool>,
) -> Vec<Operation> {
    let mut tasks = Vec::new();
    for (offset, client_region) in plan.client_regions.iter().enumerate() {
        let source = target.client_addresses[client_region];
        // The client region's own resolver; the controllers directly for a
        // deployment that has none.
        let resolver = match target.resolvers.get(client_region) {
            Some(address) => self::resolver(&[*address], Some(source), false),
            // A load runner whose vantage point names no resolver: the
            // one its machine uses, as that region's clients do.
            None if target.dns_servers.is_empty() => system_resolver(),
            None => self::resolver(&target.dns_servers, Some(source), true),
        };
        let builder = |pooled: bool| {
            let builder = crate::deployment::tls::client_builder(&target.ca_pem)
                .default_headers(crate::api_key::headers(&target.api_key))
                .local_address(source)
                .timeout(plan.request_timeout)
                .dns_resolver(Arc::new(NameResolver(resolver.clone())));
            if pooled {
                // reqwest's (and most SDKs') idle timeout: 90 s.
                builder.pool_idle_timeout(Duration::from_secs(90))
            } else {
                builder.pool_max_idle_per_host(0)
            }
        };
        // The retries go to one instance of the next region: by its host
        // name when the deployment gives one, pinned to its address.
        let by_address = |pooled: bool| {
            InstanceHttps::new(&target.instance_names, || builder(pooled)).expect("https clients")
        };
        let client = Arc::new(RegionClient {
            region: client_region.clone(),
            pooled: builder(true).build().expect("https client"),
            fresh: builder(false).build().expect("https client"),
            pooled_by_address: by_address(true),
            fresh_by_address: by_address(false),
            resolver,
            preference: target.preference[client_region].clone(),
            instances: target.instances.clone(),
            service_name: target.service_name.clone(),
            service_port: target.service_port,
        });
        let plan = plan.clone();
        let live = live.clone();
        let abort = abort.clone();
        tasks.push(tokio::spawn(async move {
            let offset = plan.seed_offset + offset as u64;
            client_loop(client, plan, offset, t0, live, abort).await
        }));
    }
    let mut history = Vec::new();
    for task in tasks {
        history.extend(task.await.expect("client task"));
    }
    history.sort_by(|a, b| a.intended_s.total_cmp(&b.intended_s));
    history
}

/// reqwest's connections resolved through the client region's resolver.
struct NameResolver(TokioResolver);

impl reqwest::dns::Resolve for NameResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.0.clone();
        Box::pin(async move {
            let answer = resolver.lookup_ip(name.as_str()).await?;
            let mut addresses: Vec<SocketAddr> =
                answer.iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            // Spread new connections over the region's instances.
            if !addresses.is_empty() {
                let start = rand::thread_rng().gen_range(0..addresses.len());
                addresses.rotate_left(start);
            }
            let addresses: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

/// How an answer that is not a success ends an attempt: refused before
/// execution (a 4xx, or the service shedding load) is not applied, and
/// waits out a `Retry-After` (integer seconds, at most
/// [`MAX_RETRY_AFTER`]) when it carries one; any other 5xx may have been.
fn refused(
    address: &str,
    status: reqwest::StatusCode,
    retry_after: Option<&str>,
    body: &str,
) -> Attempt {
    let error = format!("{address}: {status}");
    let shed = body.contains("/problems/overloaded");
    let wait = retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|seconds| Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    match wait {
        Some(wait) if status == reqwest::StatusCode::TOO_MANY_REQUESTS || shed => {
            Attempt::WaitAndRetry(error, wait)
        }
        _ if status.is_client_error() || shed => Attempt::Failed(error),
        _ => Attempt::Maybe(error),
    }
}

struct RegionClient {
    region: String,
    resolver: TokioResolver,
    pooled: reqwest::Client,
    fresh: reqwest::Client,
    pooled_by_address: InstanceHttps,
    fresh_by_address: InstanceHttps,
    preference: Vec<String>,
    instances: BTreeMap<String, Vec<SocketAddr>>,
    service_name: String,
    service_port: u16,
}

async fn client_loop(
    client: Arc<RegionClient>,
    plan: Plan,
    offset: u64,
    t0: Instant,
    live: Arc<LiveCounters>,
    abort: Arc<AtomicBool>,
) -> Vec<Operation> {
    let mut rng = StdRng::seed_from_u64(plan.seed.wrapping_mul(31).wrapping_add(offset));
    let interval = Duration::from_secs_f64(1.0 / plan.rate_per_client_region);
    let total = (plan.duration.as_secs_f64() * plan.rate_per_client_region).round() as u64;
    let mut operations = tokio::task::JoinSet::new();
    for n in 0..total {
        if abort.load(Ordering::Relaxed) {
            break;
        }
        let intended = t0 + interval * n as u32;
        tokio::time::sleep_until(intended.into()).await;
        let write = rng.gen_bool(plan.write_ratio);
        let from = plan.accounts[rng.gen_range(0..plan.accounts.len())];
        let mut to = plan.accounts[rng.gen_range(0..plan.accounts.len())];
        while to == from {
            to = plan.accounts[rng.gen_range(0..plan.accounts.len())];
        }
        let pick = rng.gen::<u64>();
        let request = if write {
            Request::Transfer {
                key: Uuid::new_v4().to_string(),
                from,
                to,
            }
        } else {
            Request::Read { account: from }
        };
        let client = client.clone();
        let live = live.clone();
        operations.spawn(async move {
            let connection = if n % 2 == 0 {
                Connection::Pooled
            } else {
                Connection::Fresh
            };
            let operation = client
                .execute(request, connection, intended, t0, pick)
                .await;
            live.record(&client.region, operation.outcome == Outcome::Ok);
            operation
        });
    }
    let mut history = Vec::new();
    while let Some(operation) = operations.join_next().await {
        history.push(operation.expect("operation task"));
    }
    history
}

/// Where an attempt goes.
#[derive(Clone, Copy)]
enum Destination {
    /// The service's name, as a client configured with it.
    Name,
    /// One instance's load balancer address.
    Address(SocketAddr),
}

enum Request {
    Read { account: Uuid },
    Transfer { key: String, from: Uuid, to: Uuid },
}

/// The result of one attempt.
enum Attempt {
    Ok {
        served_by: Option<String>,
        /// The answer's body, for the transfer id or the balance it carries.
        body: serde_json::Value,
    },
    /// Definitely not applied (refused, or an answer that says so).
    Failed(String),
    /// May have been applied.
    Maybe(String),
    /// Refused with a request to wait this long before trying again (429,
    /// or 503 from load shedding: not applied).
    WaitAndRetry(String, Duration),
}

impl RegionClient {
    async fn execute(
        &self,
        request: Request,
        connection: Connection,
        intended: Instant,
        t0: Instant,
        pick: u64,
    ) -> Operation {
        let (kind, key, transfer, account) = match &request {
            Request::Read { account } => ("read", None, None, Some(*account)),
            Request::Transfer { key, from, to } => (
                "write",
                Some(key.clone()),
                Some(TransferSent {
                    from: *from,
                    to: *to,
                    amount: TRANSFER_AMOUNT,
                }),
                None,
            ),
        };
        let mut attempts = 0u8;
        let mut first_error = None;
        let mut maybe_applied = false;
        let mut outcome = Outcome::Fail;
        let mut served_by = None;
        let mut answer = serde_json::Value::Null;
        let mut tried_regions: Vec<String> = Vec::new();
        for attempt in 0..MAX_ATTEMPTS {
            // The first attempt goes to the service's name (the client's
            // connections, pooled by name, resolve it when they open); the
            // retry to an instance of the next region by address.
            let (destination, region) = if attempt == 0 {
                match self.resolve(pick).await {
                    Some(address) => (
                        Destination::Name,
                        region_of(&self.instances, address.ip()).map(str::to_owned),
                    ),
                    None => {
                        let address = self.fallback(&[], pick);
                        (
                            Destination::Address(address),
                            region_of(&self.instances, address.ip()).map(str::to_owned),
                        )
                    }
                }
            } else {
                let address = self.fallback(&tried_regions, pick);
                (
                    Destination::Address(address),
                    region_of(&self.instances, address.ip()).map(str::to_owned),
                )
            };
            tried_regions.extend(region);
            attempts += 1;
            match self.send(&request, connection, destination).await {
                Attempt::Ok {
                    served_by: region,
                    body,
                } => {
                    outcome = Outcome::Ok;
                    served_by = region;
                    answer = body;
                    break;
                }
                Attempt::Failed(error) => {
                    first_error.get_or_insert(error);
                }
                Attempt::Maybe(error) => {
                    maybe_applied = true;
                    first_error.get_or_insert(error);
                }
                Attempt::WaitAndRetry(error, wait) => {
                    first_error.get_or_insert(error);
                    if attempt + 1 < MAX_ATTEMPTS {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        if outcome != Outcome::Ok && maybe_applied && kind == "write" {
            outcome = Outcome::Unknown;
        }
        Operation {
            client_region: self.region.clone(),
            kind: kind.to_owned(),
            key,
            intended_s: intended.duration_since(t0).as_secs_f64(),
            latency_ms: intended.elapsed().as_secs_f64() * 1000.0,
            outcome,
            served_by,
            connection,
            attempts,
            first_error,
            transfer,
            account,
            transfer_id: answer["id"].as_str().and_then(|id| id.parse().ok()),
            balance: answer["balance"].as_i64(),
        }
    }

    /// An instance from the DNS answer (the resolver caches it for its TTL).
    async fn resolve(&self, pick: u64) -> Option<SocketAddr> {
        let answer = self
            .resolver
            .lookup_ip(self.service_name.as_str())
            .await
            .ok()?;
        let addresses: Vec<IpAddr> = answer.iter().collect();
        if addresses.is_empty() {
            return None;
        }
        let ip = addresses[(pick % addresses.len() as u64) as usize];
        Some(SocketAddr::new(ip, self.service_port))
    }

    /// An instance of the first preferred region not in `not`.
    fn fallback(&self, not: &[String], pick: u64) -> SocketAddr {
        let region = self
            .preference
            .iter()
            .find(|r| !not.contains(r))
            .unwrap_or(&self.preference[0]);
        let addresses = &self.instances[region];
        addresses[(pick % addresses.len() as u64) as usize]
    }

    async fn send(
        &self,
        request: &Request,
        connection: Connection,
        destination: Destination,
    ) -> Attempt {
        let (method, path) = match request {
            Request::Read { account } => (reqwest::Method::GET, format!("/v1/accounts/{account}")),
            Request::Transfer { .. } => (reqwest::Method::POST, "/v1/transfers".to_owned()),
        };
        let (address, builder) = match destination {
            Destination::Name => {
                let http = match connection {
                    Connection::Pooled => &self.pooled,
                    Connection::Fresh => &self.fresh,
                };
                let address = format!(
                    "{}:{}",
                    self.service_name.trim_end_matches('.'),
                    self.service_port
                );
                let url = format!("https://{address}{path}");
                (address, http.request(method, url))
            }
            Destination::Address(address) => {
                let http = match connection {
                    Connection::Pooled => &self.pooled_by_address,
                    Connection::Fresh => &self.fresh_by_address,
                };
                (address.to_string(), http.request(method, address, &path))
            }
        };
        let response = match request {
            Request::Read { .. } => builder.send().await,
            Request::Transfer { key, from, to } => {
                builder
                    .header("Idempotency-Key", key)
                    .json(&serde_json::json!({"from": from, "to": to, "amount": TRANSFER_AMOUNT}))
                    .send()
                    .await
            }
        };
        match response {
            Ok(response) if response.status().is_success() => {
                let served_by = response
                    .headers()
                    .get("x-served-by-region")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                // A 2xx is the acknowledgement whatever its body; a body
                // that does not parse only leaves the id or balance unknown.
                let body = response.json().await.unwrap_or_default();
                Attempt::Ok { served_by, body }
            }
            Ok(response) => {
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = response.text().await.unwrap_or_default();
                refused(&address, status, retry_after.as_deref(), &body)
            }
            Err(error) if error.is_connect() => {
                Attempt::Failed(format!("{address}: connect: {error}"))
            }
            Err(error) if error.is_timeout() => Attempt::Maybe(format!("{address}: timeout")),
            Err(error) => Attempt::Maybe(format!("{address}: {error}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;

    use super::*;

    #[test]
    fn a_refusal_that_asks_to_wait_is_waited_out_before_the_next_attempt() {
        let limited = refused("a", StatusCode::TOO_MANY_REQUESTS, Some("1"), "");
        assert!(
            matches!(limited, Attempt::WaitAndRetry(_, wait) if wait == Duration::from_secs(1))
        );
        let long = refused("a", StatusCode::TOO_MANY_REQUESTS, Some(" 30 "), "");
        assert!(matches!(long, Attempt::WaitAndRetry(_, wait) if wait == MAX_RETRY_AFTER));
        let shed = refused(
            "a",
            StatusCode::SERVICE_UNAVAILABLE,
            Some("1"),
            r#"{"type":"https://errors.example/problems/overloaded"}"#,
        );
        assert!(matches!(shed, Attempt::WaitAndRetry(..)));
        // Without a usable Retry-After: refused, retried at once.
        for retry_after in [None, Some("Wed, 21 Oct 2026 07:28:00 GMT")] {
            let bare = refused("a", StatusCode::TOO_MANY_REQUESTS, retry_after, "");
            assert!(matches!(bare, Attempt::Failed(_)));
        }
        // A 503 that is not load shedding may have been applied.
        let unknown = refused("a", StatusCode::SERVICE_UNAVAILABLE, Some("1"), "{}");
        assert!(matches!(unknown, Attempt::Maybe(_)));
        assert!(matches!(
            refused("a", StatusCode::NOT_FOUND, None, ""),
            Attempt::Failed(_)
        ));
    }
}
