//! The `failover-controller` binary: parse the command line, load and
//! validate the settings (before any port is bound), init telemetry, run.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use failover_controller::config::{self, FlagOverrides, DEFAULT_TOML};
use failover_controller::overrides::{NewOverride, OverrideKind};
use failover_controller::{app::Application, db};
use toml::Value;

const SETTINGS_HELP: &str = concat!(
    "Every setting, with its default (override in the --config file, or with\n",
    "FAILOVER_<KEY>, nested keys joined by a double underscore, e.g.\n",
    "FAILOVER_PROBE__INTERVAL_MS=250):\n\n"
);

#[derive(Parser, Debug)]
#[command(
    name = "failover-controller",
    version,
    about = "Multi-vantage failover controller: probes regions, decides by quorum, steers DNS"
)]
#[command(after_long_help = format!("{SETTINGS_HELP}{DEFAULT_TOML}"))]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Debug)]
struct Global {
    /// TOML configuration file (layered over the embedded defaults).
    #[arg(long, env = "FAILOVER_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// This replica's region (its vantage point).
    #[arg(long, env = "FAILOVER_REGION", global = true)]
    region: Option<String>,
    /// Admin HTTP listen address (default 0.0.0.0:9190).
    #[arg(long, env = "FAILOVER_HTTP_LISTEN", global = true)]
    http_listen: Option<String>,
    /// Authoritative DNS listen address, UDP and TCP (default 0.0.0.0:5353).
    #[arg(long, env = "FAILOVER_DNS_LISTEN", global = true)]
    dns_listen: Option<String>,
    /// Database URL (secret).
    #[arg(
        long,
        env = "FAILOVER_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    database_url: Option<String>,
    /// Decide and report, change nothing.
    #[arg(long, global = true)]
    dry_run: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controller (the default).
    Run,
    /// Apply the controller's database migrations, then exit.
    Migrate,
    /// Load and validate the configuration, print it (secrets redacted), exit.
    CheckConfig,
    /// Drain a region now (manual override through the admin API).
    Drain(RegionOverride),
    /// Put a region back now, skipping the hold-down.
    Undrain(RegionOverride),
    /// Freeze all automated actions.
    Freeze(OverrideArgs),
    /// Lift a freeze (manual or automatic).
    Unfreeze(OverrideArgs),
}

#[derive(Args, Debug)]
struct RegionOverride {
    /// The region to act on.
    #[arg(long = "target")]
    target: String,
    #[command(flatten)]
    common: OverrideArgs,
}

#[derive(Args, Debug)]
struct OverrideArgs {
    /// Why (recorded in the audit log).
    #[arg(long)]
    reason: String,
    /// Who (recorded in the audit log).
    #[arg(long, env = "USER", default_value = "operator")]
    actor: String,
    /// How long the override stays in force, in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl_seconds: u64,
    /// Base URL of a controller's admin API.
    #[arg(
        long,
        env = "FAILOVER_ADMIN_URL",
        default_value = "http://127.0.0.1:9190"
    )]
    admin_url: String,
    /// Admin bearer token (secret).
    #[arg(long, env = "FAILOVER_ADMIN_TOKEN", hide_env_values = true)]
    token: String,
}

fn flag_overrides(global: &Global) -> FlagOverrides {
    let mut flags = Vec::new();
    let mut put = |key: &str, value: &Option<String>| {
        if let Some(v) = value {
            flags.push((key.to_string(), Value::String(v.clone())));
        }
    };
    put("region", &global.region);
    put("http_listen", &global.http_listen);
    put("dns_listen", &global.dns_listen);
    put("database_url", &global.database_url);
    if global.dry_run {
        flags.push(("dry_run".to_string(), Value::Boolean(true)));
    }
    FlagOverrides(flags)
}

fn init_telemetry() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sqlx=warn,aws=warn,hickory_server=warn")
    });
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .init();
}

async fn send_override(
    kind: OverrideKind,
    region: Option<String>,
    args: OverrideArgs,
) -> anyhow::Result<()> {
    let body = NewOverride {
        kind,
        region,
        reason: args.reason,
        actor: args.actor,
        ttl_seconds: args.ttl_seconds,
    };
    let url = format!(
        "{}/v1/admin/overrides",
        args.admin_url.trim_end_matches('/')
    );
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&args.token)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("cannot reach the admin API at {url}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("admin API answered {status}: {text}");
    }
    println!("{text}");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Run);
    match command {
        Command::Drain(a) => {
            return send_override(OverrideKind::Drain, Some(a.target), a.common).await
        }
        Command::Undrain(a) => {
            return send_override(OverrideKind::Undrain, Some(a.target), a.common).await
        }
        Command::Freeze(a) => return send_override(OverrideKind::Freeze, None, a).await,
        Command::Unfreeze(a) => return send_override(OverrideKind::Unfreeze, None, a).await,
        _ => {}
    }
    let settings = match config::load(
        cli.global.config.as_deref(),
        std::env::vars(),
        &flag_overrides(&cli.global),
    ) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("failover-controller: {error}");
            std::process::exit(2);
        }
    };
    match command {
        Command::CheckConfig => {
            println!("{settings:#?}");
            Ok(())
        }
        Command::Migrate => {
            let pool = db::connect(settings.database_url.expose(), 2)
                .await
                .context("cannot connect to the database")?;
            db::migrate(&pool)
                .await
                .context("cannot apply migrations")?;
            println!("migrations applied");
            let role = &settings.database_runtime_role;
            if !role.is_empty() {
                db::grant_runtime_role(&pool, role)
                    .await
                    .context("cannot grant database_runtime_role its privileges")?;
                println!("runtime role {role} granted its privileges");
            }
            Ok(())
        }
        _ => {
            init_telemetry();
            let app = Application::build(settings).await?;
            tracing::info!(http = %app.http_addr(), dns = ?app.dns_addr(), "failover controller started");
            app.run_until_stopped(shutdown_signal()).await
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
