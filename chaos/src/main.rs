//! The `chaos` binary: `chaos up` runs the local multi-region deployment
//! and its control API until Ctrl-C; `chaos drill <file or name>` runs a
//! drill (on its own deployment, or `--attach`ed to a running `chaos up`)
//! and writes its report, exiting non-zero when the hypothesis fails (4
//! when stopped by Ctrl-C, SIGTERM or its stop file and rolled back; with
//! `--target`, 6 when the blast-radius guard refuses it and 3 when
//! preflight fails, before anything is applied; `--plan` prints what it
//! would do and changes nothing);
//! `chaos rollback --journal` undoes what a dead drill left applied.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chaos::control::{ControlServer, StateFile, DEFAULT_CONTROL_ADDRESS, STATE_FILE};
use chaos::controller_settings::{ControllerOverrides, ControllerSettings};
use chaos::deployment::{Deployment, Options};
use chaos::drill::plan::PlanTarget;
use chaos::drill::{self, DeploymentSource, DrillOptions};
use chaos::driver::ControlClient;
use chaos::model::Verdict;
use chaos::spec::{Drill, Wan};
use chaos::target::guard::{self, BLAST_RADIUS_EXIT_CODE};
use chaos::target::preflight::{Preflight, PREFLIGHT_FAILED_EXIT_CODE};
use chaos::target::{local_target, write_target, Target};
use clap::{Parser, Subcommand};
use futures_util::FutureExt;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Mutex as AsyncMutex;

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
        /// Probe interval of the controllers (default: production's, from
        /// k8s/base/failover-controller/config.toml).
        #[arg(long)]
        probe_interval_ms: Option<u64>,
        /// TTL of the controllers' DNS answers (default: production's).
        #[arg(long)]
        dns_ttl_s: Option<u32>,
        /// Every region on the loopback instead of across the default WAN
        /// (70 to 220 ms between regions).
        #[arg(long)]
        no_wan: bool,
        /// Logs, generated configuration and `deployment.json` (default: a
        /// temporary directory).
        #[arg(long)]
        run_dir: Option<PathBuf>,
        /// Loopback address of the control API (`chaos drill --attach`);
        /// port 0 picks a free one.
        #[arg(long, default_value = DEFAULT_CONTROL_ADDRESS)]
        control_address: SocketAddr,
    },
    /// Run a drill: a YAML file, or the name of one under drills/.
    Drill {
        drill: String,
        /// Where report.json, report.md, report.html and history.jsonl go.
        #[arg(long, default_value = "reports/latest")]
        report_dir: PathBuf,
        /// Run on a running `chaos up` instead of bringing a deployment up:
        /// its run directory, or its control URL (then with the token).
        #[arg(long, value_name = "RUN_DIR_OR_URL")]
        attach: Option<String>,
        /// Token of the control API, when attaching by URL.
        #[arg(long, env = "CHAOS_CONTROL_TOKEN", hide_env_values = true)]
        control_token: Option<String>,
        /// Run on the deployment a target file describes: the blast-radius
        /// guard first (exit code 6 when it refuses), then preflight (exit
        /// code 3 when a check fails); the drill does not start on either.
        /// Local faults (kill, blackhole, stall, ...) need the target's
        /// `local` section (a `chaos up` deployment); evacuate, command and
        /// http faults run on any target, known from the file alone.
        #[arg(long, conflicts_with = "attach")]
        target: Option<PathBuf>,
        /// Emergency stop: when this file appears the drill rolls back and
        /// exits 4 (default: STOP in the report directory).
        #[arg(long)]
        stop_file: Option<PathBuf>,
        /// Emergency stop from afar: read once a second, a 2xx answer rolls
        /// the drill back and exits 4, as the stop file does; 404 or 410
        /// carries on; 10 s of nothing but errors stops it too (a stop that
        /// cannot be heard counts as one). The drill does not start while
        /// it says stop or cannot be read.
        #[arg(long)]
        stop_url: Option<String>,
        /// Print what the drill would do (each fault, its region, when, how
        /// it is undone; the rollbacks; with --target the blast-radius
        /// verdict and the preflight) and change nothing: no deployment
        /// started, no fault applied, no journal written.
        #[arg(long)]
        plan: bool,
    },
    /// Undo every fault a drill's journal holds as applied and not undone
    /// (newest first), then wait until every region serves and is in DNS.
    Rollback(RollbackArgs),
    /// Validate a drill file, and/or run the preflight checks of a target
    /// file (exit code 3 when one fails), without changing anything; with
    /// both, also the blast-radius guard (exit code 6 when it refuses).
    Check {
        drill: Option<String>,
        #[arg(long)]
        target: Option<PathBuf>,
        /// Also print the preflight result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve the load of a vantage point for drills coordinated elsewhere
    /// (the target file's `vantage_points[].runner`): run it where that
    /// region's clients are, with their resolver and source address.
    Runner(RunnerArgs),
}

