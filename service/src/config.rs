//! Typed settings: embedded defaults, then an optional TOML file, then
//! `SERVICE_*` environment variables, then flags (clap merges the last two).
//!
//! Everything is validated before the first port is bound; each error names
//! the field that is wrong.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};

use crate::db::cockroach::{is_region_name, CockroachLayout, RegionMapping};

/// The defaults, embedded so that the binary needs no file to start.
pub const DEFAULTS_TOML: &str = include_str!("../config/default.toml");

/// Largest accepted `read_batch_max_wait_us`: one second.
pub const MAX_READ_BATCH_WAIT_US: u64 = 1_000_000;

/// Largest accepted `worker_threads`.
pub const MAX_WORKER_THREADS: usize = 512;

/// Command line of the `service` binary.
#[derive(Debug, Parser)]
#[command(name = "service", version, about = "The regional ledger API")]
pub struct Cli {
    /// A TOML file whose keys override the defaults (same names as the flags,
    /// with underscores).
    #[arg(long, env = "SERVICE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: Overrides,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What the binary does; `serve` when none is given.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply the schema migrations (and, on CockroachDB, the multi-region DDL), then exit.
    Migrate,
    /// Print the CockroachDB multi-region DDL for the configured regions, then exit.
    PrintCockroachDdl,
    /// Wait until every schema migration of the service is applied, then
    /// exit (the Deployment's init container, so that pods never serve an
    /// older schema than their code); exit 1 after 15 minutes.
    WaitForSchema,
    /// Create, revoke or list API keys (in the database: every region accepts them).
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
}

/// `service api-key ...`: run with a database role that may write
/// `api_keys` (the migration role; the runtime role can only read them).
#[derive(Debug, Clone, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key for a principal and print it (once: only its digest is stored).
    Create {
        /// The principal the key authenticates as (owner of the accounts it creates).
        #[arg(long)]
        principal: String,
        /// Scopes, space or comma separated (`admin`: the ledger summary and
        /// reading every account and transfer).
        #[arg(long, default_value = "")]
        scopes: String,
        /// What the key is for (shown by `list`).
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Revoke a key by its prefix (or the whole key); every instance
    /// refuses it within `auth_api_key_refresh_ms`.
    Revoke {
        /// `lk_<prefix>` or the prefix alone.
        prefix: String,
    },
    /// List every key (prefix, principal, scopes, created, revoked), never a secret.
    List,
}

