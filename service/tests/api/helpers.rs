//! Spawning the application against a fresh database, and a dedicated
//! PostgreSQL server for the tests that stop the database.

use std::path::PathBuf;
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use service::config::{Overrides, Settings, DEFAULTS_TOML};
use service::startup::Application;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgPool};
use tokio::sync::oneshot;
use uuid::Uuid;

/// The server that hosts the per-test databases.
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL").expect(
        "TEST_DATABASE_URL is not set: run the tests through scripts/test.sh, which starts PostgreSQL",
    )
}

/// A URL for database `name` on the server of `base`.
pub fn database_url(base: &str, name: &str) -> String {
    let options = PgConnectOptions::from_str(base).expect("valid TEST_DATABASE_URL");
    options.database(name).to_url_lossy().to_string()
}

/// Creates an empty database with a unique name and returns its URL.
pub async fn create_database(base: &str) -> String {
    let name = format!("test_{}", Uuid::new_v4().simple());
    let mut connection = sqlx::PgConnection::connect(base)
        .await
        .expect("connect to the test server");
    connection
        .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
        .await
        .expect("create the test database");
    database_url(base, &name)
}

/// Settings for a test instance: loopback, port 0, short drain period.
pub fn test_settings(region: &str, database_url: &str) -> Settings {
    let table: toml::Table = DEFAULTS_TOML.parse().unwrap();
    let overrides = Overrides {
        region: Some(region.to_owned()),
        instance_id: Some(format!(
            "{region}-test-{}",
            &Uuid::new_v4().simple().to_string()[..6]
        )),
        listen_address: Some("127.0.0.1:0".into()),
        admin_address: Some("127.0.0.1:0".into()),
        database_url: Some(database_url.to_owned()),
        drain_period_ms: Some(0),
        region_state_refresh_ms: Some(200),
        // New keys are accepted within 0.1 s; the rate limit is tested on
        // its own (tests/api/limits.rs).
        auth_api_key_refresh_ms: Some(100),
        rate_limit_per_second: Some(0.0),
        ..Overrides::default()
    };
    Settings::from_layers(table, &overrides).expect("valid test settings")
}

/// The principal of [`TestApp::client`]'s key (with the admin scope).
pub const TEST_PRINCIPAL: &str = "tester";

/// Creates an API key for `principal` with `scopes` in the database of `pool`.
pub async fn create_key(pool: &PgPool, principal: &str, scopes: &str) -> String {
    let mut connection = pool.acquire().await.expect("connect");
    service::auth::api_keys::create(
        &mut connection,
        principal,
        &service::auth::Scopes::parse(scopes),
        "test",
    )
    .await
    .expect("create an API key")
    .token
    .expose()
    .to_owned()
}

async fn has_api_keys(pool: &PgPool) -> bool {
    sqlx::query_scalar::<_, bool>("SELECT to_regclass('api_keys') IS NOT NULL")
        .fetch_one(pool)
        .await
        .unwrap_or(false)
}

/// A client that sends `key` as its bearer token.
pub fn client_with_key(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {key}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()
        .unwrap()
}

/// A running application and what tests need to talk to it.
pub struct TestApp {
    pub address: String,
    pub admin_address: String,
    pub pool: PgPool,
    /// Sends the key of [`TEST_PRINCIPAL`] (an admin).
    pub client: reqwest::Client,
    /// That key.
    pub key: String,
    /// Sends no credentials.
    pub anonymous: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// A new database, migrated, with one instance in `us-east-1`.
    pub async fn spawn() -> Self {
        let url = create_database(&server_url()).await;
        Self::spawn_on(test_settings("us-east-1", &url), true).await
    }