#[derive(Debug, clap::Args)]
struct RunnerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7460")]
    listen: SocketAddr,
    /// File holding the bearer token drills must present (default: the
    /// CHAOS_RUNNER_TOKEN environment variable).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// PEM certificate chain to serve HTTPS with (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct RollbackArgs {
    /// The drill's fault journal: `<report dir>/journal.jsonl` (default:
    /// that of `chaos drill`'s default report directory).
    #[arg(long, default_value = "reports/latest/journal.jsonl")]
    journal: PathBuf,
    /// The deployment, when the journal's is stale: a `chaos up` run
    /// directory, or its control URL (then with the token).
    #[arg(long, value_name = "RUN_DIR_OR_URL")]
    attach: Option<String>,
    /// The deployment as a target file, instead of the one the journal
    /// names (its `local` section's control API when it has one).
    #[arg(long, conflicts_with = "attach")]
    target: Option<PathBuf>,
    /// Token of the control API, when attaching by URL.
    #[arg(long, env = "CHAOS_CONTROL_TOKEN", hide_env_values = true)]
    control_token: Option<String>,
    /// How long to wait for every region (default: the controllers'
    /// hold-down plus ten probe intervals plus 10 s).
    #[arg(long)]
    wait_s: Option<u64>,
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
        Command::Check {
            drill,
            target,
            json,
        } => {
            if drill.is_none() && target.is_none() {
                eprintln!("chaos: check needs a drill, --target <file>, or both");
                std::process::exit(2);
            }
            let mut parsed = None;
            if let Some(drill) = drill {
                let path = Drill::resolve(&drill);
                match Drill::load(&path) {
                    Ok(drill) => {
                        println!("{}: ok ({} faults)", path.display(), drill.method.len());
                        parsed = Some(drill);
                    }
                    Err(error) => {
                        eprintln!("chaos: invalid drill: {error}");
                        std::process::exit(2);
                    }
                }
            }
            if let Some(target) = target {
                // With a drill, its blast-radius verdict too.
                let allowed = match &parsed {
                    Some(drill) => {
                        let verdict = blast_radius(drill, &load_target(&target));
                        print!("{}", verdict.render());
                        verdict.allowed()
                    }
                    None => true,
                };
                let preflight = preflight(&target).await;
                if json {
                    println!("{}", serde_json::to_string_pretty(&preflight)?);
                }
                if !allowed {
                    std::process::exit(BLAST_RADIUS_EXIT_CODE);
                }
                if !preflight.passed {
                    std::process::exit(PREFLIGHT_FAILED_EXIT_CODE);
                }
            }
            Ok(())
        }
        Command::Drill {
            drill,
            report_dir,
            attach,
            control_token,
            target,
            stop_file,
            stop_url,
            plan,
        } => {
            let stop_file = StopSources {
                file: stop_file,
                url: stop_url,
            };
            let path = Drill::resolve(&drill);
            let parsed = match Drill::load(&path) {
                Ok(parsed) => parsed,
                Err(error) => {
                    eprintln!("chaos: invalid drill: {error}");
                    std::process::exit(2);
                }
            };
            if plan {
                return print_plan(&parsed, target.as_deref()).await;
            }
            let attach = match target {
                None => attach,
                Some(target_path) => {
                    let verdict = blast_radius(&parsed, &load_target(&target_path));
                    if !verdict.allowed() {
                        eprint!("{}", verdict.render());
                        eprintln!(
                            "chaos: the blast-radius guard refuses the drill; it does not start"
                        );
                        std::process::exit(BLAST_RADIUS_EXIT_CODE);
                    }
                    print!("{}", verdict.render());
                    let result = drill_preflight(&target_path).await;
                    if !result.passed {
                        refuse_after_preflight(&result, &report_dir);
                    }
                    let target = Target::load(&target_path)?;
                    let Some(local) = &target.local else {
                        if let Some(refusal) = local_fault_refused(&parsed, &target_path) {
                            eprintln!("chaos: {refusal}");
                            std::process::exit(2);
                        }
                        // Actuators only: the deployment is what the file
                        // says, and nothing else.
                        return run_drill(
                            path,
                            report_dir,
                            DeploymentSource::Target {
                                target: Box::new(target.clone()),
                                file: target_path,
                            },
                            Some(result),
                            stop_file,
                            Some(target),
                        )
                        .await;
                    };
                    let token = local
                        .token
                        .resolve("local.token", &target.base_dir)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    // The local section is `chaos up`'s control API: the
                    // existing attach path drives it.
                    return run_drill(
                        path,
                        report_dir,
                        DeploymentSource::Attach(ControlClient::new(
                            &local.control_url,
                            token.expose(),
                        )?),
                        Some(result),
                        stop_file,
                        Some(target),
                    )
                    .await;
                }
            };
            let deployment = match attach {
                Some(target) => DeploymentSource::Attach(ControlClient::attach(
                    &target,
                    control_token.as_deref(),
                )?),
                None => DeploymentSource::Start {
                    bin_dir,
                    database_url: cli.database_url,
                },
            };
            run_drill(path, report_dir, deployment, None, stop_file, None).await
        }
        Command::Rollback(args) => rollback(args).await,
        Command::Runner(args) => runner(args).await,
        Command::Up {
            regions,
            instances_per_region,
            probe_interval_ms,
            dns_ttl_s,
            no_wan,
            run_dir,
            control_address,
        } => {
            let overrides = ControllerOverrides {
                probe: probe_interval_ms
                    .map(|ms| BTreeMap::from([("interval_ms".to_owned(), ms)]))
                    .unwrap_or_default(),
                dns_ttl_s,
                ..ControllerOverrides::default()
            };
            let controller = ControllerSettings::new(&overrides).map_err(|message| {
                anyhow::anyhow!("--probe-interval-ms or --dns-ttl-s: {message}")
            })?;
            let temporary = run_dir.is_none();
            let run_dir = run_dir.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("chaos-up-{}", std::process::id()))
            });
            let options = Options {
                regions,
                instances_per_region,
                controller,
                wan: (!no_wan).then(Wan::default),
                database_url: cli.database_url,
                run_dir: run_dir.clone(),
                bin_dir,
                outage: Default::default(),
            };
            let result = up(options, control_address).await;
            if temporary {
                let _ = std::fs::remove_dir_all(&run_dir);
            }
            result
        }
    }
}