/// Every setting as an optional flag with an environment fallback. Only
/// the ones that are given override the file and the defaults.
#[derive(Debug, Default, Clone, clap::Args, Serialize)]
pub struct Overrides {
    /// Region this instance serves (required).
    #[arg(long, env = "SERVICE_REGION", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Instance id reported in responses (default: hostname-pid).
    #[arg(long, env = "SERVICE_INSTANCE_ID", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Public address (API and health).
    #[arg(long, env = "SERVICE_LISTEN_ADDRESS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_address: Option<String>,
    /// Admin address (Prometheus metrics).
    #[arg(long, env = "SERVICE_ADMIN_ADDRESS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_address: Option<String>,
    /// Database URL (secret: never printed).
    #[arg(
        long,
        env = "SERVICE_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Maximum connections in the pool.
    #[arg(long, env = "SERVICE_DATABASE_POOL_SIZE", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_pool_size: Option<u32>,
    /// Open every pooled connection before reporting ready.
    #[arg(long, env = "SERVICE_DATABASE_POOL_WARM", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_pool_warm: Option<bool>,
    /// Share of each pool's connections that the writes touching one home
    /// region's accounts may hold (0 < share <= 1; 1: no bound).
    #[arg(long, env = "SERVICE_DATABASE_POOL_HOME_REGION_SHARE", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_pool_home_region_share: Option<f64>,
    /// How long a request waits for a pooled connection.
    #[arg(long, env = "SERVICE_DATABASE_ACQUIRE_TIMEOUT_MS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_acquire_timeout_ms: Option<u64>,
    /// Server-side statement timeout.
    #[arg(long, env = "SERVICE_DATABASE_STATEMENT_TIMEOUT_MS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_statement_timeout_ms: Option<u64>,
    /// Server-side bound on a transaction left open between statements: a
    /// frozen or cut-off instance's locks are released after it.
    #[arg(
        long,
        env = "SERVICE_DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS",
        global = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_idle_in_transaction_timeout_ms: Option<u64>,
    /// Bound on the database check of /readyz and the region gate.
    #[arg(long, env = "SERVICE_READINESS_TIMEOUT_MS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_timeout_ms: Option<u64>,
    /// Interval of the region drain-flag refresh.
    #[arg(long, env = "SERVICE_REGION_STATE_REFRESH_MS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region_state_refresh_ms: Option<u64>,
    /// Per-request deadline.
    #[arg(long, env = "SERVICE_REQUEST_TIMEOUT_MS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    /// Largest accepted request body.
    #[arg(long, env = "SERVICE_MAX_REQUEST_BODY_BYTES", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_request_body_bytes: Option<usize>,
    /// Concurrent API requests beyond which requests are shed with 503.
    #[arg(long, env = "SERVICE_MAX_CONCURRENT_REQUESTS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_requests: Option<usize>,
    /// Time between turning unready and closing the listener on shutdown.
    #[arg(long, env = "SERVICE_DRAIN_PERIOD_MS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_period_ms: Option<u64>,
    /// Bound on in-flight requests after the listener closed.
    #[arg(long, env = "SERVICE_SHUTDOWN_GRACE_MS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_grace_ms: Option<u64>,
    /// Retries of a transaction after serialization failures.
    #[arg(long, env = "SERVICE_TRANSACTION_MAX_RETRIES", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_max_retries: Option<u32>,
    /// Account-read statements in flight at most (reads are batched; never more than the pool).
    #[arg(long, env = "SERVICE_READ_BATCH_MAX_IN_FLIGHT", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_batch_max_in_flight: Option<usize>,
    /// Waiting reads that start another statement while one is in flight.
    #[arg(long, env = "SERVICE_READ_BATCH_MIN_FILL", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_batch_min_fill: Option<usize>,
    /// Microseconds a read waits for an in-flight statement before another starts for it.
    #[arg(long, env = "SERVICE_READ_BATCH_MAX_WAIT_US", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_batch_max_wait_us: Option<u64>,
    /// Threads serving the public API, each with its own share of the pool:
    /// 0 = one per CPU (at most database_pool_size).
    #[arg(long, env = "SERVICE_WORKER_THREADS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_threads: Option<usize>,
    /// true: each serving thread runs its own connections, pool share and
    /// read batcher; false: one work-stealing runtime over all threads.
    #[arg(long, env = "SERVICE_THREAD_PER_CORE", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_per_core: Option<bool>,
    /// Apply migrations before serving.
    #[arg(long, env = "SERVICE_MIGRATE_ON_START", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrate_on_start: Option<bool>,
    /// CockroachDB regions, primary first, comma separated, each as
    /// service-region=database-region (us-east-1=aws-us-east-1).
    #[arg(
        long,
        env = "SERVICE_DATABASE_REGIONS",
        value_delimiter = ',',
        global = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_regions: Option<Vec<String>>,
    /// Role the service pods connect as; `migrate` grants it its
    /// privileges (empty: no grants).
    #[arg(long, env = "SERVICE_DATABASE_RUNTIME_ROLE", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_runtime_role: Option<String>,
    /// Requests that may wait for a database connection, per connection of the pool; beyond, 503 at once.
    #[arg(long, env = "SERVICE_DATABASE_QUEUE_PER_CONNECTION", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_queue_per_connection: Option<usize>,
    /// How long one database check of /readyz answers every caller.
    #[arg(long, env = "SERVICE_READINESS_CACHE_MS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_cache_ms: Option<u64>,
    /// Bound on reading a request's head (slowloris), and on an idle keep-alive connection.
    #[arg(long, env = "SERVICE_HTTP_HEADER_READ_TIMEOUT_MS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_header_read_timeout_ms: Option<u64>,
    /// Bound on receiving a request body.
    #[arg(long, env = "SERVICE_HTTP_REQUEST_BODY_TIMEOUT_MS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_request_body_timeout_ms: Option<u64>,
    /// Open client connections beyond which new ones are closed at once.
    #[arg(long, env = "SERVICE_MAX_CONNECTIONS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// How often the API-key snapshot is re-read (creation and revocation take effect within it).
    #[arg(long, env = "SERVICE_AUTH_API_KEY_REFRESH_MS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_api_key_refresh_ms: Option<u64>,
    /// JWKS of the JWT issuer: a file path or an https:// URL (empty: JWTs refused).
    #[arg(long, env = "SERVICE_AUTH_JWT_JWKS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_jwt_jwks: Option<String>,
    /// Required `iss` of JWTs.
    #[arg(long, env = "SERVICE_AUTH_JWT_ISSUER", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_jwt_issuer: Option<String>,
    /// Required `aud` of JWTs.
    #[arg(long, env = "SERVICE_AUTH_JWT_AUDIENCE", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_jwt_audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[arg(long, env = "SERVICE_AUTH_JWT_LEEWAY_S", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_jwt_leeway_s: Option<u64>,
    /// How often a JWKS URL is fetched again (key rotation).
    #[arg(long, env = "SERVICE_AUTH_JWT_JWKS_REFRESH_S", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_jwt_jwks_refresh_s: Option<u64>,
    /// Verified JWTs remembered until they expire or the JWKS is read again (0: none).
    #[arg(long, env = "SERVICE_AUTH_JWT_CACHE_SIZE", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_jwt_cache_size: Option<usize>,
    /// Sustained requests per second per principal in this region (0: no limit).
    #[arg(long, env = "SERVICE_RATE_LIMIT_PER_SECOND", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_second: Option<f64>,
    /// Requests per principal that may come at once (the bucket's size).
    #[arg(long, env = "SERVICE_RATE_LIMIT_BURST", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_burst: Option<u32>,
    /// Instances serving this region: each enforces its share of the region's limit.
    #[arg(long, env = "SERVICE_RATE_LIMIT_INSTANCES_PER_REGION", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_instances_per_region: Option<u32>,
    /// Log filter (RUST_LOG syntax).
    #[arg(long, env = "SERVICE_LOG_FILTER", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_filter: Option<String>,
}

