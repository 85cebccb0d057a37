//! The database layer: pool, dialect detection, migrations, the retry
//! helper and the ledger's queries.
//!
//! Only portable SQL lives outside [`cockroach`]: UUID keys from
//! `gen_random_uuid()`, `INSERT ... ON CONFLICT`, no sequences, no advisory
//! locks, no `SELECT *`, no `UPSERT`.

pub mod bulkhead;
pub mod cockroach;
pub mod grants;
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
    Ok(Pool::with_queue(
        connect_options(settings)?,
        size,
        size.saturating_mul(settings.database_queue_per_connection),
        Duration::from_millis(settings.database_acquire_timeout_ms),
        settings.database_statement_timeout_ms,
        settings.database_idle_in_transaction_timeout_ms,
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
        settings.database_idle_in_transaction_timeout_ms,
        // Not the request pools' counter: health checks are not requests.
        pool::opened_counter(),
    ))
}

fn connect_options(settings: &Settings) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(PgConnectOptions::from_str(settings.database_url.expose())?
        .application_name(&format!("ledger-service/{}", settings.region)))
}

/// PostgreSQL's form of [`cockroach::DROP_GLOBAL_TRANSFER_KEY`].
const DROP_GLOBAL_TRANSFER_KEY_POSTGRES: &str =
    "ALTER TABLE transfers DROP CONSTRAINT IF EXISTS transfers_idempotency_key_key";

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
/// for `database_regions` that the database still lacks (none on a
/// database that has it all, so every release can run it).
pub async fn migrate(
    connection: &mut PgConnection,
    settings: &Settings,
) -> anyhow::Result<MigrationReport> {
    use anyhow::Context;
    let dialect = Dialect::detect(connection)
        .await
        .context("cannot read the server version")?;
    // Before any change: on CockroachDB the regions are required, and a
    // configuration without them fails here rather than leaving a
    // single-region schema behind.
    let layout = match dialect {
        Dialect::Cockroach => Some(cockroach_layout_required(settings)?),
        Dialect::Postgres => None,
    };
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
    // Idempotency keys are scoped to the principal (migration
    // 20261206100001); the old global uniqueness of a transfer's key would
    // make two principals' equal keys collide. The statement differs per
    // dialect, so it cannot live in the portable migration; it is
    // idempotent and runs on every `migrate`.
    let drop_global_key = match dialect {
        Dialect::Postgres => DROP_GLOBAL_TRANSFER_KEY_POSTGRES,
        Dialect::Cockroach => cockroach::DROP_GLOBAL_TRANSFER_KEY,
    };
    connection
        .execute(drop_global_key)
        .await
        .with_context(|| format!("cannot drop the global transfer key: {drop_global_key}"))?;

    if !settings.database_runtime_role.is_empty() {
        let role = &settings.database_runtime_role;
        for statement in grants::runtime_grants(role) {
            connection
                .execute(statement.as_str())
                .await
                .with_context(|| format!("database_runtime_role: {statement}"))?;
        }
        if dialect == Dialect::Cockroach {
            let statement = cockroach::revoke_admin(role);
            connection
                .execute(statement.as_str())
                .await
                .with_context(|| format!("database_runtime_role: {statement}"))?;
        }
        tracing::info!(%role, "runtime role granted its privileges");
    }

    let mut cockroach_statements = 0;
    if let Some(layout) = layout {
        let database: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&mut *connection)
            .await?;
        let state = cockroach::read_state(connection, &database)
            .await
            .context("cannot read the database's multi-region state")?;
        let statements = cockroach::plan(&layout.for_database(&database), &state)
            .map_err(|problem| anyhow::anyhow!("database_regions: {problem}"))?;
        for statement in statements {
            tracing::info!(%statement, "multi-region statement");
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

/// How long `service wait-for-schema` waits: the migrate Job's own
/// deadline (`activeDeadlineSeconds: 900`).
pub const WAIT_FOR_SCHEMA_LIMIT: Duration = Duration::from_secs(900);

/// Versions of the service's migrations that the database has not applied
/// (all of them when no migration ever ran).
pub async fn pending_migrations(connection: &mut PgConnection) -> Result<Vec<i64>, sqlx::Error> {
    let applied: Vec<i64> =
        match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&mut *connection)
            .await
        {
            Ok(rows) => rows,
            // undefined_table: no migration ever ran here.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => vec![],
            Err(e) => return Err(e),
        };
    Ok(sqlx::migrate!("./migrations")
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
        .map(|m| m.version)
        .collect())
}

/// Waits until the database answers and has every migration of this
/// build, retrying every 0.25-5 s (each state logged); changes nothing.
/// Fails after `limit`, naming what is missing.
pub async fn wait_for_schema(settings: &Settings, limit: Duration) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let pool = connect(settings, 1, pool::opened_counter())?;
    let mut delay = Duration::from_millis(250);
    loop {
        let state = match pool.acquire().await {
            Ok(mut connection) => match pending_migrations(&mut connection).await {
                Ok(pending) if pending.is_empty() => {
                    tracing::info!("every service migration is applied");
                    pool.close().await;
                    return Ok(());
                }
                Ok(pending) => format!(
                    "service migrations {pending:?} not applied (the service-migrate Job applies them)"
                ),
                Err(error) => format!("cannot read the applied migrations: {error}"),
            },
            Err(error) => format!("database unreachable: {error}"),
        };
        if started.elapsed() >= limit {
            pool.close().await;
            anyhow::bail!("{state}, still after {} s", limit.as_secs());
        }
        tracing::warn!(%state, retry_in_ms = delay.as_millis() as u64, "waiting for the schema");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// The multi-region layout, which CockroachDB requires: an empty
/// `database_regions` is an error naming the setting.
pub fn cockroach_layout_required(
    settings: &Settings,
) -> anyhow::Result<cockroach::CockroachLayout> {
    if settings.database_regions.is_empty() {
        anyhow::bail!(
            "database_regions (SERVICE_DATABASE_REGIONS) is not set, and the server is \
             CockroachDB: its multi-region schema needs the database regions, primary first, \
             each as service-region=database-region (e.g. \
             us-east-1=aws-us-east-1,eu-west-1=aws-eu-west-1,ap-southeast-1=aws-ap-southeast-1)"
        );
    }
    Ok(settings.cockroach_layout()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, DEFAULTS_TOML};

    fn settings(database_regions: Option<Vec<String>>) -> Settings {
        let overrides = Overrides {
            region: Some("us-east-1".into()),
            database_url: Some("postgres://u@localhost/db".into()),
            database_regions,
            ..Overrides::default()
        };
        Settings::from_layers(DEFAULTS_TOML.parse().unwrap(), &overrides).unwrap()
    }

    #[test]
    fn cockroach_without_database_regions_is_an_error_naming_the_setting() {
        let error = cockroach_layout_required(&settings(None))
            .unwrap_err()
            .to_string();
        assert!(error.contains("database_regions"), "{error}");
        assert!(error.contains("SERVICE_DATABASE_REGIONS"), "{error}");
        assert!(error.contains("us-east-1=aws-us-east-1"), "{error}");
    }

    #[test]
    fn cockroach_with_mapped_regions_has_a_layout() {
        let regions = ["us-east-1", "eu-west-1", "ap-southeast-1"]
            .map(|r| format!("{r}=aws-{r}"))
            .to_vec();
        let layout = cockroach_layout_required(&settings(Some(regions))).unwrap();
        assert_eq!(layout.primary().database, "aws-us-east-1");
    }
}