/// Runs the drill (stopped by a signal or the stop file), adds the
/// Where an emergency stop can come from besides the signals: the stop
/// file (default: STOP in the report directory) and the stop URL.
struct StopSources {
    file: Option<PathBuf>,
    url: Option<String>,
}

/// preflight (when there was one) to its report, prints the summary; exit
/// code 1 when the hypothesis fails, 4 or 5 when stopped.
async fn run_drill(
    drill_file: PathBuf,
    report_dir: PathBuf,
    deployment: DeploymentSource,
    preflight: Option<Preflight>,
    stops: StopSources,
    actuators: Option<Target>,
) -> anyhow::Result<()> {
    let stop_file = stops
        .file
        .unwrap_or_else(|| report_dir.join(drill::STOP_FILE));
    let stop_file = drill::watch_stop_file(stop_file)?;
    let stop_url = match stops.url {
        Some(url) => drill::watch_stop_url(url).await?.boxed(),
        None => std::future::pending().boxed(),
    };
    let signals = stop_signal()?;
    let stop = async move {
        tokio::select! {
            cause = signals => cause.to_owned(),
            cause = stop_file => cause,
            cause = stop_url => cause,
        }
    };
    let result = drill::run(
        DrillOptions {
            drill_file,
            report_dir: report_dir.clone(),
            deployment,
            actuators,
        },
        stop,
    )
    .await;
    let mut report = match result {
        Ok(report) => report,
        Err(error) if error.is::<drill::StoppedEarly>() => {
            eprintln!("chaos: {error}");
            std::process::exit(drill::STOPPED_EXIT_CODE);
        }
        Err(error) => return Err(error),
    };
    if let Some(preflight) = preflight {
        // In the configuration, which every renderer already shows.
        if let Some(configuration) = report.configuration.as_object_mut() {
            configuration.insert("preflight".into(), serde_json::to_value(&preflight)?);
        }
        chaos::report::write_all(&report, &report_dir)?;
    }
    print_summary(&report, &report_dir);
    match (&report.verdict, &report.stop) {
        (Verdict::Passed, _) => Ok(()),
        (Verdict::Stopped, Some(stop)) if stop.restored_after_s.is_some() => {
            std::process::exit(drill::STOPPED_EXIT_CODE)
        }
        (Verdict::Stopped, _) => std::process::exit(drill::STOPPED_NOT_RESTORED_EXIT_CODE),
        _ => std::process::exit(1),
    }
}

