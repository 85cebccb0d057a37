//! The `service` binary: parse configuration, initialise telemetry, then
//! serve, migrate or print the CockroachDB DDL.
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::Parser;
use service::config::{ApiKeyCommand, Cli, Command, Settings};
use service::startup::Application;

/// mimalloc: malloc and free were about a tenth of the service's CPU per
/// request with the system allocator (scripts/bench.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Validation happens before any port is bound; a bad setting exits 2
    // with a message that names the field.
    let settings = match cli.settings() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("service: invalid configuration: {error}");
            std::process::exit(2);
        }
    };
    service::telemetry::init(&settings.log_filter);
    // This runtime accepts connections, serves the admin port, refreshes the
    // region gate and runs the shutdown sequence; requests are served by
    // the threads that `serve` starts (service::server).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(run(cli.command.clone().unwrap_or(Command::Serve), settings))
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let application = Application::build(settings)
                .await
                .context("failed to start the service")?;
            application
                .run_until_stopped(service::startup::shutdown_signal())
                .await
                .context("service stopped with an error")?;
        }
        Command::Migrate => {
            let report = service::db::migrate_database(&settings)
                .await
                .context("migration failed")?;
            tracing::info!(dialect = ?report.dialect, statements = report.cockroach_statements, "migrations applied");
        }
        Command::WaitForSchema => {
            service::db::wait_for_schema(&settings, service::db::WAIT_FOR_SCHEMA_LIMIT)
                .await
                .context("the schema is not ready")?;
        }
        Command::ApiKey(command) => api_key(command, &settings).await?,
        Command::PrintCockroachDdl => {
            let ddl = service::db::cockroach::multi_region_ddl(&settings.cockroach_layout()?);
            for statement in ddl {
                println!("{statement};");
            }
        }
    }
    Ok(())
}

/// `service api-key create|revoke|list`, on a connection of its own.
async fn api_key(command: ApiKeyCommand, settings: &Settings) -> anyhow::Result<()> {
    use service::auth::{api_keys, Scopes};
    let pool = service::db::connect(settings, 1, service::db::pool::opened_counter())
        .context("invalid database settings")?;
    let mut connection = pool
        .acquire()
        .await
        .context("failed to connect to the database")?;
    match command {
        ApiKeyCommand::Create {
            principal,
            scopes,
            description,
        } => {
            let scopes = Scopes::parse(&scopes.replace(',', " "));
            let key = api_keys::create(&mut connection, &principal, &scopes, &description)
                .await
                .context("cannot create the API key")?;
            // The only time the secret exists outside the caller: stdout
            // alone, so that scripts can capture it.
            println!("{}", key.token.expose());
            eprintln!(
                "created API key lk_{} for principal {principal:?} (scopes: {scopes}); \
                 every instance accepts it within auth_api_key_refresh_ms",
                key.prefix
            );
        }
        ApiKeyCommand::Revoke { prefix } => {
            if !api_keys::revoke(&mut connection, &prefix)
                .await
                .context("cannot revoke the API key")?
            {
                anyhow::bail!("no unrevoked API key has the prefix {prefix:?}");
            }
            eprintln!("revoked; every instance refuses it within auth_api_key_refresh_ms");
        }
        ApiKeyCommand::List => {
            for line in api_keys::list(&mut connection)
                .await
                .context("cannot list the API keys")?
            {
                println!("{line}");
            }
        }
    }
    drop(connection);
    pool.close().await;
    Ok(())
}
