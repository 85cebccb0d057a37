//! Running one drill: bring the deployment up, seed the ledger, run the
//! load while the method's faults come and go, roll back, verify, report,
//! tear down.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::sync::Mutex as AsyncMutex;
use uuid::Uuid;

use crate::analysis::{self, DnsObservation};
use crate::deployment::{Deployment, Options, SERVICE_NAME};
use crate::load::{self, LiveCounters, Operation, Plan, Target};
use crate::model::{ControllerEvent, DrillReport, FaultWindow, Verdict};
use crate::spec::{Drill, Fault, FaultKind, Rollback};

/// Opening balance of every seeded account.
const OPENING_BALANCE: i64 = 1_000_000;

/// How to run a drill.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    pub drill_file: PathBuf,
    pub report_dir: PathBuf,
    pub bin_dir: PathBuf,
    pub database_url: Option<String>,
}

/// Runs the drill and writes its report; the caller decides the exit code.
pub async fn run(options: DrillOptions) -> anyhow::Result<DrillReport> {
    let drill = Drill::load(&options.drill_file)?;
    std::fs::create_dir_all(&options.report_dir)
        .with_context(|| format!("cannot create {}", options.report_dir.display()))?;
    eprintln!(
        "chaos: {} — bringing up {} regions",
        drill.title,
        drill.topology.regions.len()
    );
    let deployment = Deployment::start(Options {
        regions: drill.topology.regions.clone(),
        instances_per_region: drill.topology.instances_per_region,
        probe_interval_ms: drill.topology.probe_interval_ms,
        dns_ttl_s: drill.topology.dns_ttl_s,
        database_url: options.database_url.clone(),
        run_dir: options.report_dir.join("run"),
        bin_dir: options.bin_dir.clone(),
    })
    .await?;
    eprint!("{}", deployment.endpoints());
    let deployment = Arc::new(AsyncMutex::new(deployment));
    let result = run_on(&drill, &options, deployment.clone()).await;
    deployment.lock().await.shutdown().await;
    result
}