/// Why a drill cannot run on a target without a `local` section: its first
/// local fault (kill, blackhole, stall, ...), which only a `chaos up`
/// deployment can apply; `None` when every fault is an actuator.
fn local_fault_refused(drill: &Drill, target_path: &std::path::Path) -> Option<String> {
    let (index, fault) = drill
        .method
        .iter()
        .enumerate()
        .find(|(_, fault)| !fault.fault.actuator())?;
    Some(format!(
        "{}: method[{index}] ({}) is a local fault, which only a `chaos up` deployment (a \
         target with a `local` section) can apply; on this target use evacuate, command or \
         http faults",
        target_path.display(),
        fault.fault.as_str()
    ))
}

/// Loads the target file (exit code 2 when invalid), runs the preflight
/// checks and prints them.
async fn preflight(path: &std::path::Path) -> Preflight {
    let target = load_target(path);
    let result = chaos::target::preflight::run(&target).await;
    print!("{}", result.render());
    result
}

/// A drill's preflight (`preflight::run_for_drill`): a failed pass is
/// printed and checked again a few seconds later; the last pass decides.
async fn drill_preflight(path: &std::path::Path) -> Preflight {
    use chaos::target::preflight::{run_for_drill, DRILL_PASSES, DRILL_RECHECK_AFTER};
    let target = load_target(path);
    let result = run_for_drill(&target, |pass, failed| {
        print_failed_checks(failed);
        eprintln!(
            "chaos: preflight pass {pass} of {DRILL_PASSES} failed; checking again in {} s",
            DRILL_RECHECK_AFTER.as_secs()
        );
    })
    .await;
    print!("{}", result.render());
    result
}

