//! The `service` binary: parse configuration, initialise telemetry, then
//! serve, migrate or print the CockroachDB DDL.
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::Parser;
use service::config::{Cli, Command, Settings};
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
    runtime.block_on(run(cli.command.unwrap_or(Command::Serve), settings))
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
        Command::PrintCockroachDdl => {
            let ddl = service::db::cockroach::multi_region_ddl(&settings.cockroach_layout()?);
            for statement in ddl {
                println!("{statement};");
            }
        }
    }
    Ok(())
}