    /// An instance with these settings; migrates the database first when asked.
    pub async fn spawn_on(settings: Settings, migrate: bool) -> Self {
        let pool = PgPool::connect(settings.database_url.expose())
            .await
            .expect("connect");
        if migrate {
            let mut connection = pool.acquire().await.expect("connect");
            service::db::migrate(&mut connection, &settings)
                .await
                .expect("migrate");
        }
        // Before the application starts, so that its first snapshot has
        // it; through the server's own role (the instance's may be the
        // runtime role, which cannot write keys), when the schema exists.
        let owner_role = PgConnectOptions::from_str(&server_url())
            .expect("valid TEST_DATABASE_URL")
            .get_username()
            .to_owned();
        let owner_options = PgConnectOptions::from_str(settings.database_url.expose())
            .expect("valid database URL")
            .username(&owner_role);
        let key = match PgPool::connect_with(owner_options).await {
            Ok(owner) if migrate || has_api_keys(&owner).await => {
                create_key(&owner, TEST_PRINCIPAL, service::auth::ADMIN_SCOPE).await
            }
            _ => String::new(),
        };
        let application = Application::build(settings)
            .await
            .expect("build the application");
        let address = format!("http://127.0.0.1:{}", application.port());
        let admin_address = format!("http://127.0.0.1:{}", application.admin_port());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(application.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let app = Self {
            address,
            admin_address,
            pool,
            client: client_with_key(&key),
            key,
            anonymous: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            stop: Some(stop),
            task: Some(task),
        };
        app.wait_until_region_serves().await;
        app
    }

    /// Waits for the first region-gate refresh and the first API-key
    /// snapshot (at most a few seconds).
    pub async fn wait_until_region_serves(&self) {
        for _ in 0..100 {
            let mut ok = 0;
            for path in ["/healthz/region", "/readyz"] {
                if let Ok(response) = self
                    .anonymous
                    .get(format!("{}{path}", self.address))
                    .send()
                    .await
                {
                    ok += usize::from(response.status() == StatusCode::OK);
                }
            }
            if ok == 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new principal's key, once the application accepts it.
    pub async fn principal(&self, name: &str, scopes: &str) -> reqwest::Client {
        let key = create_key(&self.pool, name, scopes).await;
        let client = client_with_key(&key);
        for _ in 0..100 {
            let status = client
                .get(format!("{}/v1/transfers/{}", self.address, Uuid::new_v4()))
                .send()
                .await
                .unwrap()
                .status();
            if status != StatusCode::UNAUTHORIZED {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the key of {name} was never accepted");
    }

    /// Stops the application and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("clean shutdown");
        }
    }

    pub async fn post(&self, path: &str, key: Option<&str>, body: &Value) -> Response {
        let mut request = self
            .client
            .post(format!("{}{path}", self.address))
            .json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.expect("send request")
    }

    /// The admin port's metrics in the text format.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.admin_address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("send request")
    }

    /// Creates an account and returns its id.
    pub async fn create_account(&self, owner: &str, opening_balance: i64) -> Uuid {
        let response = self
            .post(
                "/v1/accounts",
                Some(&Uuid::new_v4().to_string()),
                &json!({ "owner": owner, "opening_balance": opening_balance }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn transfer(&self, key: &str, from: Uuid, to: Uuid, amount: i64) -> Response {
        self.post(
            "/v1/transfers",
            Some(key),
            &json!({ "from": from, "to": to, "amount": amount }),
        )
        .await
    }

    /// POSTs `body` with `client` (another principal's).
    pub async fn post_as(
        &self,
        client: &reqwest::Client,
        path: &str,
        key: &str,
        body: &Value,
    ) -> Response {
        client
            .post(format!("{}{path}", self.address))
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .expect("send request")
    }

    /// GETs `path` with `client` (another principal's).
    pub async fn get_as(&self, client: &reqwest::Client, path: &str) -> Response {
        client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("send request")
    }

    /// Counts and sums read directly from the database.
    pub async fn database_snapshot(&self) -> (i64, i64, i64, i64) {
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM transfers), \
             (SELECT COALESCE(sum(balance), 0)::INT8 FROM accounts), (SELECT count(*) FROM idempotency_keys)",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }
}

/// Holds a row lock on `account` (an open transaction) until the returned
/// connection commits: requests that touch the row wait for it.
pub async fn lock_row(database_url: &str, account: Uuid) -> sqlx::PgConnection {
    let mut locker = sqlx::PgConnection::connect(database_url).await.unwrap();
    locker.execute("BEGIN").await.unwrap();
    sqlx::query("SELECT balance FROM accounts WHERE id = $1 FOR UPDATE")
        .bind(account)
        .execute(&mut locker)
        .await
        .unwrap();
    locker
}

/// Starts `count` transfers from `from` to `to` (keys `{prefix}-{n}`), each
/// answering its status; with `from` locked by [`lock_row`] they wait, each
/// holding a pool connection and an admission slot.
pub fn spawn_transfers(
    app: &std::sync::Arc<TestApp>,
    prefix: &str,
    count: usize,
    from: Uuid,
    to: Uuid,
) -> Vec<tokio::task::JoinHandle<StatusCode>> {
    (0..count)
        .map(|n| {
            let (app, key) = (app.clone(), format!("{prefix}-{n}"));
            tokio::spawn(async move { app.transfer(&key, from, to, 1).await.status() })
        })
        .collect()
}

/// The value of the unlabelled sample `name` in a metrics exposition.
pub fn metric_value(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
}

/// Reads a problem document and checks its media type.
pub async fn problem(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert_eq!(content_type, "application/problem+json", "status {status}");
    (status, response.json().await.unwrap())
}

/// A PostgreSQL server of the test's own, which the test can stop and
/// start again (the shared server must stay up for the other tests).
pub struct DedicatedPostgres {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
}

impl DedicatedPostgres {
    pub fn start() -> Self {
        let bin = postgres_bin();
        let dir = std::env::temp_dir().join(format!("ledger-test-pg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        as_postgres(Command::new("chown").arg("postgres:").arg(&dir), false);
        let port = free_port();
        as_postgres(
            Command::new(bin.join("initdb"))
                .args(["-U", "postgres", "-A", "trust", "--no-sync", "-D"])
                .arg(dir.join("data")),
            true,
        );
        let server = Self { bin, dir, port };
        server.resume();
        server
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast shutdown: clients are disconnected).
    pub fn halt(&self) {
        as_postgres(
            Command::new(self.bin.join("pg_ctl"))
                .args(["-m", "fast", "-w", "stop", "-D"])
                .arg(self.dir.join("data")),
            true,
        );
    }

    /// Starts the server on the same port.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_wal_size=256MB -c min_wal_size=64MB",
            self.port,
            self.dir.display()
        );
        as_postgres(
            Command::new(self.bin.join("pg_ctl"))
                .args(["-w", "-t", "60", "-o", &options, "-l"])
                .arg(self.dir.join("server.log"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .arg("start"),
            true,
        );
    }
}

impl Drop for DedicatedPostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-m", "immediate", "-w", "stop", "-D"])
            .arg(self.dir.join("data"))
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn postgres_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("PG_BIN") {
        return PathBuf::from(bin);
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (scripts/pg.sh installs it)")
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    candidates.sort();
    candidates.pop().expect("a PostgreSQL bin directory")
}

/// Runs a command as the `postgres` user (PostgreSQL refuses root).
fn as_postgres(command: &mut Command, via_runuser: bool) {
    let output = if via_runuser {
        let program = command.get_program().to_owned();
        let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(args)
            .output()
    } else {
        command.output()
    }
    .expect("run a PostgreSQL command");
    assert!(
        output.status.success(),
        "{:?} failed: {}",
        command,
        String::from_utf8_lossy(&output.stderr)
    );
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Polls `check` every 50 ms until it holds or `within` passes; returns
/// how long it took.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while started.elapsed() <= within {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}