/// `chaos runner`: serves until SIGTERM or Ctrl-C.
async fn runner(args: RunnerArgs) -> anyhow::Result<()> {
    // Read as a target file's secret is: without its trailing newline, and
    // refused when missing or empty, naming where it was looked for.
    let source = match &args.token_file {
        Some(file) => chaos::target::SecretRef::File(file.clone()),
        None => chaos::target::SecretRef::Env(chaos::runner::TOKEN_VARIABLE.to_owned()),
    };
    let token = match source.resolve("--token-file", std::path::Path::new(".")) {
        Ok(token) => token.expose().to_owned(),
        Err(error) => {
            eprintln!(
                "chaos: the runner needs a token (--token-file <file> or {}): {error}",
                chaos::runner::TOKEN_VARIABLE
            );
            std::process::exit(2);
        }
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(chaos::runner::server::tls_acceptor(cert, key)?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("--listen {}", args.listen))?;
    eprintln!(
        "chaos: runner listening on {}://{}",
        if tls.is_some() { "https" } else { "http" },
        listener.local_addr()?
    );
    let shutdown = async {
        let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    };
    chaos::runner::server::serve(listener, token, tls, shutdown).await
}

/// A drill whose preflight failed does not start: each failed check goes
/// to stderr (stdout has the whole table), the preflight to
/// `<report_dir>/preflight.json` for the record, and the process exits 3.
fn refuse_after_preflight(result: &Preflight, report_dir: &std::path::Path) -> ! {
    print_failed_checks(result);
    let written = std::fs::create_dir_all(report_dir)
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            let text = serde_json::to_string_pretty(result)?;
            chaos::report::write_atomically(&report_dir.join(PREFLIGHT_FILE), text.as_bytes())
        });
    match written {
        Ok(()) => eprintln!(
            "chaos: preflight failed; the drill does not start (the checks are in {})",
            report_dir.join(PREFLIGHT_FILE).display()
        ),
        Err(error) => eprintln!(
            "chaos: preflight failed; the drill does not start (could not write {}: {error})",
            report_dir.join(PREFLIGHT_FILE).display()
        ),
    }
    std::process::exit(PREFLIGHT_FAILED_EXIT_CODE);
}

/// Each failed check of `result`, on stderr.
fn print_failed_checks(result: &Preflight) {
    for check in result
        .checks
        .iter()
        .filter(|c| c.outcome == chaos::target::preflight::Outcome::Fail)
    {
        eprintln!(
            "chaos: preflight check failed: {}: expected {}, observed {}",
            check.name, check.expected, check.observed
        );
    }
}

/// The file a refused drill leaves in its report directory.
const PREFLIGHT_FILE: &str = "preflight.json";

/// The target file, or exit code 2 naming what is wrong with it.
fn load_target(path: &std::path::Path) -> Target {
    match Target::load(path) {
        Ok(target) => target,
        Err(error) => {
            eprintln!("chaos: {error}");
            std::process::exit(2);
        }
    }
}

/// The blast-radius guard's verdict on `drill` for `target`.
fn blast_radius(drill: &Drill, target: &Target) -> guard::Verdict {
    let regions: Vec<String> = target.regions.keys().cloned().collect();
    guard::check(drill, &regions, &target.blast_radius)
}

/// `chaos drill --plan`: prints the plan (with a target: the guard's
/// verdict and the read-only preflight) and changes nothing. Exits as the
/// drill would before its first fault: 6 when the guard refuses, 3 when
/// preflight fails, else 0.
async fn print_plan(drill: &Drill, target_path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let Some(target_path) = target_path else {
        print!("{}", drill::plan::render(drill, PlanTarget::Local));
        return Ok(());
    };
    let target = load_target(target_path);
    let verdict = blast_radius(drill, &target);
    let preflight = chaos::target::preflight::run(&target).await;
    print!(
        "{}",
        drill::plan::render(
            drill,
            PlanTarget::Target {
                name: &target.name,
                guard: &verdict,
                preflight: &preflight,
            }
        )
    );
    if !verdict.allowed() {
        std::process::exit(BLAST_RADIUS_EXIT_CODE);
    }
    if !preflight.passed {
        std::process::exit(PREFLIGHT_FAILED_EXIT_CODE);
    }
    Ok(())
}

