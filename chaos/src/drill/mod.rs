//! Running one drill: bring the deployment up (or attach to a running
//! `chaos up`), seed the ledger, run the load while the method's faults come
//! and go, roll back, verify, report, and tear down what it started.
//!
//! Layout: this module orchestrates and owns the rollbacks; `schedule` runs
//! the faults, the progress and abort monitor and the DNS watcher during the
//! load; `evidence` seeds before it and verifies and reports after it;
//! `plan` prints what a drill would do without doing it (`--plan`). Every
//! fault goes through a [`FaultDriver`], so an attached drill and an
//! in-process one share all of this.
//!
//! Every fault the drill applies is first written to the fault journal
//! (`<report dir>/journal.jsonl`, see [`crate::journal`]); the rollbacks
//! undo what the journal holds, newest first, then run the catch-alls.
//!
//! A stop (Ctrl-C, SIGTERM or the stop file) at any point runs the
//! rollbacks, waits until every region serves and is in DNS, writes a
//! report whose verdict is `stopped` (`stop`) and tears down what the drill
//! started; it never shuts an attached deployment down.

pub mod conditions;
mod evidence;
pub mod plan;
pub(crate) mod schedule;
mod stop;

pub use stop::{
    describe_stop, watch_stop_file, watch_stop_url, StoppedEarly, STOPPED_EXIT_CODE,
    STOPPED_NOT_RESTORED_EXIT_CODE, STOP_FILE,
};

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use futures_util::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::Mutex as AsyncMutex;

use self::evidence::Observed;
use self::stop::{Partial, Stopped};
use crate::controller_settings::ControllerSettings;
use crate::deployment::{Deployment, DeploymentInfo, FaultAction, Options};
use crate::driver::{ControlClient, FaultDriver};
use crate::journal::rollback::undo_pending;
use crate::journal::{Journal, JournalDeployment, JOURNAL_FILE};
use crate::load::{LiveCounters, Plan, Target};
use crate::model::{DrillReport, FaultWindow, StopPhase};
use crate::runner::client::{RemoteRunner, RunnerSummary};
use crate::spec::{Drill, Rollback, Topology};

/// Opening balance of every seeded account.
const OPENING_BALANCE: i64 = 1_000_000;

/// How to run a drill.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    pub drill_file: PathBuf,
    pub report_dir: PathBuf,
    pub deployment: DeploymentSource,
    /// The actuators' access to the target file's deployment (`--target`);
    /// a drill with an actuator fault does not start without it.
    pub actuators: Option<crate::target::Target>,
}

/// Which deployment the drill runs on.
#[derive(Debug, Clone)]
pub enum DeploymentSource {
    /// Bring one up from these binaries (and this PostgreSQL server, or a
    /// throwaway one), and tear it down at the end.
    Start {
        bin_dir: PathBuf,
        database_url: Option<String>,
    },
    /// A running `chaos up`, driven through its control API: its topology
    /// must match the drill's, and it is left running (and healed).
    Attach(ControlClient),
    /// A deployment known only from its target file (`--target` without a
    /// `local` section): its addresses, CA, API key and ledger come from
    /// the file, only actuator faults apply, and it is left running.
    Target {
        target: Box<crate::target::Target>,
        file: PathBuf,
    },
}

/// The stop signal, awaited wherever the drill can be interrupted; its
/// output names what stopped it ("SIGTERM", "stop file <path>").
type Stop = Shared<BoxFuture<'static, String>>;

