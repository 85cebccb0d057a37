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

/// A pooled server session: the connection and, on PostgreSQL, the
/// process id of its server backend, by which the statement of a cancelled
/// request is cancelled ([`Canceller`]). Derefs to the connection.
#[derive(Debug)]
pub struct Session {
    connection: PgConnection,
    backend_pid: Option<i32>,
}

impl std::ops::Deref for Session {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.connection
    }
}

impl std::ops::DerefMut for Session {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.connection
    }
}

impl managed::Manager for PgManager {
    type Type = Session;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<Session, sqlx::Error> {
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
        let mut backend_pid = None;
        if super::Dialect::detect(&mut connection).await? == super::Dialect::Postgres {
            connection
                .execute("SET plan_cache_mode = force_generic_plan")
                .await?;
            backend_pid = Some(
                sqlx::query_scalar("SELECT pg_backend_pid()")
                    .fetch_one(&mut connection)
                    .await?,
            );
        }
        Ok(Session {
            connection,
            backend_pid,
        })
    }

    async fn recycle(
        &self,
        _connection: &mut Session,
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
    /// Acquisitions waiting for a connection right now, and their bound:
    /// beyond it an acquisition fails at once (load shedding, a fast 503)
    /// instead of queueing for the acquire timeout.
    waiting: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    max_waiting: usize,
    /// The statement timeout: how long a cancelled request's connection
    /// may take to finish its statement and roll back.
    cancel_cleanup: Duration,
    /// Cancels the statement in flight of a cancelled request.
    canceller: Canceller,
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
        Self::with_queue(
            options,
            max_size,
            usize::MAX,
            acquire_timeout,
            statement_timeout_ms,
            idle_in_transaction_timeout_ms,
            opened,
        )
    }

    /// [`Pool::new`] with at most `max_waiting` acquisitions queued for a
    /// connection; the next fails at once with [`sqlx::Error::PoolTimedOut`].
    pub fn with_queue(
        options: PgConnectOptions,
        max_size: usize,
        max_waiting: usize,
        acquire_timeout: Duration,
        statement_timeout_ms: u64,
        idle_in_transaction_timeout_ms: u64,
        opened: IntCounter,
    ) -> Self {
        let canceller = Canceller::new(options.clone());
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
        Self {
            inner,
            waiting: std::sync::Arc::default(),
            max_waiting,
            // The statement in flight ends within the statement timeout;
            // a second on top for the ROLLBACK's round trip.
            cancel_cleanup: Duration::from_millis(statement_timeout_ms) + Duration::from_secs(1),
            canceller,
        }
    }

    /// How a cancelled request's connection is brought back: within how
    /// long, and by whom its statement in flight is cancelled
    /// ([`recover_in_background`]).
    pub fn cleanup(&self) -> Cleanup {
        Cleanup {
            within: self.cancel_cleanup,
            canceller: self.canceller.clone(),
        }
    }

    /// Runs `work` on a pooled connection. A connection whose state is
    /// unknown afterwards (a connection-level error, or `work` cancelled
    /// mid-query by a timeout) is closed instead of going back to the pool,
    /// so a database restart or a stalled socket never poisons later requests.
    pub async fn run<T, F>(&self, work: F) -> Result<T, sqlx::Error>
    where
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>,
    {
        let mut guard = RunGuard {
            connection: Some(self.acquire().await?),
            outcome: RunOutcome::InFlight,
            cleanup: self.cleanup(),
        };
        let result = work(guard.connection.as_mut().expect("present until drop")).await;
        guard.outcome = match &result {
            Err(error) if leaves_connection_unusable(error) => RunOutcome::Broken,
            _ => RunOutcome::Clean,
        };
        result
    }

    /// A connection within the acquire timeout; at once
    /// [`sqlx::Error::PoolTimedOut`] when the queue for one is full.
    pub async fn acquire(&self) -> Result<Connection, sqlx::Error> {
        use std::sync::atomic::Ordering;
        let queued = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.waiting);
        if queued >= self.max_waiting && self.inner.status().available == 0 {
            return Err(sqlx::Error::PoolTimedOut);
        }
        self.inner.get().await.map_err(|error| match error {
            PoolError::Backend(error) => error,
            PoolError::Timeout(_) => sqlx::Error::PoolTimedOut,
            PoolError::Closed => sqlx::Error::PoolClosed,
            other => sqlx::Error::Protocol(other.to_string()),
        })
    }

    /// Opens every connection the pool may hold and gives them back: all
    /// acquired at once, so each is a connection of its own. Fails, with
    /// the pool partly warm, when one cannot be opened.
    pub async fn warm(&self) -> Result<usize, sqlx::Error> {
        let size = self.state().max_size;
        let connections =
            futures_util::future::try_join_all((0..size).map(|_| self.acquire())).await?;
        Ok(connections.len())
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

/// One acquisition in the queue until dropped.
struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// How a [`Pool::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunOutcome {
    /// Cancelled with its statement perhaps in flight.
    InFlight,
    Clean,
    Broken,
}

/// Puts the connection of a [`Pool::run`] back, closes it when broken, or
/// recovers it in the background when the work was cancelled.
struct RunGuard {
    connection: Option<Connection>,
    outcome: RunOutcome,
    cleanup: Cleanup,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        match self.outcome {
            RunOutcome::Clean => {}
            RunOutcome::InFlight => {
                recover_in_background(connection, Recovery::Sync, self.cleanup.clone())
            }
            RunOutcome::Broken => drop(Object::take(connection)),
        }
    }
}

/// What brings a connection left by a cancelled request back to a known state.
#[derive(Debug, Clone, Copy)]
pub enum Recovery {
    /// Its transaction is open: roll it back.
    Rollback,
    /// No transaction: wait for the statement in flight to finish (a ping).
    Sync,
}