async fn run_on(
    drill: &Drill,
    options: &DrillOptions,
    deployment: Arc<AsyncMutex<Deployment>>,
) -> anyhow::Result<DrillReport> {
    let (target, database_url, instances, postgres_version) = {
        let d = deployment.lock().await;
        (
            target_of(&d, drill),
            d.database_url.clone(),
            d.instance_addresses(),
            d.postgres_version(),
        )
    };
    let accounts = seed(&instances, drill.load.accounts).await?;
    let total_before = OPENING_BALANCE * i64::from(drill.load.accounts);

    // Rollbacks are registered before any fault.
    let mut rollbacks: Vec<Rollback> = drill.rollbacks.clone();
    if !rollbacks.contains(&Rollback::HealNetwork) {
        rollbacks.push(Rollback::HealNetwork);
    }
    if !rollbacks.contains(&Rollback::RestoreProcesses) {
        rollbacks.push(Rollback::RestoreProcesses);
    }

    let duration = Duration::from_secs(u64::from(drill.load.duration_s));
    let t0 = Instant::now() + Duration::from_millis(500);
    let t0_wall: DateTime<Utc> = Utc::now() + chrono::Duration::milliseconds(500);
    let live = Arc::new(LiveCounters::default());
    let abort = Arc::new(AtomicBool::new(false));
    let abort_reason: Arc<Mutex<Option<String>>> = Arc::default();

    let load = tokio::spawn(load::run(
        Plan {
            client_regions: drill.client_regions(),
            rate_per_client_region: drill.load.rate_per_client_region,
            write_ratio: drill.load.write_ratio,
            duration,
            request_timeout: Duration::from_millis(drill.load.request_timeout_ms),
            accounts,
            seed: drill.seed,
        },
        target.clone(),
        t0,
        live.clone(),
        abort.clone(),
    ));
    let dns_stop = Arc::new(AtomicBool::new(false));
    let dns_watch = tokio::spawn(watch_dns(
        target.clone(),
        drill.client_regions(),
        t0,
        dns_stop.clone(),
    ));
    let faults = Arc::new(Mutex::new(Vec::<FaultWindow>::new()));
    let schedule = tokio::spawn(run_method(
        drill.method.clone(),
        deployment.clone(),
        t0,
        faults.clone(),
        abort.clone(),
    ));
    monitor(drill, t0, duration, &live, &abort, &abort_reason, &faults).await;

    let history = load.await.context("load task")?;
    schedule.abort();
    let _ = schedule.await;
    // Roll back in reverse order of registration.
    {
        let mut d = deployment.lock().await;
        for rollback in rollbacks.iter().rev() {
            if let Err(error) = apply_rollback(&mut d, rollback).await {
                eprintln!("chaos: rollback {rollback:?} failed: {error:#}");
            }
        }
    }
    dns_stop.store(true, Ordering::Relaxed);
    let dns = dns_watch.await.unwrap_or_default();
    let end_s = t0.elapsed().as_secs_f64();
    let mut fault_windows = faults.lock().expect("faults lock").clone();
    for window in &mut fault_windows {
        window
            .end_s
            .get_or_insert(end_s.min(duration.as_secs_f64()));
    }

    // Verification.
    let all_instances: Vec<_> = instances.values().flatten().copied().collect();
    let summary = crate::verify::api_summary(&all_instances).await?;
    let mut totals = analysis::totals(&history);
    totals.total_balance_before = total_before;
    crate::verify::check_writes(&database_url, &history, &mut totals).await?;
    let api_total = summary["total_balance"].as_i64().unwrap_or(-1);
    if api_total != totals.total_balance_after {
        eprintln!(
            "chaos: API summary total {api_total} differs from SQL total {}",
            totals.total_balance_after
        );
        totals.total_balance_after = api_total;
    }

    let events = controller_events(&database_url, t0_wall, &dns, &fault_windows).await?;
    let drained_regions: BTreeSet<String> = events
        .iter()
        .filter(|e| e.kind == "drain_flag")
        .filter_map(|e| e.region.clone())
        .collect();
    let timeline = analysis::timeline(&history, &drill.client_regions(), drill.load.duration_s);
    let phases = analysis::phases(drill, &fault_windows, &events, &dns, &timeline);
    let checks = analysis::checks(drill, &history, &timeline, &totals, &drained_regions);
    let load_seconds = duration.as_secs_f64().min(end_s);
    let error_budget = analysis::error_budget(&totals, load_seconds);
    let abort_reason = abort_reason.lock().expect("abort lock").clone();
    let verdict = if abort_reason.is_some() {
        Verdict::Aborted
    } else if checks.iter().all(|c| c.passed) {
        Verdict::Passed
    } else {
        Verdict::Failed
    };

    let mut versions = BTreeMap::new();
    versions.insert("chaos".to_owned(), env!("CARGO_PKG_VERSION").to_owned());
    for binary in ["service", "failover-controller"] {
        versions.insert(
            binary.to_owned(),
            binary_version(&options.bin_dir.join(binary)),
        );
    }
    versions.insert("postgresql".to_owned(), postgres_version);

    let report = DrillReport {
        title: drill.title.clone(),
        drill_file: options.drill_file.display().to_string(),
        seed: drill.seed,
        started_at: t0_wall,
        duration_s: load_seconds,
        versions,
        configuration: serde_json::json!({
            "topology": drill.topology,
            "load": drill.load,
            "hypothesis": drill.hypothesis,
            "method": drill.method,
            "rollbacks": rollbacks,
            "abort": drill.abort,
            "service_name": SERVICE_NAME,
        }),
        verdict,
        abort_reason,
        checks,
        regions: drill.topology.regions.clone(),
        client_regions: drill.client_regions(),
        timeline,
        faults: fault_windows,
        events,
        phases,
        totals,
        error_budget,
    };
    write_history(&options.report_dir.join("history.jsonl"), &history)?;
    crate::report::write_all(&report, &options.report_dir)?;
    Ok(report)
}