/// Runs the drill and writes its report; the caller decides the exit code.
/// When `stop` completes first, the faults are rolled back, the report's
/// verdict is [`crate::model::Verdict::Stopped`], and what the drill
/// started is torn down; stopped while its own deployment was coming up,
/// the error is [`StoppedEarly`].
pub async fn run(
    options: DrillOptions,
    stop: impl Future<Output = String> + Send + 'static,
) -> anyhow::Result<DrillReport> {
    let stop: Stop = stop.boxed().shared();
    let drill = Drill::load(&options.drill_file)?;
    if options.actuators.is_none() {
        if let Some((index, fault)) = drill
            .method
            .iter()
            .enumerate()
            .find(|(_, f)| f.fault.actuator())
        {
            bail!(
                "method[{index}]: {} faults act through the target's own machinery: run the \
                 drill with --target <target.yaml>",
                fault.fault.as_str()
            );
        }
    }
    std::fs::create_dir_all(&options.report_dir)
        .with_context(|| format!("cannot create {}", options.report_dir.display()))?;
    match &options.deployment {
        DeploymentSource::Start {
            bin_dir,
            database_url,
        } => {
            eprintln!(
                "chaos: {} — bringing up {} regions",
                drill.title,
                drill.topology.regions.len()
            );
            let starting = Deployment::start(Options {
                regions: drill.topology.regions.clone(),
                instances_per_region: drill.topology.instances_per_region,
                controller: ControllerSettings::new(&drill.controller)
                    .map_err(|message| anyhow::anyhow!("{message}"))?,
                wan: drill.topology.wan.clone(),
                database_url: database_url.clone(),
                run_dir: options.report_dir.join("run"),
                bin_dir: bin_dir.clone(),
                outage: crate::outage::deployment_options(&drill),
            });
            // Dropping a half-started deployment kills what it started.
            let deployment = tokio::select! {
                started = starting => started?,
                cause = stop.clone() => return Err(StoppedEarly { cause }.into()),
            };
            eprint!("{}", deployment.endpoints());
            let deployment = Arc::new(AsyncMutex::new(deployment));
            let driver = FaultDriver::InProcess(deployment.clone());
            let journaled = JournalDeployment::InProcess {
                run_dir: std::path::absolute(options.report_dir.join("run"))
                    .unwrap_or_else(|_| options.report_dir.join("run")),
            };
            let result = run_on(&drill, &options, &driver, &journaled, stop).await;
            eprintln!("chaos: stopping the deployment");
            deployment.lock().await.shutdown().await;
            result
        }
        DeploymentSource::Attach(client) => {
            eprintln!("chaos: {} — attaching to {}", drill.title, client.url());
            let driver = FaultDriver::Remote(client.clone());
            let info = driver.info().await?;
            let controller = ControllerSettings::new(&drill.controller)
                .map_err(|message| anyhow::anyhow!("{message}"))?;
            check_topology(&drill.topology, &controller, &info)?;
            let journaled = JournalDeployment::Attached {
                control_url: client.url().to_owned(),
                state_file: client.state_file().map(ToOwned::to_owned),
            };
            run_on(&drill, &options, &driver, &journaled, stop).await
        }
        DeploymentSource::Target { target, file } => {
            eprintln!(
                "chaos: {} — on target {:?} ({})",
                drill.title,
                target.name,
                file.display()
            );
            crate::target::deployment::require_ledger(target)?;
            let target_driver = crate::target::deployment::TargetDriver::new(target, file).await?;
            check_target_regions(&drill.topology, &target_driver.info)?;
            let journaled = JournalDeployment::Target {
                target_file: target_driver.target_file.clone(),
            };
            let driver = FaultDriver::Target(Arc::new(target_driver));
            run_on(&drill, &options, &driver, &journaled, stop).await
        }
    }
}

/// Refuses a target whose regions are not the drill's (in any order).
fn check_target_regions(wanted: &Topology, info: &DeploymentInfo) -> anyhow::Result<()> {
    let mut theirs: Vec<&str> = info.regions.iter().map(|r| r.name.as_str()).collect();
    let mut ours: Vec<&str> = wanted.regions.iter().map(String::as_str).collect();
    theirs.sort_unstable();
    ours.sort_unstable();
    if theirs != ours {
        bail!(
            "the target's regions are [{}], the drill's topology.regions [{}]: a drill runs on \
             the regions it names",
            theirs.join(", "),
            ours.join(", ")
        );
    }
    Ok(())
}

