//! The one retry helper: every read-write transaction of the service runs
//! through [`Transactor::serializable`].
//!
//! A transaction is re-run from `BEGIN` (full `ROLLBACK`, never CockroachDB's
//! `SAVEPOINT cockroach_restart`, which PostgreSQL lacks) when it fails with a
//! serialization failure (40001), a deadlock (40P01), a lost connection
//! before `COMMIT`, or a unique violation on an idempotency key (a concurrent
//! request with the same key won the race; the re-run replays its answer).
//! Re-runs are bounded and spaced by exponential backoff with full jitter.
//!
//! A `COMMIT` whose outcome is unknown (40003, or the connection lost while
//! committing) is never retried here: it is reported as
//! [`TxError::CommitOutcomeUnknown`] so that the caller resolves it through
//! the idempotency key.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use rand::Rng;
use sqlx::{Executor, PgConnection};

use super::pool::{Connection, Pool};
use crate::metrics::Metrics;

/// A boxed future borrowing the connection for `'c`.
pub type BoxFuture<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

/// How often and how patiently to re-run.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Re-runs after the first attempt.
    pub max_retries: u32,
    /// Backoff ceiling of the first re-run; doubles on each one.
    pub base_delay: Duration,
    /// Largest backoff ceiling.
    pub max_delay: Duration,
}

impl RetryPolicy {
    pub fn new(max_retries: u32) -> Self {
        Self {
            max_retries,
            base_delay: Duration::from_millis(4),
            max_delay: Duration::from_millis(500),
        }
    }

    /// Full jitter: uniform in `[0, min(max, base * 2^attempt)]`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(self.max_delay);
        let micros = rand::thread_rng().gen_range(0..=ceiling.as_micros() as u64);
        Duration::from_micros(micros)
    }
}

/// Why a transaction gave up.
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    #[error("no database connection within the acquire timeout")]
    PoolTimeout,
    #[error("transaction still conflicting after {attempts} attempts: {last}")]
    RetriesExhausted { attempts: u32, last: sqlx::Error },
    #[error("commit outcome unknown: {0}")]
    CommitOutcomeUnknown(sqlx::Error),
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

/// Runs serializable transactions with the retry policy, counting re-runs.
#[derive(Debug, Clone)]
pub struct Transactor {
    pub pool: Pool,
    pub policy: RetryPolicy,
    pub metrics: Metrics,
}

enum AttemptError {
    Retryable {
        error: sqlx::Error,
        sqlstate: &'static str,
    },
    CommitUnknown(sqlx::Error),
    Fatal(sqlx::Error),
}

impl Transactor {
    /// Runs `body` inside `BEGIN ISOLATION LEVEL SERIALIZABLE` ... `COMMIT`.
    ///
    /// `body` returns `Ok(Ok(value))` to commit, `Ok(Err(rejection))` to roll
    /// back and answer with a domain rejection (no retry), and `Err(sql)` for
    /// a database error, which is classified for retry.
    pub async fn serializable<T, R, F>(&self, mut body: F) -> Result<Result<T, R>, TxError>
    where
        F: for<'c> FnMut(&'c mut PgConnection) -> BoxFuture<'c, Result<Result<T, R>, sqlx::Error>>,
    {
        let mut attempt = 0;
        loop {
            let connection = self.pool.acquire().await.map_err(|error| match error {
                sqlx::Error::PoolTimedOut => TxError::PoolTimeout,
                other => TxError::Database(other),
            })?;
            let mut guard = TransactionGuard {
                connection: Some(connection),
                state: GuardState::Clean,
                cleanup: self.pool.cleanup(),
            };
            match attempt_once(&mut guard, &mut body).await {
                Ok(outcome) => return Ok(outcome),
                Err(AttemptError::Retryable { error, sqlstate }) => {
                    if attempt >= self.policy.max_retries {
                        return Err(TxError::RetriesExhausted {
                            attempts: attempt + 1,
                            last: error,
                        });
                    }
                    self.metrics
                        .db_transaction_retries
                        .with_label_values(&[sqlstate])
                        .inc();
                    tracing::debug!(attempt, sqlstate, %error, "re-running transaction");
                    drop(guard);
                    tokio::time::sleep(self.policy.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(AttemptError::CommitUnknown(error)) => {
                    return Err(TxError::CommitOutcomeUnknown(error));
                }
                Err(AttemptError::Fatal(error)) => return Err(TxError::Database(error)),
            }
        }
    }
}

/// A connection inside `BEGIN` ... `COMMIT`/`ROLLBACK`.
///
/// Dropped in the middle of its transaction (the request was cancelled:
/// its client went away, or its deadline passed), the connection is rolled
/// back in the background and only then returned to the pool, keeping its
/// pool slot all the while: a connection simply closed here would leave
/// its server process running the statement in flight while the pool
/// opened a new one for the slot, so a storm of disconnecting clients
/// pushed the server past `max_connections`. Dropped after an error that
/// left its state unknown, it is closed.
struct TransactionGuard {
    connection: Option<Connection>,
    state: GuardState,
    /// How the background rollback of a cancelled transaction is done.
    cleanup: super::pool::Cleanup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GuardState {
    /// No transaction open: back to the pool as it is.
    Clean,
    /// A transaction is open (or a statement of it in flight).
    InTransaction,
    /// An error left the connection's state unknown: close it.
    Broken,
}

impl TransactionGuard {
    fn connection(&mut self) -> &mut PgConnection {
        self.connection.as_mut().expect("present until drop")
    }
}

impl Drop for TransactionGuard {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        match self.state {
            GuardState::Clean => {}
            GuardState::InTransaction => super::pool::recover_in_background(
                connection,
                super::pool::Recovery::Rollback,
                self.cleanup.clone(),
            ),
            GuardState::Broken => drop(deadpool::managed::Object::take(connection)),
        }
    }
}

async fn attempt_once<T, R, F>(
    guard: &mut TransactionGuard,
    body: &mut F,
) -> Result<Result<T, R>, AttemptError>
where
    F: for<'c> FnMut(&'c mut PgConnection) -> BoxFuture<'c, Result<Result<T, R>, sqlx::Error>>,
{
    guard.state = GuardState::InTransaction;
    guard
        .connection()
        .execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
        .await
        .map_err(|error| {
            guard.state = GuardState::Broken;
            classify(error)
        })?;
    match body(guard.connection()).await {
        Ok(Ok(value)) => match guard.connection().execute("COMMIT").await {
            Ok(_) => {
                guard.state = GuardState::Clean;
                Ok(Ok(value))
            }
            Err(error) => {
                let answered = matches!(error, sqlx::Error::Database(_));
                let classified = classify_commit(error);
                // The server answered the COMMIT with an error (a
                // serialization failure at commit, routine under
                // SERIALIZABLE on PostgreSQL): a COMMIT ends the
                // transaction whether it succeeds or fails, on PostgreSQL
                // and CockroachDB alike, so the connection is idle and
                // goes back to the pool (replacing it would cost the server
                // a new backend). No ROLLBACK: outside a transaction it
                // made the server log "there is no transaction in
                // progress" on every such retry.
                guard.state = if answered && !matches!(classified, AttemptError::CommitUnknown(_)) {
                    GuardState::Clean
                } else {
                    GuardState::Broken
                };
                Err(classified)
            }
        },
        Ok(Err(rejection)) => {
            rollback(guard).await;
            Ok(Err(rejection))
        }
        Err(error) => {
            rollback(guard).await;
            Err(classify(error))
        }
    }
}