/// The validated settings the application runs with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub region: String,
    pub instance_id: String,
    pub listen_address: SocketAddr,
    pub admin_address: SocketAddr,
    pub database_url: SecretString,
    pub database_pool_size: u32,
    pub database_pool_warm: bool,
    pub database_pool_home_region_share: f64,
    pub database_acquire_timeout_ms: u64,
    pub database_statement_timeout_ms: u64,
    pub database_idle_in_transaction_timeout_ms: u64,
    pub readiness_timeout_ms: u64,
    pub region_state_refresh_ms: u64,
    pub request_timeout_ms: u64,
    pub max_request_body_bytes: usize,
    pub max_concurrent_requests: usize,
    pub drain_period_ms: u64,
    pub shutdown_grace_ms: u64,
    pub transaction_max_retries: u32,
    pub read_batch_max_in_flight: usize,
    pub read_batch_min_fill: usize,
    pub read_batch_max_wait_us: u64,
    pub worker_threads: usize,
    pub thread_per_core: bool,
    pub migrate_on_start: bool,
    pub database_regions: Vec<String>,
    pub database_runtime_role: String,
    pub database_queue_per_connection: usize,
    pub readiness_cache_ms: u64,
    pub http_header_read_timeout_ms: u64,
    pub http_request_body_timeout_ms: u64,
    pub max_connections: usize,
    pub auth_api_key_refresh_ms: u64,
    pub auth_jwt_jwks: String,
    pub auth_jwt_issuer: String,
    pub auth_jwt_audience: String,
    pub auth_jwt_leeway_s: u64,
    pub auth_jwt_jwks_refresh_s: u64,
    pub auth_jwt_cache_size: usize,
    pub rate_limit_per_second: f64,
    pub rate_limit_burst: u32,
    pub rate_limit_instances_per_region: u32,
    pub log_filter: String,
}