/// Refuses a deployment whose topology or controller settings differ from
/// the drill's, naming every difference.
pub fn check_topology(
    wanted: &Topology,
    controller: &ControllerSettings,
    info: &DeploymentInfo,
) -> anyhow::Result<()> {
    let regions: Vec<String> = info.regions.iter().map(|r| r.name.clone()).collect();
    let mut differences = Vec::new();
    if regions != wanted.regions {
        differences.push(format!(
            "regions: the drill wants [{}], the deployment has [{}]",
            wanted.regions.join(", "),
            regions.join(", ")
        ));
    }
    if wanted.instances_per_region != info.instances_per_region {
        differences.push(format!(
            "instances_per_region: the drill wants {}, the deployment has {}",
            wanted.instances_per_region, info.instances_per_region
        ));
    }
    for setting in &controller.settings {
        let running = info
            .controller
            .settings
            .iter()
            .find(|s| s.key == setting.key)
            .map(|s| s.value);
        if running != Some(setting.value) {
            differences.push(format!(
                "controller {}: the drill wants {}, the deployment has {}",
                setting.key,
                setting.value,
                running.map_or("none".to_owned(), |v| v.to_string())
            ));
        }
    }
    // The lease transfer is the drill's: it sends it with the kill.
    let without_leases = |wan: Option<&crate::spec::Wan>| {
        wan.cloned().map(|wan| crate::spec::Wan {
            lease_transfer_s: 0.0,
            ..wan
        })
    };
    if without_leases(wanted.wan.as_ref()) != without_leases(info.wan.as_ref()) {
        differences.push(format!(
            "wan: the drill wants {}, the deployment has {}",
            describe_wan(wanted.wan.as_ref()),
            describe_wan(info.wan.as_ref())
        ));
    }
    differences.extend(crate::outage::attach_differences(wanted, info));
    if differences.is_empty() {
        return Ok(());
    }
    bail!(
        "the attached deployment does not match the drill's topology: {}; start `chaos up` \
         with matching options, or run the drill without --attach",
        differences.join("; ")
    )
}

fn describe_wan(wan: Option<&crate::spec::Wan>) -> String {
    match wan {
        None => "none (loopback)".into(),
        Some(wan) if *wan == crate::spec::Wan::default() => "the default WAN".into(),
        Some(_) => "a custom WAN".into(),
    }
}

/// The drill's `rollbacks:`, with the catch-alls `heal-network` and
/// `restore-processes` added when missing; run in reverse order.
pub fn registered_rollbacks(drill: &Drill) -> Vec<Rollback> {
    let mut rollbacks: Vec<Rollback> = drill.rollbacks.clone();
    if !rollbacks.contains(&Rollback::HealNetwork) {
        rollbacks.push(Rollback::HealNetwork);
    }
    if !rollbacks.contains(&Rollback::RestoreProcesses) {
        rollbacks.push(Rollback::RestoreProcesses);
    }
    rollbacks
}

