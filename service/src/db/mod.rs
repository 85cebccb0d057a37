//! The database layer: pool, dialect detection, migrations, the retry
//! helper and the ledger's queries.
//!
//! Only portable SQL lives outside [`cockroach`]: UUID keys from
//! `gen_random_uuid()`, `INSERT ... ON CONFLICT`, no sequences, no advisory
//! locks, no `SELECT *`, no `UPSERT`.

pub mod cockroach;
pub mod ledger;
pub mod retry;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};

use crate::config::Settings;

/// Which server is behind the URL, decided by `SELECT version()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Cockroach,
}

impl Dialect {
    /// Reads the server's version string.
    pub async fn detect(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let version: String = sqlx::query_scalar("SELECT version()")
            .fetch_one(pool)
            .await?;
        Ok(Self::from_version(&version))
    }

    pub fn from_version(version: &str) -> Self {
        if version.contains("CockroachDB") {
            Self::Cockroach
        } else {
            Self::Postgres
        }
    }
}

/// Builds a lazy pool: the service starts (unready) even while the database
/// is unreachable, and every connection gets the statement timeout.
pub async fn connect(settings: &Settings) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(settings.database_url.expose())?
        .application_name(&format!("ledger-service/{}", settings.region));
    let statement_timeout = format!(
        "SET statement_timeout = {}",
        settings.database_statement_timeout_ms
    );
    let pool = PgPoolOptions::new()
        .max_connections(settings.database_pool_size)
        .min_connections(0)
        // A broken connection surfaces as an error on first use and the retry
        // helper re-runs on a fresh one; pinging before every acquire would
        // cost a round trip per request.
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_millis(settings.database_acquire_timeout_ms))
        .idle_timeout(Some(Duration::from_secs(60)))
        .after_connect(move |conn, _meta| {
            let statement_timeout = statement_timeout.clone();
            Box::pin(async move {
                conn.execute(statement_timeout.as_str()).await?;
                Ok(())
            })
        })
        .connect_lazy_with(options);
    Ok(pool)
}

/// What `migrate` did.
#[derive(Debug)]
pub struct MigrationReport {
    pub dialect: Dialect,
    /// CockroachDB multi-region statements executed (0 on PostgreSQL).
    pub cockroach_statements: usize,
}

/// Applies the schema migrations; on CockroachDB also the multi-region DDL
/// generated from `database_regions`.
pub async fn migrate(pool: &PgPool, settings: &Settings) -> anyhow::Result<MigrationReport> {
    use anyhow::Context;
    let dialect = Dialect::detect(pool)
        .await
        .context("cannot read the server version")?;
    let mut migrator = sqlx::migrate!("./migrations");
    // The failover controller keeps its own migrations in the same
    // `_sqlx_migrations` table.
    migrator.set_ignore_missing(true);
    if dialect == Dialect::Cockroach {
        // CockroachDB has no advisory locks.
        migrator.set_locking(false);
    }
    migrator
        .run(pool)
        .await
        .context("schema migration failed")?;

    let mut cockroach_statements = 0;
    if dialect == Dialect::Cockroach && !settings.database_regions.is_empty() {
        let layout = settings.cockroach_layout()?;
        let database: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(pool)
            .await?;
        for statement in cockroach::multi_region_ddl(&layout.for_database(&database)) {
            pool.execute(statement.as_str())
                .await
                .with_context(|| format!("multi-region statement failed: {statement}"))?;
            cockroach_statements += 1;
        }
    }
    Ok(MigrationReport {
        dialect,
        cockroach_statements,
    })
}