/// What the load generator needs from the deployment.
fn target_of(deployment: &Deployment, drill: &Drill) -> Target {
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
        client_addresses: regions
            .iter()
            .map(|r| (r.name.clone(), r.client_address))
            .collect(),
        instances: deployment.instance_addresses(),
        preference,
    }
}

/// Creates the drill's accounts through the API.
async fn seed(
    instances: &BTreeMap<String, Vec<std::net::SocketAddr>>,
    count: u32,
) -> anyhow::Result<Vec<Uuid>> {
    let client = reqwest::Client::new();
    let addresses: Vec<_> = instances.values().flatten().copied().collect();
    let mut accounts = Vec::new();
    for n in 0..count {
        let address = addresses[n as usize % addresses.len()];
        let response = client
            .post(format!("http://{address}/v1/accounts"))
            .header("Idempotency-Key", format!("seed-{n}-{}", Uuid::new_v4()))
            .json(&serde_json::json!({"owner": format!("drill-{n}"), "opening_balance": OPENING_BALANCE}))
            .send()
            .await
            .context("seeding accounts")?;
        anyhow::ensure!(
            response.status().is_success(),
            "seeding account {n}: {}",
            response.status()
        );
        let body: serde_json::Value = response.json().await?;
        accounts.push(body["id"].as_str().context("account id")?.parse()?);
    }
    Ok(accounts)
}

/// Applies each fault at its offset and undoes it after its duration.
async fn run_method(
    method: Vec<Fault>,
    deployment: Arc<AsyncMutex<Deployment>>,
    t0: Instant,
    windows: Arc<Mutex<Vec<FaultWindow>>>,
    abort: Arc<AtomicBool>,
) {
    // Timeline of (time, fault index, start?).
    let mut steps: Vec<(f64, usize, bool)> = Vec::new();
    for (index, fault) in method.iter().enumerate() {
        steps.push((fault.start_s, index, true));
        if let Some(duration) = fault.duration_s {
            steps.push((fault.start_s + duration, index, false));
        }
    }
    steps.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut leader_targets: BTreeMap<usize, String> = BTreeMap::new();
    for (at, index, start) in steps {
        tokio::time::sleep_until((t0 + Duration::from_secs_f64(at)).into()).await;
        if abort.load(Ordering::Relaxed) {
            return;
        }
        let fault = &method[index];
        let mut d = deployment.lock().await;
        let target = if fault.fault == FaultKind::LeaderKill {
            match leader_targets.get(&index) {
                Some(target) => target.clone(),
                None => d.leader().await.unwrap_or_default(),
            }
        } else {
            fault.target.clone()
        };
        let result = apply_fault(&mut d, fault, &target, start);
        let now = t0.elapsed().as_secs_f64();
        match result {
            Ok(()) if start => {
                leader_targets.insert(index, target.clone());
                eprintln!("chaos: t={now:.1}s {} {target}", fault.fault.as_str());
                windows.lock().expect("faults lock").push(FaultWindow {
                    kind: fault.fault.as_str().to_owned(),
                    target,
                    start_s: now,
                    end_s: None,
                });
            }
            Ok(()) => {
                eprintln!(
                    "chaos: t={now:.1}s restored {} {target}",
                    fault.fault.as_str()
                );
                if let Some(window) = windows.lock().expect("faults lock").iter_mut().find(|w| {
                    w.target == target && w.kind == fault.fault.as_str() && w.end_s.is_none()
                }) {
                    window.end_s = Some(now);
                }
            }
            Err(error) => eprintln!(
                "chaos: fault {} on {target} failed: {error:#}",
                fault.fault.as_str()
            ),
        }
    }
}