async fn run_on(
    drill: &Drill,
    options: &DrillOptions,
    driver: &FaultDriver,
    journaled: &JournalDeployment,
    stop: Stop,
) -> anyhow::Result<DrillReport> {
    let info = driver.info().await?;
    let journal = Arc::new(open_journal(&options.report_dir)?);
    let target = target_of(&info, drill);
    let instances = info.instance_addresses();
    let https = info.instance_https(None)?;
    let accounts = tokio::select! {
        seeded = evidence::seed(&instances, &https, drill.load.accounts) => seeded?,
        cause = stop.clone() => {
            let stopped = Stopped::now(cause, StopPhase::BeforeFault, None);
            let partial = Partial { history: &[], windows: Vec::new(), t0_wall: Utc::now() };
            return stop::conclude_stopped(drill, options, &info, stopped, partial).await;
        }
    };
    let opening: BTreeMap<uuid::Uuid, i64> = accounts
        .iter()
        .map(|account| (*account, OPENING_BALANCE))
        .collect();

    // Rollbacks are registered before any fault.
    let rollbacks = registered_rollbacks(drill);

    // The target's load runners, reached and their clocks measured before
    // t = 0 (a runner that cannot be reached stops the drill here).
    let runners = match &options.actuators {
        Some(file) => RemoteRunner::connect_all(file, &drill.client_regions())
            .await
            .context("a load runner")?,
        None => Vec::new(),
    };

    let watched_here: Vec<String> = drill
        .client_regions()
        .into_iter()
        .filter(|region| !runners.iter().any(|r| &r.region == region))
        .collect();

    let duration = Duration::from_secs(u64::from(drill.load.duration_s));
    let lead = crate::runner::client::lead(&runners);
    let t0 = Instant::now() + lead;
    let t0_wall: DateTime<Utc> = Utc::now() + chrono::Duration::from_std(lead).unwrap_or_default();
    let live = Arc::new(LiveCounters::default());
    let abort = Arc::new(AtomicBool::new(false));
    let abort_reason: Arc<Mutex<Option<String>>> = Arc::default();

    let load = tokio::spawn(crate::runner::client::run_load(
        crate::runner::client::Load {
            plan: Plan {
                client_regions: drill.client_regions(),
                seed_offset: 0,
                rate_per_client_region: drill.load.rate_per_client_region,
                write_ratio: drill.load.write_ratio,
                duration,
                request_timeout: Duration::from_millis(drill.load.request_timeout_ms),
                accounts,
                seed: drill.seed,
            },
            target: target.clone(),
            t0,
            t0_wall,
            live: live.clone(),
            abort: abort.clone(),
            abort_reason: abort_reason.clone(),
        },
        runners,
    ));
    // A runner's region is watched from the runner, the others from here.
    let dns_stop = Arc::new(AtomicBool::new(false));
    let dns_watch = tokio::spawn(schedule::watch_dns(
        target.clone(),
        watched_here,
        t0,
        dns_stop.clone(),
    ));
    let unknown_commits_before = crate::outage::unknown_commits_logged(&info);
    let outage_watch = tokio::spawn(crate::outage::watch::watch(
        info.clone(),
        drill.clone(),
        t0,
        dns_stop.clone(),
    ));
    let faults = Arc::new(Mutex::new(Vec::<FaultWindow>::new()));
    let method = tokio::spawn(schedule::run_method(
        drill.method.clone(),
        driver.clone(),
        t0,
        faults.clone(),
        abort.clone(),
        schedule::Journaled {
            journal: journal.clone(),
            deployment: journaled.clone(),
        },
        schedule::MethodContext {
            actuators: options
                .actuators
                .as_ref()
                .map(|target| crate::actuators::Actuators::from_target(target, &drill.title)),
            load_s: duration.as_secs_f64(),
            abort_reason: abort_reason.clone(),
            lease_transfer: drill
                .topology
                .wan
                .as_ref()
                .map(|wan| Duration::from_secs_f64(wan.lease_transfer_s)),
        },
    ));
    let watched = conditions::watch(conditions::Watch {
        conditions: &drill.abort,
        touched: conditions::touched_regions(drill),
        instances: &target.instances,
        instance_names: &target.instance_names,
        ca_pem: &target.ca_pem,
        t0,
        until: duration,
        abort: &abort,
        abort_reason: &abort_reason,
    });
    let stopped = tokio::select! {
        ((), ()) = futures_util::future::join(
            schedule::monitor(drill, t0, duration, &live, &abort, &abort_reason, &faults),
            watched,
        ) => None,
        cause = stop.clone() => {
            let phase = stop::phase_of(journal.path(), &faults.lock().expect("faults lock"));
            Some(Stopped::now(cause, phase, Some(t0)))
        }
    };
    if stopped.is_some() {
        abort.store(true, Ordering::Relaxed);
    }
    // No fault may start once the rollbacks run; they run before waiting
    // for the load's last requests, so that a stop rolls back at once.
    method.abort();
    let _ = method.await;
    let undone = roll_back(driver, &rollbacks, &info, &journal).await;
    attach_stop_hooks(
        &mut faults.lock().expect("faults lock"),
        &undone.hooks,
        t0.elapsed().as_secs_f64(),
    );
    let gathered = load.await.context("load task")?;
    let (history, runners) = (gathered.history, gathered.runners);
    dns_stop.store(true, Ordering::Relaxed);
    let mut dns = dns_watch.await.unwrap_or_default();
    dns.extend(gathered.runner_dns);
    dns.sort_by(|a, b| a.t.total_cmp(&b.t));
    let outage = (
        outage_watch.await.unwrap_or_default(),
        crate::outage::Counted {
            commits_unknown: crate::outage::unknown_commits_logged(&info)
                .saturating_sub(unknown_commits_before),
            route53_calls_throttled: crate::outage::route53_calls_throttled(&info).await,
        },
    );
    if let Some(stopped) = stopped {
        let partial = Partial {
            history: &history,
            windows: faults.lock().expect("faults lock").clone(),
            t0_wall,
        };
        let report = stop::conclude_stopped(drill, options, &info, stopped, partial).await;
        return with_runners(report, &runners, &options.report_dir);
    }
    let end_s = t0.elapsed().as_secs_f64();
    let mut fault_windows = faults.lock().expect("faults lock").clone();
    for window in &mut fault_windows {
        window
            .end_s
            .get_or_insert(end_s.min(duration.as_secs_f64()));
    }
    // Kept for a stopped report, should a stop come during verification.
    let history_kept = history.clone();
    let windows_kept = fault_windows.clone();
    let observed = Observed {
        history,
        dns,
        fault_windows,
        t0_wall,
        load_seconds: duration.as_secs_f64().min(end_s),
        abort_reason: abort_reason.lock().expect("abort lock").clone(),
        rollbacks,
        opening,
        outage,
    };
    let report = tokio::select! {
        report = evidence::conclude(drill, options, &info, observed) => report,
        cause = stop => {
            // The faults were rolled back before verification began.
            let stopped = Stopped::now(cause, StopPhase::Verification, Some(t0));
            let partial = Partial { history: &history_kept, windows: windows_kept, t0_wall };
            stop::conclude_stopped(drill, options, &info, stopped, partial).await
        }
    };
    with_runners(report, &runners, &options.report_dir)
}

