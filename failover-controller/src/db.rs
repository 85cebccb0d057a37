//! The database boundary: pool, migrations (and the start-up check that
//! they are applied), and the one retry helper for serialization failures
//! (SERIALIZABLE on PostgreSQL, as on CockroachDB).

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use rand::Rng;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

use crate::db_target::name_host_on_connect_error;

/// Errors at the database boundary.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("controller migrations {missing:?} not applied (run `failover-controller migrate`)")]
    MigrationsPending { missing: Vec<i64> },
    #[error("table region_state does not exist after 10 minutes: run `service migrate` (the service-migrate Job) first")]
    RegionStateMissing,
}

impl DbError {
    /// What the failure means for this replica, in a few words that are
    /// safe to show on `/readyz` (the error itself goes to the log).
    pub fn problem(&self) -> &'static str {
        match self {
            DbError::Sqlx(
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Protocol(_),
            ) => "database unreachable",
            DbError::Sqlx(sqlx::Error::Database(_)) => "database query failed",
            DbError::Sqlx(_) => "database error",
            DbError::Migrate(_) => "database migrations failed",
            DbError::MigrationsPending { .. } => {
                "database reachable, controller migrations not applied"
            }
            DbError::RegionStateMissing => "the service's migrations not applied",
        }
    }
}

/// An open transaction handed to a retried closure.
pub type Tx = Transaction<'static, Postgres>;

const MAX_ATTEMPTS: u32 = 6;

/// Opens a small pool; every connection runs SERIALIZABLE transactions.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, DbError> {
    let options: PgConnectOptions = url.parse()?;
    let options = options.application_name("failover-controller");
    let pool = pool_options(max_connections)
        .connect_with(options.clone())
        .await
        .map_err(|error| name_host_on_connect_error(error, &options))?;
    Ok(pool)
}

/// A pool that connects on first use, so that the controller starts (binds,
/// serves `/healthz`, reports not ready) while the database is down. Only a
/// malformed URL fails here. `acquire_timeout` bounds the wait for a
/// connection, including the driver's own retries while the server refuses
/// connections, so that the caller learns "unreachable" within its round.
pub fn connect_lazy(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<PgPool, DbError> {
    let options: PgConnectOptions = url.parse()?;
    Ok(pool_options(max_connections)
        .acquire_timeout(acquire_timeout)
        .connect_lazy_with(options.application_name("failover-controller")))
}

fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
}

fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator.set_locking(false);
    migrator
}

/// Applies the controller's migrations. They share `_sqlx_migrations` with
/// the service's, hence `ignore_missing`; locking is off because
/// CockroachDB has no advisory locks.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    migrator().run(pool).await?;
    Ok(())
}

/// A role name this code will quote into SQL: a lower-case identifier.
pub fn is_role_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// What the runtime role may do, and nothing more: rows of the
/// controller's tables, the drain flags in `region_state` (a table of the
/// service's schema), the audit log append-only (no UPDATE or DELETE, so
/// the database enforces that invariant too), the applied migrations for
/// the start-up check. Each statement is idempotent.
pub fn runtime_grants(role: &str) -> Vec<String> {
    let role = format!("\"{role}\"");
    vec![
        format!(
            "GRANT SELECT, INSERT, UPDATE ON TABLE failover_lease, failover_votes, failover_overrides, region_state TO {role}"
        ),
        format!("GRANT SELECT, INSERT ON TABLE failover_audit TO {role}"),
        format!("GRANT SELECT ON TABLE _sqlx_migrations TO {role}"),
    ]
}

/// How long `migrate` waits for `region_state`, which the service's
/// migrations create (its Job may run at the same time).
const REGION_STATE_WAIT: Duration = Duration::from_secs(600);

/// Grants `role` its privileges ([`runtime_grants`]) once the service's
/// `region_state` exists; on CockroachDB also revokes `admin`, which
/// CockroachDB Cloud gives every SQL user it creates.
pub async fn grant_runtime_role(pool: &PgPool, role: &str) -> Result<(), DbError> {
    let started = std::time::Instant::now();
    loop {
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'region_state'",
        )
        .fetch_one(pool)
        .await?;
        if tables > 0 {
            break;
        }
        if started.elapsed() > REGION_STATE_WAIT {
            return Err(DbError::RegionStateMissing);
        }
        tracing::warn!("waiting for region_state (the service-migrate Job creates it)");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    for statement in runtime_grants(role) {
        sqlx::query(&statement).execute(pool).await?;
    }
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(pool)
        .await?;
    if version.contains("CockroachDB") {
        // CockroachDB-only (a no-op when the role is not a member).
        sqlx::query(&format!("REVOKE admin FROM \"{role}\""))
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Checks that the database answers and that every migration of the
/// controller is applied (they run as their own job, before the replicas);
/// changes nothing.
pub async fn check_schema(pool: &PgPool) -> Result<(), DbError> {
    let applied: Vec<(i64,)> =
        match sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
        {
            Ok(rows) => rows,
            // undefined_table: no migration ever ran here.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => vec![],
            // The first query a replica sends: a refused certificate or
            // an unreachable host shows here, so the error names the host.
            Err(e) => return Err(name_host_on_connect_error(e, &pool.connect_options()).into()),
        };
    let applied: BTreeSet<i64> = applied.into_iter().map(|(v,)| v).collect();
    let missing: Vec<i64> = migrator()
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
        .map(|m| m.version)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(DbError::MigrationsPending { missing })
    }
}

/// Whether an error is a serialization failure or deadlock worth a re-run.
pub fn is_retryable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("40001") | Some("40P01")),
        _ => false,
    }
}

/// Runs `work` in a SERIALIZABLE transaction, re-running it from the start
/// (full rollback) on 40001/40P01 with jittered exponential backoff.
pub async fn with_retry<T, F, Fut>(pool: &PgPool, mut work: F) -> Result<T, DbError>
where
    F: FnMut(Tx) -> Fut,
    Fut: Future<Output = Result<(Tx, T), sqlx::Error>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = async {
            let mut tx = pool.begin().await?;
            sqlx::query("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
                .execute(&mut *tx)
                .await?;
            let (tx, value) = work(tx).await?;
            tx.commit().await?;
            Ok::<T, sqlx::Error>(value)
        }
        .await;
        match outcome {
            Ok(value) => return Ok(value),
            Err(error) if is_retryable(&error) && attempt < MAX_ATTEMPTS => {
                let base = 5u64 << attempt;
                let jitter = rand::thread_rng().gen_range(0..=base);
                tokio::time::sleep(Duration::from_millis(base + jitter)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}