fn apply_fault(d: &mut Deployment, fault: &Fault, target: &str, start: bool) -> anyhow::Result<()> {
    match (fault.fault, start) {
        (FaultKind::RegionKill, true) => d.kill_region(target),
        (FaultKind::RegionKill, false) => d.start_region(target),
        (FaultKind::RegionBlackhole, on) => d.blackhole_region(target, on),
        (FaultKind::LeaderKill, true) => d.kill_controller(target),
        (FaultKind::LeaderKill, false) => d.start_region(target),
        (FaultKind::ProberPartition, on) => d.partition_prober(target, on),
        (FaultKind::Latency, true) => {
            d.delay_region(target, fault.delay_ms.map(Duration::from_millis))
        }
        (FaultKind::Latency, false) => d.delay_region(target, None),
        (FaultKind::DbStall, on) => d.stall_database(target, on),
    }
}

async fn apply_rollback(d: &mut Deployment, rollback: &Rollback) -> anyhow::Result<()> {
    match rollback {
        Rollback::HealNetwork => {
            for name in d.options.regions.clone() {
                d.blackhole_region(&name, false)?;
                d.partition_prober(&name, false)?;
                d.delay_region(&name, None)?;
                d.stall_database(&name, false)?;
            }
            Ok(())
        }
        Rollback::RestoreProcesses => d.restore_all(),
        Rollback::ClearDrainFlags => {
            let (client, connection) =
                tokio_postgres::connect(&d.database_url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            client
                .batch_execute("UPDATE region_state SET drained = false")
                .await?;
            Ok(())
        }
    }
}

/// Prints progress each second and raises the abort flag when the error
/// budget burn passes the drill's limit.
async fn monitor(
    drill: &Drill,
    t0: Instant,
    duration: Duration,
    live: &LiveCounters,
    abort: &AtomicBool,
    abort_reason: &Mutex<Option<String>>,
    faults: &Mutex<Vec<FaultWindow>>,
) {
    let total_rate = drill.load.rate_per_client_region * drill.client_regions().len() as f64;
    let budget_requests = 1e-4 * 30.0 * 86_400.0 * total_rate;
    tokio::time::sleep_until(t0.into()).await;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    while t0.elapsed() < duration + Duration::from_millis(drill.load.request_timeout_ms * 2) {
        ticker.tick().await;
        let window = live.take_window();
        let active: Vec<String> = faults
            .lock()
            .expect("faults lock")
            .iter()
            .filter(|f| f.end_s.is_none())
            .map(|f| format!("{} {}", f.kind, f.target))
            .collect();
        let phase = if t0.elapsed() > duration {
            "draining load".to_owned()
        } else if active.is_empty() {
            "steady".to_owned()
        } else {
            format!("fault: {}", active.join(", "))
        };
        let ratios: Vec<String> = window
            .iter()
            .map(|(region, (ok, bad))| {
                let total = ok + bad;
                let ratio = if total == 0 {
                    100.0
                } else {
                    *ok as f64 * 100.0 / total as f64
                };
                format!("{region} {ratio:5.1}%")
            })
            .collect();
        eprintln!(
            "chaos: t={:5.1}s  {:<40} {}",
            t0.elapsed().as_secs_f64(),
            phase,
            ratios.join("  ")
        );
        let burned = live.failed_total.load(Ordering::Relaxed) as f64 / budget_requests;
        if burned > drill.abort.max_error_budget_share && !abort.load(Ordering::Relaxed) {
            let reason = format!(
                "{:.1}% of the 30-day error budget burned, above the abort limit of {:.1}%",
                burned * 100.0,
                drill.abort.max_error_budget_share * 100.0
            );
            eprintln!("chaos: ABORT: {reason}");
            *abort_reason.lock().expect("abort lock") = Some(reason);
            abort.store(true, Ordering::Relaxed);
        }
    }
}

/// Polls the controllers' DNS from every client region every 100 ms.
async fn watch_dns(
    target: Target,
    clients: Vec<String>,
    t0: Instant,
    stop: Arc<AtomicBool>,
) -> Vec<DnsObservation> {
    let resolvers: Vec<_> = clients
        .iter()
        .map(|c| {
            (
                c.clone(),
                load::resolver(&target.dns_servers, target.client_addresses[c], false),
            )
        })
        .collect();
    let mut observations = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        for (client, resolver) in &resolvers {
            if let Ok(answer) = resolver.lookup_ip(SERVICE_NAME).await {
                let regions = answer
                    .iter()
                    .filter_map(|ip| {
                        target
                            .instances
                            .iter()
                            .find(|(_, addresses)| addresses.iter().any(|a| a.ip() == ip))
                            .map(|(region, _)| region.clone())
                    })
                    .collect();
                observations.push(DnsObservation {
                    t: t0.elapsed().as_secs_f64() - 0.0,
                    client: client.clone(),
                    regions,
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    observations
}

/// Controller events from the audit log, plus the DNS changes seen by the
/// watcher, in time order.
async fn controller_events(
    database_url: &str,
    t0_wall: DateTime<Utc>,
    dns: &[DnsObservation],
    faults: &[FaultWindow],
) -> anyhow::Result<Vec<ControllerEvent>> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT extract(epoch FROM at)::FLOAT8, kind, region, name, outcome, detail, controller_id \
             FROM failover_audit WHERE at >= to_timestamp($1::FLOAT8) ORDER BY at",
            &[&(t0_wall.timestamp_micros() as f64 / 1e6 - 5.0)],
        )
        .await
        .context("cannot read the controllers' audit log")?;
    let t0_epoch = t0_wall.timestamp_micros() as f64 / 1e6;
    let mut events = Vec::new();
    for row in rows {
        let at: f64 = row.get(0);
        let kind: String = row.get(1);
        let name: String = row.get(3);
        let outcome: String = row.get(4);
        let detail: String = row.get(5);
        let controller: String = row.get(6);
        let kind = match (kind.as_str(), name.as_str()) {
            ("action", "drain_flag_set") if outcome == "ok" => "drain_flag",
            ("action", "drain_flag_clear") if outcome == "ok" => "restore",
            ("action", n) if n.contains("route53") => "dns_change",
            ("decision", _) => "decision",
            ("lease", _) => "leader_change",
            ("override", _) => "override",
            _ => "action",
        };
        events.push(ControllerEvent {
            at_s: at - t0_epoch,
            kind: kind.to_owned(),
            region: row.get(2),
            detail: format!("{name} ({outcome}) by {controller}: {detail}"),
        });
    }
    // DNS changes as seen by clients: when the faulted region is gone from
    // every client region's answers, and when it is back in any.
    for fault in faults {
        if let Some(gone) = crate::analysis::dns_gone_at(dns, &fault.target, fault.start_s) {
            events.push(ControllerEvent {
                at_s: gone,
                kind: "dns_change".to_owned(),
                region: Some(fault.target.clone()),
                detail: format!(
                    "{} gone from the DNS answers of every client region",
                    fault.target
                ),
            });
            if let Some(back) = dns
                .iter()
                .find(|o| o.t > gone && o.regions.contains(&fault.target))
            {
                events.push(ControllerEvent {
                    at_s: back.t,
                    kind: "dns_change".to_owned(),
                    region: Some(fault.target.clone()),
                    detail: format!(
                        "{} back in the DNS answers ({} clients)",
                        fault.target, back.client
                    ),
                });
            }
        }
    }
    events.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    Ok(events)
}

fn write_history(path: &Path, history: &[Operation]) -> anyhow::Result<()> {
    let mut text = String::new();
    for operation in history {
        text.push_str(&serde_json::to_string(operation)?);
        text.push('\n');
    }
    let temporary = path.with_extension("jsonl.tmp");
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)?;
    Ok(())
}

fn binary_version(path: &Path) -> String {
    std::process::Command::new(path)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}