/// `configuration.runners`: where each remote client region's load came
/// from, the runner's clock and what it sent (the report is written again
/// with it).
fn with_runners(
    report: anyhow::Result<DrillReport>,
    runners: &[RunnerSummary],
    report_dir: &std::path::Path,
) -> anyhow::Result<DrillReport> {
    let mut report = report?;
    if !runners.is_empty() {
        if let Some(configuration) = report.configuration.as_object_mut() {
            configuration.insert("runners".into(), serde_json::to_value(runners)?);
        }
        crate::report::write_all(&report, report_dir)?;
    }
    Ok(report)
}

/// Opens the report directory's fault journal. Faults an earlier drill left
/// on an attached deployment must be rolled back first; those of a
/// deployment that lived in a dead drill's process died with it.
fn open_journal(report_dir: &std::path::Path) -> anyhow::Result<Journal> {
    let path = report_dir.join(JOURNAL_FILE);
    let journal = Journal::open(&path)?;
    let pending = crate::journal::pending(&crate::journal::read(&path)?);
    let attached: Vec<String> = pending
        .iter()
        .filter(|entry| matches!(entry.deployment, JournalDeployment::Attached { .. }))
        .map(|entry| {
            format!(
                "#{} {}",
                entry.id,
                crate::journal::rollback::describe(&entry.action)
            )
        })
        .collect();
    if !attached.is_empty() {
        bail!(
            "the fault journal {} holds faults an earlier drill applied and never undid ({}): \
             run `chaos rollback --journal {}` first",
            path.display(),
            attached.join(", "),
            path.display()
        );
    }
    for entry in pending {
        journal.undone(
            entry.id,
            "abandoned: its deployment lived in a drill process that is gone",
        )?;
    }
    Ok(journal)
}