async fn rollback(guard: &mut TransactionGuard) {
    // A failed ROLLBACK leaves the connection's state unknown: it is closed.
    guard.state = match guard.connection().execute("ROLLBACK").await {
        Ok(_) => GuardState::Clean,
        Err(_) => GuardState::Broken,
    };
}

/// Classifies an error raised before or instead of `COMMIT`.
fn classify(error: sqlx::Error) -> AttemptError {
    match sqlstate_of(&error) {
        Some("40001") => AttemptError::Retryable {
            error,
            sqlstate: "40001",
        },
        Some("40P01") => AttemptError::Retryable {
            error,
            sqlstate: "40P01",
        },
        Some("23505") if is_idempotency_constraint(&error) => AttemptError::Retryable {
            error,
            sqlstate: "23505",
        },
        // The transaction never committed: re-running on a fresh connection
        // (perhaps to another node) is safe.
        _ if is_connection_error(&error) => AttemptError::Retryable {
            error,
            sqlstate: "connection",
        },
        _ => AttemptError::Fatal(error),
    }
}

/// Classifies an error raised by `COMMIT` itself. After an unknown outcome
/// the connection stays unclean and is closed rather than reused.
fn classify_commit(error: sqlx::Error) -> AttemptError {
    match sqlstate_of(&error) {
        // CockroachDB reports retryable aborts at commit time; nothing committed.
        Some("40001") => AttemptError::Retryable {
            error,
            sqlstate: "40001",
        },
        Some("40003") => AttemptError::CommitUnknown(error),
        _ if is_connection_error(&error) => AttemptError::CommitUnknown(error),
        _ => AttemptError::Fatal(error),
    }
}

fn sqlstate_of(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(db) => db.code().map(|code| match code {
            std::borrow::Cow::Borrowed(code) => code,
            // sqlx returns borrowed codes for Postgres; keep the match total.
            std::borrow::Cow::Owned(_) => "unknown",
        }),
        _ => None,
    }
}

fn is_idempotency_constraint(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => matches!(
            db.constraint(),
            Some("idempotency_keys_pkey")
                | Some("transfers_principal_idempotency_key")
                // Until `migrate` has dropped it (an older schema).
                | Some("transfers_idempotency_key_key")
        ),
        _ => false,
    }
}

fn is_connection_error(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    ) || matches!(sqlstate_of(error), Some(code) if code.starts_with("08") || code == "57P01" || code == SESSION_ENDED_IDLE_IN_TRANSACTION)
}

/// FATAL `idle_in_transaction_session_timeout`: the server ended the
/// session and rolled its transaction back, as if the connection had been
/// lost. Before `COMMIT` nothing committed, so it is re-run on a fresh
/// connection (a transaction held up on a slow path, or by a thread the
/// machine could not schedule, is not the client's error).
const SESSION_ENDED_IDLE_IN_TRANSACTION: &str = "25P03";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_grows() {
        let policy = RetryPolicy::new(8);
        for attempt in 0..40 {
            assert!(policy.backoff(attempt) <= policy.max_delay);
        }
        assert!(policy.backoff(0) <= policy.base_delay);
    }
}
