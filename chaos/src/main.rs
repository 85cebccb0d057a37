//! The `chaos` binary: `chaos up` runs the local multi-region deployment
//! until Ctrl-C; `chaos drill <file or name>` runs a drill and writes its
//! report, exiting non-zero when the hypothesis fails.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::Context;
use chaos::deployment::{Deployment, Options};
use chaos::drill::{self, DrillOptions};
use chaos::model::Verdict;
use chaos::spec::Drill;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "chaos",
    version,
    about = "Local multi-region deployment and region-kill drills"
)]
struct Cli {
    /// Directory of the `service` and `failover-controller` binaries
    /// (default: next to this executable).
    #[arg(long, env = "CHAOS_BIN_DIR", global = true)]
    bin_dir: Option<PathBuf>,
    /// Use this PostgreSQL server instead of starting a throwaway one.
    #[arg(
        long,
        env = "CHAOS_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bring the deployment up, print its endpoints, stay up until Ctrl-C.
    Up {
        /// Regions, comma separated.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "us-east-1,eu-west-1,ap-southeast-1"
        )]
        regions: Vec<String>,
        #[arg(long, default_value_t = 2)]
        instances_per_region: u8,
        #[arg(long, default_value_t = 500)]
        probe_interval_ms: u64,
        #[arg(long, default_value_t = 1)]
        dns_ttl_s: u32,
        /// Logs and generated configuration (default: a temporary directory).
        #[arg(long)]
        run_dir: Option<PathBuf>,
    },
    /// Run a drill: a YAML file, or the name of one under drills/.
    Drill {
        drill: String,
        /// Where report.json, report.md, report.html and history.jsonl go.
        #[arg(long, default_value = "reports/latest")]
        report_dir: PathBuf,
    },
    /// Validate a drill file and print it, without running anything.
    Check { drill: String },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let bin_dir = match cli.bin_dir {
        Some(dir) => dir,
        None => std::env::current_exe()?
            .parent()
            .context("executable has no directory")?
            .to_owned(),
    };
    match cli.command {
        Command::Check { drill } => {
            let path = Drill::resolve(&drill);
            match Drill::load(&path) {
                Ok(parsed) => {
                    println!("{}: ok ({} faults)", path.display(), parsed.method.len());
                    Ok(())
                }
                Err(error) => {
                    eprintln!("chaos: invalid drill: {error}");
                    std::process::exit(2);
                }
            }
        }
        Command::Drill { drill, report_dir } => {
            let path = Drill::resolve(&drill);
            if let Err(error) = Drill::load(&path) {
                eprintln!("chaos: invalid drill: {error}");
                std::process::exit(2);
            }
            let report = drill::run(DrillOptions {
                drill_file: path,
                report_dir: report_dir.clone(),
                bin_dir,
                database_url: cli.database_url,
            })
            .await?;
            print_summary(&report, &report_dir);
            if report.verdict != Verdict::Passed {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Up {
            regions,
            instances_per_region,
            probe_interval_ms,
            dns_ttl_s,
            run_dir,
        } => {
            let temporary = run_dir.is_none();
            let run_dir = run_dir.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("chaos-up-{}", std::process::id()))
            });
            let mut deployment = Deployment::start(Options {
                regions,
                instances_per_region,
                probe_interval_ms,
                dns_ttl_s,
                database_url: cli.database_url,
                run_dir: run_dir.clone(),
                bin_dir,
            })
            .await?;
            println!(
                "chaos: deployment up (logs in {})",
                run_dir.join("logs").display()
            );
            print!("{}", deployment.endpoints());
            println!("chaos: Ctrl-C stops everything");
            wait_for_stop().await;
            eprintln!("chaos: stopping");
            deployment.shutdown().await;
            if temporary {
                let _ = std::fs::remove_dir_all(&run_dir);
            }
            eprintln!("chaos: stopped; nothing left running");
            Ok(())
        }
    }
}

async fn wait_for_stop() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

fn print_summary(report: &chaos::model::DrillReport, dir: &std::path::Path) {
    let phases = &report.phases;
    let show = |value: Option<f64>| value.map_or("-".to_owned(), |v| format!("{v:.2} s"));
    println!();
    println!("{}: {:?}", report.title, report.verdict);
    for check in &report.checks {
        println!(
            "  [{}] {:<48} expected {:<16} observed {}",
            if check.passed { "pass" } else { "FAIL" },
            check.name,
            check.expected,
            check.observed
        );
    }
    println!(
        "  phases: decision {}  drain flag {}  DNS changed {}  recovered {}",
        show(phases.detect_s),
        show(phases.drain_s),
        show(phases.dns_s),
        show(phases.recover_s)
    );
    let totals = &report.totals;
    println!(
        "  requests {}  ok {}  failed {}  unknown {}  ok after retry {}  lost writes {}",
        totals.requests,
        totals.ok,
        totals.failed,
        totals.unknown,
        totals.retried_ok,
        totals.writes_lost
    );
    println!(
        "  error budget: {:.4}% of a 30-day 99.99% budget ({:.3} of {:.2} minutes) at {:.0} req/s",
        report.error_budget.consumed_fraction * 100.0,
        report.error_budget.consumed_minutes,
        report.error_budget.budget_minutes,
        report.error_budget.request_rate_per_s
    );
    println!(
        "  report: {}/report.html (also report.md, report.json, history.jsonl)",
        dir.display()
    );
}