/// Undoes what the fault journal holds, newest first, then runs the
/// rollbacks in reverse order of registration; a failing one is reported
/// and the others still run.
async fn roll_back(
    driver: &FaultDriver,
    rollbacks: &[Rollback],
    info: &DeploymentInfo,
    journal: &Journal,
) -> crate::journal::rollback::Undone {
    let undone = undo_pending(journal, driver, "drill").await;
    for rollback in rollbacks.iter().rev() {
        let result = match rollback {
            Rollback::HealNetwork => driver.apply(&FaultAction::HealNetwork).await,
            Rollback::RestoreProcesses => driver.apply(&FaultAction::RestoreAll).await,
            Rollback::ClearDrainFlags => clear_drain_flags(&info.database_url).await,
        };
        if let Err(error) = result {
            eprintln!("chaos: rollback {rollback:?} failed: {error:#}");
        }
    }
    undone
}

/// The stop hooks the rollback ran (the drill's end, an abort, an
/// emergency stop) go with their faults into the report, like those the
/// schedule ran; the fault ends when its stop hook ran, `now_s`.
fn attach_stop_hooks(
    windows: &mut [FaultWindow],
    hooks: &[(FaultAction, crate::actuators::HookRun)],
    now_s: f64,
) {
    for (action, run) in hooks {
        let kind = match action {
            FaultAction::Command { .. } => "command",
            FaultAction::Http { .. } => "http",
            _ => continue,
        };
        let target = action.target().unwrap_or_default();
        if let Some(window) = windows
            .iter_mut()
            .rev()
            .find(|w| w.kind == kind && w.target == target && w.end_s.is_none())
        {
            window.end_s = Some(now_s);
            window.hooks.push(run.clone());
        }
    }
}

/// Drain flags live in the database, not in the deployment's processes.
async fn clear_drain_flags(database_url: &str) -> anyhow::Result<()> {
    let client = crate::database::connect(database_url)
        .await
        .context("clearing drain flags")?;
    client
        .batch_execute("UPDATE region_state SET drained = false")
        .await?;
    Ok(())
}