/// A configuration problem, naming the field when there is one.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {source}")]
    ParseFile {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{0}")]
    Field(String),
    #[error("field `{field}`: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
}

impl Cli {
    /// Layers the defaults, the file and the overrides, then validates.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let mut table: toml::Table = DEFAULTS_TOML
            .parse()
            .expect("embedded defaults are valid TOML");
        if let Some(path) = &self.config {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
                path: path.clone(),
                source,
            })?;
            let file: toml::Table = text.parse().map_err(|source| ConfigError::ParseFile {
                path: path.clone(),
                source,
            })?;
            table.extend(file);
        }
        Settings::from_layers(table, &self.overrides)
    }
}

impl Settings {
    /// How reads are batched on a serving thread whose share of the pool
    /// is `pool_size` connections: never more statements in flight than it
    /// has connections.
    pub fn read_batching(&self, pool_size: usize) -> crate::db::reads::Batching {
        crate::db::reads::Batching {
            max_in_flight: self.read_batch_max_in_flight.min(pool_size).max(1),
            min_fill: self.read_batch_min_fill,
            max_wait: Duration::from_micros(self.read_batch_max_wait_us),
        }
    }

    /// The serving runtimes ([`crate::server`]) and the worker threads of
    /// each. `worker_threads` threads serve the public API, one per CPU
    /// (cgroup limits included) when it is 0. With `thread_per_core` each
    /// is a single-threaded runtime of its own, never more of them than
    /// `database_pool_size` since each has its own connections; else one
    /// runtime has them all.
    pub fn serving_runtimes(&self) -> (usize, usize) {
        let threads = match self.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            threads => threads,
        };
        if self.thread_per_core {
            (threads.min(self.database_pool_size as usize).max(1), 1)
        } else {
            (1, threads)
        }
    }

    /// Each serving runtime's share of `database_pool_size`: equal shares,
    /// the first runtimes taking one more when it does not divide evenly.
    pub fn pool_shares(&self) -> Vec<usize> {
        let (runtimes, _) = self.serving_runtimes();
        let pool = self.database_pool_size as usize;
        (0..runtimes)
            .map(|runtime| pool / runtimes + usize::from(runtime < pool % runtimes))
            .collect()
    }

    /// Merges `overrides` over `table` and validates the result.
    pub fn from_layers(mut table: toml::Table, overrides: &Overrides) -> Result<Self, ConfigError> {
        let overrides = toml::Table::try_from(overrides).expect("overrides serialise to TOML");
        table.extend(overrides);
        let mut settings: Settings = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|error| {
                let path = error.path().to_string();
                let inner = error.into_inner();
                if path == "." {
                    ConfigError::Field(inner.message().to_owned())
                } else {
                    ConfigError::Field(format!("field `{path}`: {}", inner.message()))
                }
            })?;
        if settings.instance_id.is_empty() {
            settings.instance_id = default_instance_id();
        }
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: &'static str, problem: &str| {
            Err(ConfigError::Invalid {
                field,
                problem: problem.to_owned(),
            })
        };
        if !is_region_name(&self.region) {
            return invalid(
                "region",
                "must be set to a region name of lower-case letters, digits and dashes (e.g. us-east-1)",
            );
        }
        if self.database_url.expose().is_empty() {
            return invalid("database_url", "must be set (SERVICE_DATABASE_URL)");
        }
        if !(self.database_url.expose().starts_with("postgres://")
            || self.database_url.expose().starts_with("postgresql://"))
        {
            return invalid("database_url", "must be a postgres:// or postgresql:// URL");
        }
        if self.database_pool_size == 0 {
            return invalid("database_pool_size", "must be at least 1");
        }
        for (field, value) in [
            (
                "database_acquire_timeout_ms",
                self.database_acquire_timeout_ms,
            ),
            (
                "database_statement_timeout_ms",
                self.database_statement_timeout_ms,
            ),
            (
                "database_idle_in_transaction_timeout_ms",
                self.database_idle_in_transaction_timeout_ms,
            ),
            ("readiness_timeout_ms", self.readiness_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("shutdown_grace_ms", self.shutdown_grace_ms),
        ] {
            if value == 0 {
                return invalid(field, "must be greater than 0");
            }
        }
        if self.region_state_refresh_ms == 0 || self.region_state_refresh_ms > 1000 {
            return invalid(
                "region_state_refresh_ms",
                "must be between 1 and 1000 (the drain flag may be at most one second stale)",
            );
        }
        if self.max_request_body_bytes < 256 {
            return invalid("max_request_body_bytes", "must be at least 256");
        }
        for (field, value) in [
            ("read_batch_max_in_flight", self.read_batch_max_in_flight),
            ("read_batch_min_fill", self.read_batch_min_fill),
        ] {
            if !(1..=crate::db::reads::MAX_BATCH).contains(&value) {
                let max = crate::db::reads::MAX_BATCH;
                return invalid(field, &format!("must be between 1 and {max}, not {value}"));
            }
        }
        let wait = self.read_batch_max_wait_us;
        if wait > MAX_READ_BATCH_WAIT_US {
            let problem =
                format!("must be at most {MAX_READ_BATCH_WAIT_US} (one second), not {wait}");
            return invalid("read_batch_max_wait_us", &problem);
        }
        let threads = self.worker_threads;
        if threads > MAX_WORKER_THREADS {
            let problem =
                format!("must be between 0 (one per CPU) and {MAX_WORKER_THREADS}, not {threads}");
            return invalid("worker_threads", &problem);
        }
        for (field, value) in [
            ("readiness_cache_ms", self.readiness_cache_ms),
            (
                "http_header_read_timeout_ms",
                self.http_header_read_timeout_ms,
            ),
            (
                "http_request_body_timeout_ms",
                self.http_request_body_timeout_ms,
            ),
            ("auth_api_key_refresh_ms", self.auth_api_key_refresh_ms),
            ("auth_jwt_jwks_refresh_s", self.auth_jwt_jwks_refresh_s),
        ] {
            if value == 0 {
                return invalid(field, "must be greater than 0");
            }
        }
        if self.readiness_cache_ms > 5000 {
            return invalid(
                "readiness_cache_ms",
                "must be at most 5000 (a cached answer delays noticing a dead database)",
            );
        }
        if self.auth_api_key_refresh_ms > 60_000 {
            return invalid(
                "auth_api_key_refresh_ms",
                "must be at most 60000 (a revoked key stays usable this long)",
            );
        }
        if self.max_connections == 0 {
            return invalid("max_connections", "must be at least 1");
        }
        if self.database_queue_per_connection == 0 {
            return invalid("database_queue_per_connection", "must be at least 1");
        }
        let share = self.database_pool_home_region_share;
        if !(share.is_finite() && share > 0.0 && share <= 1.0) {
            return invalid(
                "database_pool_home_region_share",
                &format!("must be greater than 0 and at most 1, not {share}"),
            );
        }
        if !self.rate_limit_per_second.is_finite() || self.rate_limit_per_second < 0.0 {
            return invalid(
                "rate_limit_per_second",
                "must be 0 (no limit) or a positive number",
            );
        }
        if self.rate_limit_per_second > 0.0 && self.rate_limit_burst == 0 {
            return invalid(
                "rate_limit_burst",
                "must be at least 1 when rate_limit_per_second is set",
            );
        }
        if self.rate_limit_instances_per_region == 0 {
            return invalid("rate_limit_instances_per_region", "must be at least 1");
        }
        let jwks = self.auth_jwt_jwks.trim();
        if !jwks.is_empty() {
            if jwks.starts_with("http://") {
                return invalid(
                    "auth_jwt_jwks",
                    "must be a file path or an https:// URL (a JWKS fetched in clear text could be forged)",
                );
            }
            if self.auth_jwt_issuer.is_empty() {
                return invalid("auth_jwt_issuer", "must be set when auth_jwt_jwks is");
            }
            if self.auth_jwt_audience.is_empty() {
                return invalid("auth_jwt_audience", "must be set when auth_jwt_jwks is");
            }
        }
        if self.max_concurrent_requests == 0 {
            return invalid("max_concurrent_requests", "must be at least 1");
        }
        if self.listen_address == self.admin_address && self.listen_address.port() != 0 {
            return invalid("admin_address", "must differ from listen_address");
        }
        let role = &self.database_runtime_role;
        if !role.is_empty() && !crate::db::grants::is_role_name(role) {
            return invalid(
                "database_runtime_role",
                "must be a lower-case SQL identifier (letters, digits, underscores)",
            );
        }
        // Each entry maps a service region to its CockroachDB region; the
        // full layout (three or more) is checked where it is used, since
        // PostgreSQL needs none.
        for entry in &self.database_regions {
            if let Err(problem) = RegionMapping::parse(entry) {
                return invalid("database_regions", &problem);
            }
        }
        Ok(())
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.http_header_read_timeout_ms)
    }

    pub fn readiness_timeout(&self) -> Duration {
        Duration::from_millis(self.readiness_timeout_ms)
    }

    pub fn drain_period(&self) -> Duration {
        Duration::from_millis(self.drain_period_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// The CockroachDB topology for the DDL generator.
    pub fn cockroach_layout(&self) -> Result<CockroachLayout, ConfigError> {
        CockroachLayout::new(&self.database_regions).map_err(|problem| ConfigError::Invalid {
            field: "database_regions",
            problem,
        })
    }
}

fn default_instance_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    format!("{host}-{}", std::process::id())
}

