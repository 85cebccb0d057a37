//! After the fault phase: seeding before it, and then verification, the
//! controllers' audit log, the history and the report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{DeploymentSource, DrillOptions, OPENING_BALANCE};
use crate::analysis::{self, DnsObservation};
use crate::deployment::DeploymentInfo;
use crate::load::Operation;
use crate::model::{ControllerEvent, DrillReport, FaultWindow, Verdict};
use crate::spec::{Drill, Rollback};

/// What the fault phase leaves for verification and the report.
pub(super) struct Observed {
    pub history: Vec<Operation>,
    pub dns: Vec<DnsObservation>,
    pub fault_windows: Vec<FaultWindow>,
    pub t0_wall: DateTime<Utc>,
    pub load_seconds: f64,
    pub abort_reason: Option<String>,
    pub rollbacks: Vec<Rollback>,
    /// The seeded accounts and their opening balances.
    pub opening: BTreeMap<Uuid, i64>,
    /// What the outage drills watched and counted.
    pub outage: (crate::outage::watch::Watched, crate::outage::Counted),
}

/// Verifies the ledger and every write, reads the controllers' audit log,
/// judges the hypothesis and writes the history and the report.
pub(super) async fn conclude(
    drill: &Drill,
    options: &DrillOptions,
    info: &DeploymentInfo,
    observed: Observed,
) -> anyhow::Result<DrillReport> {
    let Observed {
        history,
        dns,
        mut fault_windows,
        t0_wall,
        load_seconds,
        abort_reason,
        rollbacks,
        opening,
        outage: (watched, counted),
    } = observed;
    let database_url = &info.database_url;
    let all_instances: Vec<_> = info
        .regions
        .iter()
        .flat_map(|r| r.instances.clone())
        .collect();
    let https = info.instance_https(Some(std::time::Duration::from_secs(2)))?;
    let summary = crate::verify::api_summary(&all_instances, &https).await?;
    let mut totals = analysis::totals(&history);
    totals.total_balance_before = opening.values().sum();
    let reconciliation =
        crate::verify::check_ledger(database_url, &history, &opening, &mut totals).await?;
    // The API's summary covers the whole ledger (an attached deployment may
    // hold earlier drills' accounts), so it is a cross-check of the
    // service's read path, not of this drill's accounts.
    if let Some(api_accounts) = summary["accounts"].as_i64() {
        if api_accounts < opening.len() as i64 {
            eprintln!(
                "chaos: the API's ledger summary counts {api_accounts} accounts, fewer than the \
                 drill's {}",
                opening.len()
            );
        }
    }

    for window in &mut fault_windows {
        window.dns = analysis::fault_dns(&dns, &window.target, window.start_s);
    }
    for index in 0..fault_windows.len() {
        fault_windows[index].failback =
            crate::failback::fault_failback(&dns, &history, &fault_windows, index);
    }
    // After every way back is known: a region out across several faults
    // returns in a later one's.
    for index in 0..fault_windows.len() {
        fault_windows[index].reach_after_leaving =
            crate::stickiness::reach_after_leaving(&fault_windows, index, &history);
    }
    let failed_operations =
        crate::failures::failed_operations(&history, &fault_windows, &reconciliation.applied);
    let events = controller_events(database_url, t0_wall, &dns, &fault_windows).await?;
    let drained_regions: BTreeSet<String> = events
        .iter()
        .filter(|e| e.kind == "drain_flag")
        .filter_map(|e| e.region.clone())
        .collect();
    let timeline = analysis::timeline(&history, &drill.client_regions(), drill.load.duration_s);
    let phases = analysis::phases(drill, &fault_windows, &events, &dns, &timeline);
    // A false drain fails every drill: unless the file lists the regions
    // that must never be drained, that is every region no fault hit and
    // none that must drain.
    let mut judged = drill.clone();
    if judged.hypothesis.never_drained.is_empty() {
        judged.hypothesis.never_drained = judged
            .topology
            .regions
            .iter()
            .filter(|region| !fault_windows.iter().any(|f| &f.target == *region))
            .filter(|region| !judged.hypothesis.must_drain.contains(region))
            .cloned()
            .collect();
    }
    let drill = &judged;
    let mut checks = analysis::checks(drill, &history, &timeline, &totals, &drained_regions);
    checks.extend(analysis::never_out_of_dns_checks(drill, &dns));
    checks.extend(crate::failback::checks(drill, &fault_windows));
    checks.extend(crate::availability::checks(drill, &history));
    checks.extend(crate::outage::checks::checks(
        &crate::outage::checks::Inputs {
            drill,
            faults: &fault_windows,
            timeline: &timeline,
            events: &events,
            watched: &watched,
            counted: &counted,
        },
    ));
    let objectives = crate::objectives::measure(&crate::objectives::Inputs {
        objectives: drill.objectives.as_ref(),
        faults: &fault_windows,
        timeline: &timeline,
        served_at_or_above: drill.hypothesis.bad_second_below,
        load_end_s: load_seconds,
        phases: &phases,
        totals: &totals,
    });
    checks.extend(crate::objectives::checks(&objectives));
    let error_budget = analysis::error_budget(&totals, load_seconds);
    let verdict = Verdict::judge(abort_reason.is_some(), &checks);

    let mut versions = BTreeMap::new();
    versions.insert("chaos".to_owned(), env!("CARGO_PKG_VERSION").to_owned());
    for binary in ["service", "failover-controller"] {
        versions.insert(
            binary.to_owned(),
            binary_version(&info.bin_dir.join(binary)),
        );
    }
    versions.insert("postgresql".to_owned(), info.postgres_version.clone());

    let measured_rtt_ms = measured_rtt(info).await;
    let report = DrillReport {
        title: drill.title.clone(),
        drill_file: options.drill_file.display().to_string(),
        seed: drill.seed,
        started_at: t0_wall,
        duration_s: load_seconds,
        versions,
        configuration: serde_json::json!({
            "topology": drill.topology,
            // What the controllers ran with: production's settings (k8s/),
            // each marked when the drill overrode it.
            "controller": info.controller,
            "controller_overrides": info.controller.overridden(),
            "load": drill.load,
            "hypothesis": drill.hypothesis,
            "objectives": drill.objectives,
            "method": drill.method,
            "rollbacks": rollbacks,
            "abort": drill.abort,
            "service_name": info.service_name,
            "database": database_settings(database_url).await,
            "attached": !matches!(options.deployment, DeploymentSource::Start { .. }),
            "measured_rtt_ms": measured_rtt_ms,
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
        ledger_findings: reconciliation.findings,
        objectives: Some(objectives),
        failed_operations,
        stop: None,
    };
    write_history(&options.report_dir.join("history.jsonl"), &history)?;
    // What the outage watchers saw, for a reader who doubts a check.
    std::fs::write(
        options.report_dir.join("outage.json"),
        serde_json::to_vec_pretty(&serde_json::json!({"counted": counted, "watched": watched}))?,
    )?;
    crate::report::write_all(&report, &options.report_dir)?;
    Ok(report)
}

/// The round trips the controllers measured at the end of the drill, by
/// vantage point and probed region (smoothed probe round trips, server
/// time included): the WAN as the probes met it, not as it was configured.
/// Asks each controller in turn until one answers; empty when none does.
async fn measured_rtt(info: &DeploymentInfo) -> BTreeMap<String, BTreeMap<String, f64>> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .expect("a plain HTTP client builds");
    for region in &info.regions {
        let url = format!("http://{}/status", region.controller_http);
        let Ok(response) = client.get(&url).send().await else {
            continue;
        };
        let Ok(status) = response.json::<serde_json::Value>().await else {
            continue;
        };
        let mut matrix: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
        for probed in status["regions"].as_array().into_iter().flatten() {
            let Some(name) = probed["region"].as_str() else {
                continue;
            };
            for (vantage, vote) in probed["votes"].as_object().into_iter().flatten() {
                if let Some(rtt) = vote["rtt_ms"].as_f64() {
                    matrix
                        .entry(vantage.clone())
                        .or_default()
                        .insert(name.to_owned(), (rtt * 10.0).round() / 10.0);
                }
            }
        }
        if !matrix.is_empty() {
            return matrix;
        }
    }
    BTreeMap::new()
}

/// Creates the drill's accounts through the API, sixteen at a time (across
/// a WAN each creation waits for its commit's round trip), in order.
/// Attempts per seeded account before the drill gives up.
const SEED_ATTEMPTS: u32 = 5;

pub(super) async fn seed(
    instances: &BTreeMap<String, Vec<std::net::SocketAddr>>,
    https: &crate::deployment::instances::InstanceHttps,
    count: u32,
) -> anyhow::Result<Vec<Uuid>> {
    use futures_util::stream::{self, StreamExt, TryStreamExt};
    let addresses: Vec<_> = instances.values().flatten().copied().collect();
    stream::iter(0..count)
        .map(|n| {
            let client = https.clone();
            let address = addresses[n as usize % addresses.len()];
            async move {
                // One key for every attempt: a retry of a creation that did
                // commit is answered with the same account.
                let key = format!("seed-{n}-{}", Uuid::new_v4());
                let body = serde_json::json!({"owner": format!("drill-{n}"), "opening_balance": OPENING_BALANCE});
                let mut attempt = 0u32;
                loop {
                    attempt += 1;
                    let outcome = client
                        .post(address, "/v1/accounts")
                        .header("Idempotency-Key", &key)
                        .json(&body)
                        .send()
                        .await;
                    // A 5xx or no answer is retried, as any client of the
                    // API would (a serialization conflict that outlived the
                    // service's own retries, a connection the server ended):
                    // the seeding must not fail a drill the deployment
                    // would have served.
                    let retry_after = match outcome {
                        Ok(response) if response.status().is_success() => {
                            let answer: serde_json::Value = response.json().await?;
                            let id: Uuid = answer["id"].as_str().context("account id")?.parse()?;
                            return Ok(id);
                        }
                        Ok(response) if response.status().is_server_error() && attempt < SEED_ATTEMPTS => {
                            response
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.parse::<u64>().ok())
                                .map(std::time::Duration::from_secs)
                        }
                        Ok(response) => anyhow::bail!(
                            "seeding account {n}: {} (attempt {attempt} of {SEED_ATTEMPTS})",
                            response.status()
                        ),
                        Err(_) if attempt < SEED_ATTEMPTS => None,
                        Err(error) => {
                            return Err(anyhow::Error::new(error).context(format!(
                                "seeding account {n} (attempt {attempt} of {SEED_ATTEMPTS})"
                            )))
                        }
                    };
                    let backoff = std::time::Duration::from_millis(250 << attempt.min(4));
                    tokio::time::sleep(retry_after.unwrap_or(backoff).min(std::time::Duration::from_secs(2))).await;
                }
            }
        })
        .buffered(16)
        .try_collect()
        .await
}

