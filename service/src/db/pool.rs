//! The connection pool: `deadpool` managing sqlx `PgConnection`s.
//!
//! Why not `sqlx::PgPool`: sqlx 0.8 pings every connection on its way back
//! into the pool, a full round trip that keeps the connection out of use
//! after every request (about 20 µs of database CPU per request on the
//! read benchmark, and latency across a region). Here a connection goes back
//! at once; one whose state is unknown (a transaction left open by a
//! cancelled request, an error during `COMMIT`) is taken out of the pool and
//! closed instead, by [`Pool::run`] or by the transaction guard of the
//! retry helper.

use prometheus::IntCounter;
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, PoolError, RecycleResult};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor, PgConnection};

/// Opens connections with the service's session settings.
#[derive(Debug)]
pub struct PgManager {
    options: PgConnectOptions,
    statement_timeout: String,
    idle_in_transaction_timeout: String,
    /// Connections opened so far (each is a new server process on PostgreSQL).
    opened: IntCounter,
}

impl managed::Manager for PgManager {
    type Type = PgConnection;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<PgConnection, sqlx::Error> {
        let mut connection = self
            .options
            .connect()
            .await
            .map_err(|error| super::target::name_host_on_connect_error(error, &self.options))?;
        self.opened.inc();
        connection.execute(self.statement_timeout.as_str()).await?;
        connection
            .execute(self.idle_in_transaction_timeout.as_str())
            .await?;
        // Every statement of the service looks rows up by primary key, so
        // its best plan never depends on the parameters. PostgreSQL's `auto`
        // mode kept re-planning `id = ANY($1)` (the batched read) on every
        // execution: a third of the database's CPU per read in the benchmark.
        // CockroachDB caches its own plans and is left as it is.
        if super::Dialect::detect(&mut connection).await? == super::Dialect::Postgres {
            connection
                .execute("SET plan_cache_mode = force_generic_plan")
                .await?;
        }
        Ok(connection)
    }

    async fn recycle(
        &self,
        _connection: &mut PgConnection,
        _metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
        // Nothing to check: sqlx drains any unread reply before the next
        // query, and connections of unknown state never come back.
        Ok(())
    }
}

/// The counter of connections opened by the request pools, for
/// [`Pool::new`] and the metrics registry.
pub fn opened_counter() -> IntCounter {
    IntCounter::new(
        "service_db_connections_opened_total",
        "Database connections opened by the request pools; a steady rise means connections are being discarded.",
    )
    .expect("valid metric")
}

/// A pooled connection; derefs to `PgConnection`.
pub type Connection = Object<PgManager>;

/// The pool handle; cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: managed::Pool<PgManager>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("status", &self.inner.status())
            .finish()
    }
}

/// Connections in the pool and how many are idle.
#[derive(Debug, Clone, Copy)]
pub struct PoolState {
    /// Open connections.
    pub size: usize,
    pub idle: usize,
    /// The most it opens.
    pub max_size: usize,
}

impl Pool {
    /// A lazy pool: no connection is opened until one is needed. Each
    /// connection it opens counts in `opened` (see [`opened_counter`]),
    /// which several pools may share.
    pub fn new(
        options: PgConnectOptions,
        max_size: usize,
        acquire_timeout: Duration,
        statement_timeout_ms: u64,
        idle_in_transaction_timeout_ms: u64,
        opened: IntCounter,
    ) -> Self {
        let manager = PgManager {
            options,
            statement_timeout: format!("SET statement_timeout = {statement_timeout_ms}"),
            idle_in_transaction_timeout: format!(
                "SET idle_in_transaction_session_timeout = {idle_in_transaction_timeout_ms}"
            ),
            opened,
        };
        let inner = managed::Pool::builder(manager)
            .max_size(max_size)
            .wait_timeout(Some(acquire_timeout))
            .create_timeout(Some(acquire_timeout))
            .recycle_timeout(Some(acquire_timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .expect("a runtime and timeouts are set");
        Self { inner }
    }

    /// Runs `work` on a pooled connection. A connection whose state is
    /// unknown afterwards (a connection-level error, or `work` cancelled
    /// mid-query by a timeout) is closed instead of going back to the pool,
    /// so a database restart or a stalled socket never poisons later requests.
    pub async fn run<T, F>(&self, work: F) -> Result<T, sqlx::Error>
    where
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>,
    {
        let mut guard = DiscardUnlessClean {
            connection: Some(self.acquire().await?),
            clean: false,
        };
        let result = work(guard.connection.as_mut().expect("present until drop")).await;
        guard.clean = match &result {
            Ok(_) => true,
            Err(error) => !leaves_connection_unusable(error),
        };
        result
    }

    /// A connection within the acquire timeout.
    pub async fn acquire(&self) -> Result<Connection, sqlx::Error> {
        self.inner.get().await.map_err(|error| match error {
            PoolError::Backend(error) => error,
            PoolError::Timeout(_) => sqlx::Error::PoolTimedOut,
            PoolError::Closed => sqlx::Error::PoolClosed,
            other => sqlx::Error::Protocol(other.to_string()),
        })
    }

    pub fn state(&self) -> PoolState {
        let status = self.inner.status();
        PoolState {
            size: status.size,
            idle: status.available,
            max_size: status.max_size,
        }
    }

    /// Closes idle connections and refuses new acquisitions.
    pub async fn close(&self) {
        self.inner.close();
    }
}

/// A boxed future borrowing the connection for `'c`.
pub type BoxFuture<'c, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'c>>;

/// Takes the connection out of the pool when dropped unclean.
struct DiscardUnlessClean {
    connection: Option<Connection>,
    clean: bool,
}

impl Drop for DiscardUnlessClean {
    fn drop(&mut self) {
        if !self.clean {
            if let Some(connection) = self.connection.take() {
                drop(Object::take(connection));
            }
        }
    }
}

/// True for errors after which the connection cannot be trusted: anything
/// but an error the server reported for the statement itself, and the
/// server's own "connection is going away" codes.
pub fn leaves_connection_unusable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database) => database
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        sqlx::Error::RowNotFound | sqlx::Error::ColumnNotFound(_) | sqlx::Error::Decode(_) => false,
        _ => true,
    }
}