/// `chaos rollback`: finds the deployment (`--attach`, else the one the
/// journal names), undoes what is pending and checks every region; exits
/// non-zero naming what is still wrong.
async fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    use chaos::journal::rollback::{self as journal_rollback, restore_bound};
    use chaos::journal::{self, Journal, JournalDeployment};
    let records = journal::read(&args.journal)?;
    use chaos::driver::FaultDriver;
    let deployment = match &args.target {
        Some(target_file) => Some(JournalDeployment::Target {
            target_file: target_file.clone(),
        }),
        None => journal::deployment_of(&records),
    };
    let driver = match (&args.attach, deployment) {
        (Some(target), _) => FaultDriver::Remote(ControlClient::attach(
            target,
            args.control_token.as_deref(),
        )?),
        (None, Some(JournalDeployment::Target { target_file })) => {
            let target = Target::load(&target_file)?;
            match &target.local {
                Some(local) => {
                    let token = local
                        .token
                        .resolve("local.token", &target.base_dir)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    FaultDriver::Remote(ControlClient::new(&local.control_url, token.expose())?)
                }
                None => FaultDriver::Target(std::sync::Arc::new(
                    chaos::target::deployment::TargetDriver::new(&target, &target_file)
                        .await
                        .with_context(|| format!("the target file {}", target_file.display()))?,
                )),
            }
        }
        (
            None,
            Some(JournalDeployment::Attached {
                state_file: Some(file),
                ..
            }),
        ) => FaultDriver::Remote(
            ControlClient::attach(&file.display().to_string(), None)
                .context("the deployment the journal names; pass --attach if it moved")?,
        ),
        (
            None,
            Some(JournalDeployment::Attached {
                control_url,
                state_file: None,
            }),
        ) => FaultDriver::Remote(ControlClient::attach(
            &control_url,
            args.control_token.as_deref(),
        )?),
        (None, Some(JournalDeployment::InProcess { run_dir })) => anyhow::bail!(
            "{} names a deployment that lived in the drill's own process (run directory {}): \
             nothing can reach it now",
            args.journal.display(),
            run_dir.display()
        ),
        (None, None) => {
            println!(
                "chaos: {} holds no fault: nothing to roll back",
                args.journal.display()
            );
            return Ok(());
        }
    };
    let started = std::time::Instant::now();
    let journal = Journal::open(&args.journal)?;
    let pending = journal::pending(&records);
    println!(
        "chaos: {} holds {} fault(s) applied and not undone",
        args.journal.display(),
        pending.len()
    );
    let undone = journal_rollback::undo_pending(&journal, &driver, "chaos rollback").await;
    let info = driver.info().await?;
    let within = args
        .wait_s
        .map_or_else(|| restore_bound(&info), Duration::from_secs);
    println!(
        "chaos: undone {}; waiting up to {:.0} s for every region to serve and be in DNS",
        undone.undone.len(),
        within.as_secs_f64()
    );
    match journal_rollback::wait_until_restored(&info, started, within).await {
        Ok(after) if undone.failed.is_empty() => {
            println!(
                "chaos: every region serves and is in DNS ({:.1} s after the rollback began)",
                after.as_secs_f64()
            );
            Ok(())
        }
        Ok(_) => anyhow::bail!(
            "every region serves, but {} undo(s) failed: {}",
            undone.failed.len(),
            undone
                .failed
                .iter()
                .map(|(id, error)| format!("#{id}: {error}"))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Err(wrong) => anyhow::bail!(
            "after {:.0} s not every region is back: {}",
            within.as_secs_f64(),
            wrong.join("; ")
        ),
    }
}

/// `chaos up`: binds the control API first (a wrong or busy address fails
/// before anything starts), brings the deployment up, serves until a stop
/// signal, then stops everything.
async fn up(options: Options, control_address: SocketAddr) -> anyhow::Result<()> {
    let stop = stop_signal()?.map(|_| ()).boxed().shared();
    let control = ControlServer::bind(control_address)
        .await
        .context("cannot start the control API")?;
    let run_dir = options.run_dir.clone();
    let deployment = tokio::select! {
        started = Deployment::start(options) => started?,
        () = stop.clone() => {
            eprintln!("chaos: interrupted while starting; stopped what was started");
            return Ok(());
        }
    };
    let deployment = Arc::new(AsyncMutex::new(deployment));
    let served = serve_until_stopped(control, &deployment, &run_dir, stop).await;
    eprintln!("chaos: stopping");
    let _ = std::fs::remove_file(run_dir.join(STATE_FILE));
    deployment.lock().await.shutdown().await;
    eprintln!("chaos: stopped; nothing left running");
    served
}

