//! The database boundary: pool, migrations, and the one retry helper for
//! serialization failures (SERIALIZABLE on PostgreSQL, as on CockroachDB).

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

/// Errors at the database boundary.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// An open transaction handed to a retried closure.
pub type Tx = Transaction<'static, Postgres>;

const MAX_ATTEMPTS: u32 = 6;

/// Opens a small pool; every connection runs SERIALIZABLE transactions.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, DbError> {
    let options: PgConnectOptions = url.parse()?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options.application_name("failover-controller"))
        .await?;
    Ok(pool)
}

/// Applies the controller's migrations. They share `_sqlx_migrations` with
/// the service's, hence `ignore_missing`; locking is off because
/// CockroachDB has no advisory locks.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator.set_locking(false);
    migrator.run(pool).await?;
    Ok(())
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
