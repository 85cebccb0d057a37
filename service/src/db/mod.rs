//! The database layer: pool, dialect detection, migrations, the retry
//! helper and the ledger's queries.
//!
//! Only portable SQL lives outside [`cockroach`]: UUID keys from
//! `gen_random_uuid()`, `INSERT ... ON CONFLICT`, no sequences, no advisory
//! locks, no `SELECT *`, no `UPSERT`.

pub mod cockroach;
pub mod ledger;
pub mod pool;
pub mod reads;
pub mod retry;
pub mod target;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Executor, PgConnection};

pub use pool::Pool;

use crate::config::Settings;

/// Which server is behind the URL, decided by `SELECT version()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Cockroach,
}

impl Dialect {
    /// Reads the server's version string.
    pub async fn detect(connection: &mut PgConnection) -> Result<Self, sqlx::Error> {
        let version: String = sqlx::query_scalar("SELECT version()")
            .fetch_one(connection)
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

/// Builds a lazy pool of `size` connections: the service starts (unready)
/// while the database is unreachable, and every connection gets the
/// statement timeout. Connections it opens count in `opened`.
pub fn connect(
    settings: &Settings,
    size: usize,
    opened: prometheus::IntCounter,
) -> Result<Pool, sqlx::Error> {
    Ok(Pool::new(
        connect_options(settings)?,
        size,
        Duration::from_millis(settings.database_acquire_timeout_ms),
        settings.database_statement_timeout_ms,
        opened,
    ))
}

/// A pool of its own for `/readyz` and the region gate: they must say
/// whether the database answers, not whether the request pool is busy, or
/// a region under heavy load would fail its health checks and be drained.
pub fn connect_for_health(settings: &Settings) -> Result<Pool, sqlx::Error> {
    Ok(Pool::new(
        connect_options(settings)?,
        2,
        Duration::from_millis(settings.readiness_timeout_ms),
        settings.readiness_timeout_ms,
        // Not the request pools' counter: health checks are not requests.
        pool::opened_counter(),
    ))
}

fn connect_options(settings: &Settings) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(PgConnectOptions::from_str(settings.database_url.expose())?
        .application_name(&format!("ledger-service/{}", settings.region)))
}

/// What `migrate` did.
#[derive(Debug)]
pub struct MigrationReport {
    pub dialect: Dialect,
    /// CockroachDB multi-region statements executed (0 on PostgreSQL).
    pub cockroach_statements: usize,
}

/// [`migrate`] on a connection of its own, closed afterwards (the request
/// pools' connections belong to the serving threads): `service migrate`
/// and `migrate_on_start`.
pub async fn migrate_database(settings: &Settings) -> anyhow::Result<MigrationReport> {
    use anyhow::Context;
    let pool = connect(settings, 1, pool::opened_counter()).context("invalid database settings")?;
    // The pool's connection errors name the host (`target`).
    let mut connection = pool
        .acquire()
        .await
        .context("failed to connect to the database")?;
    let report = migrate(&mut connection, settings).await;
    drop(connection);
    pool.close().await;
    report
}

/// Applies the schema migrations; on CockroachDB also the multi-region DDL
/// generated from `database_regions`.
pub async fn migrate(
    connection: &mut PgConnection,
    settings: &Settings,
) -> anyhow::Result<MigrationReport> {
    use anyhow::Context;
    let dialect = Dialect::detect(connection)
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
        .run(&mut *connection)
        .await
        .context("schema migration failed")?;

    let mut cockroach_statements = 0;
    if dialect == Dialect::Cockroach && !settings.database_regions.is_empty() {
        let layout = settings.cockroach_layout()?;
        let database: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&mut *connection)
            .await?;
        for statement in cockroach::multi_region_ddl(&layout.for_database(&database)) {
            connection
                .execute(statement.as_str())
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