async fn serve_until_stopped(
    control: ControlServer,
    deployment: &Arc<AsyncMutex<Deployment>>,
    run_dir: &std::path::Path,
    stop: futures_util::future::Shared<futures_util::future::BoxFuture<'static, ()>>,
) -> anyhow::Result<()> {
    // Random, and only in the owner-only state file: whoever can read it
    // may drive the deployment.
    let token = uuid::Uuid::new_v4().simple().to_string();
    let state_path = run_dir.join(STATE_FILE);
    StateFile {
        control_url: control.url(),
        token: token.clone(),
        pid: std::process::id(),
        run_dir: run_dir.to_owned(),
    }
    .write(&state_path)
    .with_context(|| format!("cannot write {}", state_path.display()))?;
    let target_path = {
        let deployment = deployment.lock().await;
        let (target, secrets) = local_target(
            &deployment.info(),
            &control.url(),
            &deployment.admin_token,
            &token,
        );
        write_target(run_dir, &target, &secrets)
            .with_context(|| format!("cannot write the target file into {}", run_dir.display()))?
    };
    println!(
        "chaos: deployment up (logs in {})",
        run_dir.join("logs").display()
    );
    print!("{}", deployment.lock().await.endpoints());
    println!(
        "control        {} (bearer token in {})",
        control.url(),
        state_path.display()
    );
    println!(
        "drill on it    chaos drill region-kill --attach {}",
        run_dir.display()
    );
    println!(
        "target file    {} (chaos check --target {})",
        target_path.display(),
        target_path.display()
    );
    println!("chaos: Ctrl-C stops everything");
    let mut server = tokio::spawn(control.serve(deployment.clone(), token, stop.clone()));
    let finished = tokio::select! {
        () = stop => false,
        served = &mut server => {
            served.context("control API task")?.context("control API failed")?;
            true
        }
    };
    // In-flight control calls are short; do not let one hold the stop up.
    if !finished
        && tokio::time::timeout(Duration::from_secs(5), &mut server)
            .await
            .is_err()
    {
        server.abort();
    }
    Ok(())
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM, naming which. The handlers
/// are installed here, at once, so that a signal arriving before the future
/// is first polled is not the default "die at once, leave the children
/// running".
fn stop_signal() -> anyhow::Result<impl Future<Output = &'static str> + Send + 'static> {
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    })
}

fn print_summary(report: &chaos::model::DrillReport, dir: &std::path::Path) {
    let phases = &report.phases;
    let show = |value: Option<f64>| value.map_or("-".to_owned(), |v| format!("{v:.2} s"));
    println!();
    println!("{}: {:?}", report.title, report.verdict);
    if let Some(stop) = &report.stop {
        println!("  {}", drill::describe_stop(stop));
    }
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
    if phases.fault_ended_at_s.is_some() {
        println!(
            "  way back (from the fault's end): back in DNS {}  served again {}",
            show(phases.failback_s),
            show(phases.served_again_s)
        );
    }
    if let Some(line) = chaos::report::objectives_summary_line(report) {
        println!("{line}");
    }
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
        "  ledger: {} of {} accounts reconcile; {} acknowledged writes, {} lost; {} failed or \
         unknown operations listed in the report",
        totals.accounts_checked - totals.accounts_unreconciled.min(totals.accounts_checked),
        totals.accounts_checked,
        totals.writes_acknowledged,
        totals.writes_lost,
        report.failed_operations.len()
    );
    for finding in &report.ledger_findings {
        println!("    {finding}");
    }
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