/// A string that never appears in logs or `Debug` output.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The only way to read the secret; grep for it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> toml::Table {
        DEFAULTS_TOML.parse().unwrap()
    }

    fn valid_overrides() -> Overrides {
        Overrides {
            region: Some("us-east-1".into()),
            database_url: Some("postgres://u@localhost/db".into()),
            ..Overrides::default()
        }
    }

    #[test]
    fn defaults_with_region_and_url_are_valid() {
        let settings = Settings::from_layers(base(), &valid_overrides()).unwrap();
        assert_eq!(settings.listen_address.port(), 8080);
        assert_eq!(settings.admin_address.port(), 9090);
        assert!(!settings.instance_id.is_empty());
    }

    #[test]
    fn missing_region_names_the_field() {
        let mut overrides = valid_overrides();
        overrides.region = None;
        let error = Settings::from_layers(base(), &overrides)
            .unwrap_err()
            .to_string();
        assert!(error.contains("`region`"), "{error}");
    }

    #[test]
    fn wrong_type_in_file_names_the_field() {
        let mut table = base();
        table.insert(
            "database_pool_size".into(),
            toml::Value::String("many".into()),
        );
        let error = Settings::from_layers(table, &valid_overrides())
            .unwrap_err()
            .to_string();
        assert!(error.contains("database_pool_size"), "{error}");
    }

    #[test]
    fn unknown_key_in_file_is_rejected() {
        let mut table = base();
        table.insert("pool_sise".into(), toml::Value::Integer(3));
        let error = Settings::from_layers(table, &valid_overrides())
            .unwrap_err()
            .to_string();
        assert!(error.contains("pool_sise"), "{error}");
    }

    #[test]
    fn bad_address_names_the_field() {
        let mut overrides = valid_overrides();
        overrides.listen_address = Some("not-an-address".into());
        let error = Settings::from_layers(base(), &overrides)
            .unwrap_err()
            .to_string();
        assert!(error.contains("listen_address"), "{error}");
    }

    #[test]
    fn secret_is_redacted_in_debug() {
        let settings = Settings::from_layers(base(), &valid_overrides()).unwrap();
        assert!(!format!("{settings:?}").contains("postgres://"));
    }

    #[test]
    fn read_batching_bounds_name_the_field() {
        let cases = [
            (Some(0), None, None, "read_batch_max_in_flight"),
            (Some(65), None, None, "read_batch_max_in_flight"),
            (None, Some(0), None, "read_batch_min_fill"),
            (None, Some(65), None, "read_batch_min_fill"),
            (None, None, Some(1_000_001), "read_batch_max_wait_us"),
        ];
        for (max_in_flight, min_fill, max_wait_us, field) in cases {
            let mut overrides = valid_overrides();
            overrides.read_batch_max_in_flight = max_in_flight;
            overrides.read_batch_min_fill = min_fill;
            overrides.read_batch_max_wait_us = max_wait_us;
            let error = Settings::from_layers(base(), &overrides)
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(&format!("`{field}`")),
                "{max_in_flight:?} {min_fill:?} {max_wait_us:?}: {error}"
            );
        }
        let mut overrides = valid_overrides();
        overrides.read_batch_max_in_flight = Some(64);
        overrides.read_batch_min_fill = Some(64);
        overrides.read_batch_max_wait_us = Some(1_000_000);
        Settings::from_layers(base(), &overrides).expect("the bounds themselves are valid");
    }

    #[test]
    fn statements_in_flight_never_exceed_the_threads_share_of_the_pool() {
        let mut overrides = valid_overrides();
        overrides.read_batch_max_in_flight = Some(8);
        overrides.read_batch_max_wait_us = Some(1500);
        let settings = Settings::from_layers(base(), &overrides).unwrap();
        let batching = settings.read_batching(2);
        assert_eq!(batching.max_in_flight, 2);
        assert_eq!(batching.max_wait, Duration::from_micros(1500));
        assert_eq!(settings.read_batching(16).max_in_flight, 8);
    }

    #[test]
    fn the_pool_is_shared_out_among_the_serving_threads() {
        let mut overrides = valid_overrides();
        for (threads, pool, shares) in [
            (1, 16, vec![16]),
            (2, 16, vec![8, 8]),
            (3, 16, vec![6, 5, 5]),
            // Never more threads than connections.
            (8, 3, vec![1, 1, 1]),
        ] {
            overrides.worker_threads = Some(threads);
            overrides.database_pool_size = Some(pool);
            let settings = Settings::from_layers(base(), &overrides).unwrap();
            assert_eq!(settings.serving_runtimes(), (shares.len(), 1));
            assert_eq!(
                settings.pool_shares(),
                shares,
                "{threads} threads, pool {pool}"
            );
        }
        // One work-stealing runtime: all the threads, the whole pool.
        overrides.thread_per_core = Some(false);
        overrides.worker_threads = Some(8);
        overrides.database_pool_size = Some(3);
        let settings = Settings::from_layers(base(), &overrides).unwrap();
        assert_eq!(settings.serving_runtimes(), (1, 8));
        assert_eq!(settings.pool_shares(), vec![3]);
        overrides.thread_per_core = Some(true);
        overrides.worker_threads = Some(0);
        overrides.database_pool_size = Some(512);
        let settings = Settings::from_layers(base(), &overrides).unwrap();
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(settings.serving_runtimes(), (cpus.min(512), 1));
        assert_eq!(settings.pool_shares().iter().sum::<usize>(), 512);
    }

    #[test]
    fn worker_threads_bound_names_the_field() {
        let mut overrides = valid_overrides();
        overrides.worker_threads = Some(MAX_WORKER_THREADS + 1);
        let error = Settings::from_layers(base(), &overrides)
            .unwrap_err()
            .to_string();
        assert!(error.contains("`worker_threads`"), "{error}");
        for threads in [0, 1, MAX_WORKER_THREADS] {
            overrides.worker_threads = Some(threads);
            let settings = Settings::from_layers(base(), &overrides).expect("within the bounds");
            assert_eq!(settings.worker_threads, threads);
        }
    }

    #[test]
    fn the_home_region_share_is_a_fraction_of_the_pool() {
        let mut overrides = valid_overrides();
        for share in [0.0, -0.5, 1.5, f64::NAN] {
            overrides.database_pool_home_region_share = Some(share);
            let error = Settings::from_layers(base(), &overrides)
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("`database_pool_home_region_share`") && error.contains("at most 1"),
                "{share}: {error}"
            );
        }
        for share in [0.01, 0.75, 1.0] {
            overrides.database_pool_home_region_share = Some(share);
            let settings = Settings::from_layers(base(), &overrides).expect("within the bounds");
            assert_eq!(settings.database_pool_home_region_share, share);
        }
    }
}