/// How a cancelled request's connection is brought back: within how long
/// ([`Pool::cleanup`]), and the canceller of its statement in flight.
#[derive(Debug, Clone)]
pub struct Cleanup {
    pub within: Duration,
    canceller: Canceller,
}

/// Brings `connection` back to a known state in a task of its own, then
/// returns it to the pool; closes it when that fails or takes longer than
/// `cleanup.within`. The connection keeps its pool slot meanwhile, so the
/// pool never opens more than its size, however many requests are
/// cancelled (clients that disconnect mid-request): closing it at once
/// instead left its server process running the statement in flight while
/// the pool opened another. On PostgreSQL the statement in flight is
/// cancelled first ([`Canceller`]): a statement waiting for a row lock (a
/// transfer behind a lease transfer, or behind another client's
/// transaction) would otherwise keep its place in the lock queue, ahead of
/// the client's own retry, until the statement timeout. Outside a runtime
/// (shutting down) it is closed.
pub fn recover_in_background(connection: Connection, recovery: Recovery, cleanup: Cleanup) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        drop(Object::take(connection));
        return;
    };
    runtime.spawn(async move {
        let mut connection = connection;
        let recovered = tokio::time::timeout(cleanup.within, async {
            // Only once the cancel has been delivered does the connection
            // run anything else, so that it cannot land on a later
            // statement (a cancel that finds the backend idle is dropped).
            let cancelled = match connection.backend_pid {
                Some(pid) => {
                    cleanup.canceller.cancel(pid).await;
                    true
                }
                None => false,
            };
            match recover(&mut connection, recovery).await {
                // The cancelled statement's own error (57014) comes back
                // first, on the next statement: once more, for its answer.
                Err(sqlx::Error::Database(error))
                    if cancelled && error.code().as_deref() == Some("57014") =>
                {
                    recover(&mut connection, recovery).await
                }
                other => other,
            }
        })
        .await;
        if !matches!(recovered, Ok(Ok(()))) {
            drop(Object::take(connection));
        }
    });
}

async fn recover(connection: &mut Connection, recovery: Recovery) -> Result<(), sqlx::Error> {
    match recovery {
        Recovery::Rollback => connection.execute("ROLLBACK").await.map(drop),
        Recovery::Sync => sqlx::Connection::ping(&mut ***connection).await,
    }
}

/// True for errors after which the connection cannot be trusted: anything
/// but an error the server reported for the statement itself, and the
/// server's own "connection is going away" codes.
pub fn leaves_connection_unusable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database) => database.code().is_some_and(|code| {
            // 25P03: the server ended the session (idle in transaction).
            code.starts_with("08") || code.starts_with("57P") || code == "25P03"
        }),
        sqlx::Error::RowNotFound | sqlx::Error::ColumnNotFound(_) | sqlx::Error::Decode(_) => false,
        _ => true,
    }
}

/// Cancels the statements in flight of cancelled requests' connections:
/// `pg_cancel_backend` over a connection of its own (one per pool, opened
/// at the first cancellation, so a pool holds at most its size plus one),
/// every cancellation waiting at that moment in one statement, so that a
/// storm of disconnecting clients costs a round trip per batch rather than
/// per client. PostgreSQL only: CockroachDB sessions have no backend
/// process id (their statements end at the statement timeout).
#[derive(Clone)]
pub struct Canceller {
    inner: std::sync::Arc<CancellerInner>,
}

impl std::fmt::Debug for Canceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Canceller").finish_non_exhaustive()
    }
}

struct CancellerInner {
    options: PgConnectOptions,
    waiting: std::sync::Mutex<Vec<(i32, tokio::sync::oneshot::Sender<()>)>>,
    connection: tokio::sync::Mutex<Option<PgConnection>>,
}

impl Canceller {
    fn new(options: PgConnectOptions) -> Self {
        Self {
            inner: std::sync::Arc::new(CancellerInner {
                options,
                waiting: std::sync::Mutex::default(),
                connection: tokio::sync::Mutex::default(),
            }),
        }
    }

    /// Asks the server to cancel what backend `pid` is running, and
    /// returns once it has been asked (or could not be: the caller's
    /// recovery then waits for the statement as it would without it).
    pub async fn cancel(&self, pid: i32) {
        let (done, asked) = tokio::sync::oneshot::channel();
        self.inner
            .waiting
            .lock()
            .expect("canceller queue lock")
            .push((pid, done));
        {
            // Whoever holds the connection asks for everyone waiting.
            let mut connection = self.inner.connection.lock().await;
            let batch =
                std::mem::take(&mut *self.inner.waiting.lock().expect("canceller queue lock"));
            if !batch.is_empty() {
                let pids: Vec<i32> = batch.iter().map(|(pid, _)| *pid).collect();
                if let Err(error) = self.ask(&mut connection, &pids).await {
                    tracing::warn!(%error, "could not cancel the statements of cancelled requests");
                    *connection = None;
                }
                for (_, done) in batch {
                    let _ = done.send(());
                }
            }
        }
        let _ = asked.await;
    }

    async fn ask(
        &self,
        connection: &mut Option<PgConnection>,
        pids: &[i32],
    ) -> Result<(), sqlx::Error> {
        if connection.is_none() {
            *connection = Some(self.inner.options.connect().await?);
        }
        let connection = connection.as_mut().expect("opened above");
        sqlx::query("SELECT pg_cancel_backend(pid) FROM unnest($1::int4[]) AS pid")
            .bind(pids)
            .execute(connection)
            .await
            .map(drop)
    }
}