/// Controller events from the audit log, plus the DNS changes seen by the
/// watcher, in time order.
async fn controller_events(
    database_url: &str,
    t0_wall: DateTime<Utc>,
    dns: &[DnsObservation],
    faults: &[FaultWindow],
) -> anyhow::Result<Vec<ControllerEvent>> {
    let client = crate::database::connect(database_url).await?;
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
    // every client region's answers, and when it is back in any; none for a
    // fault whose region was already out of DNS when it began.
    events.extend(analysis::dns_events(dns, faults));
    events.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    Ok(events)
}

/// The server settings a reader needs to trust "no acknowledged write
/// lost": whether a commit was on disk before it was acknowledged.
async fn database_settings(database_url: &str) -> serde_json::Value {
    let read = async {
        let client = crate::database::connect(database_url).await?;
        let mut settings = serde_json::Map::new();
        for name in ["fsync", "synchronous_commit", "full_page_writes"] {
            let row = client.query_one(&format!("SHOW {name}"), &[]).await?;
            settings.insert(name.to_owned(), row.get::<_, String>(0).into());
        }
        Ok::<_, anyhow::Error>(serde_json::Value::Object(settings))
    };
    read.await
        .unwrap_or_else(|error| serde_json::json!({ "unreadable": format!("{error:#}") }))
}

pub(super) fn write_history(path: &Path, history: &[Operation]) -> anyhow::Result<()> {
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
    // A target known only from its file: the drill has no binaries of it.
    if path.parent().is_none_or(|dir| dir.as_os_str().is_empty()) {
        return "not known (a deployment the drill did not start)".into();
    }
    std::process::Command::new(path)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
#[path = "seed_tests.rs"]
mod seed_tests;