/// What the load generator needs from the deployment.
fn target_of(deployment: &DeploymentInfo, drill: &Drill) -> Target {
    let regions = &deployment.regions;
    let mut preference = BTreeMap::new();
    for client in drill.client_regions() {
        let home = regions
            .iter()
            .find(|r| r.name == client)
            .map_or(0, |r| r.index);
        let mut ordered: Vec<_> = regions.iter().collect();
        ordered.sort_by_key(|r| (r.index.abs_diff(home), r.index));
        preference.insert(
            client.clone(),
            ordered.iter().map(|r| r.name.clone()).collect(),
        );
    }
    Target {
        dns_servers: regions.iter().map(|r| r.controller_dns).collect(),
        resolvers: regions
            .iter()
            .map(|r| (r.name.clone(), r.resolver))
            .collect(),
        ca_pem: deployment.ca_pem.clone(),
        client_addresses: regions
            .iter()
            .map(|r| (r.name.clone(), r.client_address))
            .collect(),
        instances: deployment.instance_addresses(),
        instance_names: deployment.instance_names(),
        preference,
        api_key: deployment.api_key.clone(),
        service_name: deployment.service_name.clone(),
        service_port: regions
            .iter()
            .find_map(|r| r.instances.first())
            .map_or(crate::deployment::SERVICE_PORT, |address| address.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::RegionInfo;

    fn window(kind: &str, target: &str, end_s: Option<f64>) -> FaultWindow {
        FaultWindow {
            end_s,
            ..FaultWindow::opened(kind, target, 3.0, Vec::new())
        }
    }

    /// A stop hook the rollback ran goes to its fault's open window, which
    /// it ends; an ended window or another fault's gets nothing.
    #[test]
    fn stop_hooks_of_the_rollback_join_their_open_fault() {
        let run = crate::actuators::HookRun::Command(crate::actuators::command::CommandRun {
            argv: vec!["true".into()],
            exit_code: Some(0),
            timed_out: false,
            elapsed_s: 0.01,
            stdout: String::new(),
            stderr: String::new(),
        });
        let action = FaultAction::Command {
            target: "eu-west-1".into(),
            on: false,
            start: vec!["false".into()],
            stop: vec!["true".into()],
            timeout_s: 5.0,
        };
        let mut windows = vec![
            window("command", "eu-west-1", Some(5.0)),
            window("evacuate", "eu-west-1", None),
            window("command", "eu-west-1", None),
        ];
        attach_stop_hooks(&mut windows, &[(action, run.clone())], 9.5);
        assert!(windows[0].hooks.is_empty() && windows[1].hooks.is_empty());
        assert_eq!(windows[2].hooks, vec![run]);
        assert_eq!(windows[2].end_s, Some(9.5));
        assert_eq!(windows[1].end_s, None);
    }

    fn info(regions: &[&str], instances_per_region: u8) -> DeploymentInfo {
        DeploymentInfo {
            regions: regions
                .iter()
                .enumerate()
                .map(|(offset, name)| RegionInfo {
                    name: (*name).to_owned(),
                    index: offset as u8 + 1,
                    instances: Vec::new(),
                    controller_http: "127.0.0.1:1".parse().unwrap(),
                    controller_dns: "127.0.0.1:2".parse().unwrap(),
                    client_address: "127.0.0.1".parse().unwrap(),
                    resolver: "127.0.0.1:3".parse().unwrap(),
                    host: None,
                })
                .collect(),
            instances_per_region,
            controller: ControllerSettings::production(),
            wan: Some(crate::spec::Wan::default()),
            api_key: String::new(),
            service_name: String::new(),
            ca_pem: String::new(),
            database_url: String::new(),
            run_dir: PathBuf::new(),
            bin_dir: PathBuf::new(),
            postgres_version: String::new(),
            route53: None,
        }
    }

    #[test]
    fn an_attached_topology_must_match_the_drill() {
        let wanted = Topology::default();
        let production = ControllerSettings::production();
        let same = info(&["us-east-1", "eu-west-1", "ap-southeast-1"], 2);
        check_topology(&wanted, &production, &same).unwrap();
        // The lease transfer is the drill's to send with its kill: a drill
        // that models one runs on a `chaos up` of the default WAN.
        let mut leases = wanted.clone();
        leases.wan.as_mut().unwrap().lease_transfer_s = 5.0;
        check_topology(&leases, &production, &same).unwrap();
        leases.wan.as_mut().unwrap().jitter_ms = 9.0;
        assert!(check_topology(&leases, &production, &same).is_err());

        let mut other = info(&["us-east-1", "eu-west-1"], 3);
        other.wan = None;
        let error = check_topology(&wanted, &production, &other)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(
                "regions: the drill wants [us-east-1, eu-west-1, ap-southeast-1], \
                 the deployment has [us-east-1, eu-west-1]"
            ),
            "{error}"
        );
        assert!(
            error.contains("instances_per_region: the drill wants 2, the deployment has 3"),
            "{error}"
        );
        assert!(
            error.contains("wan: the drill wants the default WAN, the deployment has none"),
            "{error}"
        );
        assert!(!error.contains("probe.interval_ms"), "{error}");

        let fast = ControllerSettings::new(&crate::controller_settings::ControllerOverrides {
            dns_ttl_s: Some(1),
            ..Default::default()
        })
        .unwrap();
        let error = check_topology(&wanted, &fast, &same)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("controller dns.ttl_seconds: the drill wants 1, the deployment has 30"),
            "{error}"
        );
    }
}
