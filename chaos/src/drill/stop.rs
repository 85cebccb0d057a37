//! The emergency stop: Ctrl-C, SIGTERM or the stop file roll every fault
//! back (the caller does that), then this waits until every region serves
//! and is in DNS again, measures how long that took from the stop, and
//! writes a report whose verdict is `stopped`.
//!
//! After a stop the ledger is not verified: the stop asks for the fastest
//! way back, and the report says so.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{DeploymentSource, DrillOptions};
use crate::analysis;
use crate::deployment::DeploymentInfo;
use crate::journal::rollback::{restore_bound, wait_until_restored};
use crate::load::Operation;
use crate::model::{DrillReport, FaultWindow, HypothesisCheck, StopPhase, StopRecord, Verdict};
use crate::spec::Drill;

/// Exit code of a drill stopped by Ctrl-C, SIGTERM or the stop file, whose
/// rollback left every region serving and in DNS.
pub const STOPPED_EXIT_CODE: i32 = 4;
/// Exit code of a stopped drill whose rollback did not bring every region
/// back within the bound: someone must look.
pub const STOPPED_NOT_RESTORED_EXIT_CODE: i32 = 5;

/// The stop file's name in the report directory, by default.
pub const STOP_FILE: &str = "STOP";

/// A drill stopped before there was anything to report (while its own
/// deployment was still coming up).
#[derive(Debug, thiserror::Error)]
#[error("stopped by {cause} {}; nothing was applied and what was started is stopped", StopPhase::BeforeFault.describe())]
pub struct StoppedEarly {
    pub cause: String,
}

/// Completes, with its cause, once `path` exists; checked five times a
/// second so a stop takes effect within a second. A stop file that already
/// exists is an error: someone asked every drill to stay stopped.
pub fn watch_stop_file(path: PathBuf) -> anyhow::Result<impl Future<Output = String> + Send> {
    if path.exists() {
        anyhow::bail!(
            "the stop file {} exists: a drill does not start while it does (remove it to run)",
            path.display()
        );
    }
    Ok(async move {
        loop {
            if path.exists() {
                return format!("stop file {}", path.display());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// How often the stop URL is read.
const STOP_URL_PERIOD: Duration = Duration::from_secs(1);

/// How long the stop URL may stay unreadable before the drill stops: an
/// emergency stop that cannot be heard counts as one.
const STOP_URL_DEAF_FOR: Duration = Duration::from_secs(10);

/// Completes, with its cause, once `url` answers 2xx (the remote twin of
/// the stop file: a flag any operator can raise, for every drill that
/// watches it), or once it has answered nothing but errors for
/// [`STOP_URL_DEAF_FOR`]; 404 and 410 mean "carry on". Read once a second.
/// A stop URL that already says stop, or cannot be read, is an error: the
/// drill does not start.
pub async fn watch_stop_url(url: String) -> anyhow::Result<impl Future<Output = String> + Send> {
    // A fresh connection per read: a pooled one could outlive the server
    // that should answer it.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(0)
        .build()?;
    match read_stop_url(&client, &url).await {
        StopUrl::CarryOn => {}
        StopUrl::Stop(status) => anyhow::bail!(
            "the stop URL {url} answers {status}: a drill does not start while it says stop"
        ),
        StopUrl::Unreadable(why) => anyhow::bail!(
            "the stop URL {url} cannot be read ({why}): a drill does not start without a way \
             to stop it"
        ),
    }
    Ok(async move {
        let mut readable_at = Instant::now();
        loop {
            tokio::time::sleep(STOP_URL_PERIOD).await;
            match read_stop_url(&client, &url).await {
                StopUrl::CarryOn => readable_at = Instant::now(),
                StopUrl::Stop(status) => return format!("stop URL {url} (answered {status})"),
                StopUrl::Unreadable(why) if readable_at.elapsed() >= STOP_URL_DEAF_FOR => {
                    return format!(
                        "stop URL {url} unreadable for {} s ({why})",
                        STOP_URL_DEAF_FOR.as_secs()
                    )
                }
                StopUrl::Unreadable(_) => {}
            }
        }
    })
}

enum StopUrl {
    CarryOn,
    Stop(reqwest::StatusCode),
    Unreadable(String),
}

async fn read_stop_url(client: &reqwest::Client, url: &str) -> StopUrl {
    match client.get(url).send().await {
        Ok(response) if response.status().is_success() => StopUrl::Stop(response.status()),
        Ok(response)
            if matches!(
                response.status(),
                reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::GONE
            ) =>
        {
            StopUrl::CarryOn
        }
        Ok(response) => StopUrl::Unreadable(format!("answered {}", response.status())),
        Err(error) => StopUrl::Unreadable(error.without_url().to_string()),
    }
}

/// When and why the drill was stopped.
#[derive(Debug, Clone)]
pub(super) struct Stopped {
    pub cause: String,
    pub at: Instant,
    pub phase: StopPhase,
    /// Since the start of the load, when it had started.
    pub at_s: Option<f64>,
}

impl Stopped {
    pub fn now(cause: String, phase: StopPhase, t0: Option<Instant>) -> Self {
        let at = Instant::now();
        let at_s = t0.filter(|t0| at >= *t0).map(|t0| (at - t0).as_secs_f64());
        eprintln!("chaos: STOP ({cause}) {}: rolling back", phase.describe());
        Self {
            cause,
            at,
            phase,
            at_s,
        }
    }
}

/// The phase from the journal and the fault windows: a fault is applied
/// while the journal has an entry not undone (also one whose apply was
/// still in flight); after windows that all ended, the drill is on its way
/// back.
pub(super) fn phase_of(journal: &Path, windows: &[FaultWindow]) -> StopPhase {
    let applied = crate::journal::read(journal)
        .map(|records| !crate::journal::pending(&records).is_empty())
        .unwrap_or(false);
    if applied || windows.iter().any(|w| w.end_s.is_none()) {
        StopPhase::Fault
    } else if windows.is_empty() {
        StopPhase::BeforeFault
    } else {
        StopPhase::WayBack
    }
}

/// What the load left when the drill stopped.
pub(super) struct Partial<'a> {
    pub history: &'a [Operation],
    pub windows: Vec<FaultWindow>,
    pub t0_wall: DateTime<Utc>,
}

/// After the rollback: waits until every region serves and is in DNS (up
/// to the controllers' hold-down and some probes), then writes the
/// `stopped` report.
pub(super) async fn conclude_stopped(
    drill: &Drill,
    options: &DrillOptions,
    info: &DeploymentInfo,
    stopped: Stopped,
    partial: Partial<'_>,
) -> anyhow::Result<DrillReport> {
    let bound = restore_bound(info);
    let restored = wait_until_restored(info, stopped.at, bound).await;
    let (restored_after_s, still_wrong) = match restored {
        Ok(after) => (Some(after.as_secs_f64()), Vec::new()),
        Err(wrong) => (None, wrong),
    };
    let record = StopRecord {
        cause: stopped.cause.clone(),
        phase: stopped.phase,
        at_s: stopped.at_s,
        restored_after_s,
        restore_bound_s: bound.as_secs_f64(),
        still_wrong,
    };
    eprintln!("chaos: {}", describe_stop(&record));
    let load_seconds = stopped
        .at_s
        .unwrap_or(0.0)
        .min(f64::from(drill.load.duration_s));
    let mut windows = partial.windows;
    for window in &mut windows {
        window.end_s.get_or_insert(load_seconds);
    }
    let totals = analysis::totals(partial.history);
    let check = HypothesisCheck {
        name: "every region serving and in DNS after the stop".to_owned(),
        expected: format!("within {:.0} s", bound.as_secs_f64()),
        observed: match (record.restored_after_s, record.still_wrong.first()) {
            (Some(after), _) => format!("{after:.1} s"),
            (None, Some(wrong)) => format!("not restored: {wrong}"),
            (None, None) => "not restored".to_owned(),
        },
        passed: record.restored_after_s.is_some(),
    };
    let report = DrillReport {
        objectives: None,
        title: drill.title.clone(),
        drill_file: options.drill_file.display().to_string(),
        seed: drill.seed,
        started_at: partial.t0_wall,
        duration_s: load_seconds,
        versions: [("chaos".to_owned(), env!("CARGO_PKG_VERSION").to_owned())].into(),
        configuration: serde_json::json!({
            "topology": drill.topology,
            "controller": info.controller,
            "load": drill.load,
            "method": drill.method,
            "attached": !matches!(options.deployment, DeploymentSource::Start { .. }),
            "ledger": "not verified: the drill was stopped",
        }),
        verdict: Verdict::Stopped,
        abort_reason: Some(describe_stop(&record)),
        checks: vec![check],
        regions: drill.topology.regions.clone(),
        client_regions: drill.client_regions(),
        timeline: analysis::timeline(
            partial.history,
            &drill.client_regions(),
            load_seconds.ceil() as u32,
        ),
        faults: windows,
        events: Vec::new(),
        phases: Default::default(),
        error_budget: analysis::error_budget(&totals, load_seconds),
        totals,
        ledger_findings: Vec::new(),
        failed_operations: Vec::new(),
        stop: Some(record),
    };
    super::evidence::write_history(&options.report_dir.join("history.jsonl"), partial.history)?;
    crate::report::write_all(&report, &options.report_dir)?;
    Ok(report)
}

/// One sentence for people: what stopped the drill, where, and how the
/// rollback went.
pub fn describe_stop(stop: &StopRecord) -> String {
    let at = stop
        .at_s
        .map(|at| format!(" at t={at:.1} s"))
        .unwrap_or_default();
    let outcome = match stop.restored_after_s {
        Some(after) => format!(
            "every fault rolled back; every region served and was in DNS again {after:.1} s \
             after the stop"
        ),
        None => format!(
            "every fault rolled back, but {:.0} s after the stop not every region was back: {}",
            stop.restore_bound_s,
            stop.still_wrong.join("; ")
        ),
    };
    format!(
        "stopped by {} {}{at}; {outcome}; the ledger was not verified",
        stop.cause,
        stop.phase.describe()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(end_s: Option<f64>) -> FaultWindow {
        FaultWindow {
            end_s,
            ..FaultWindow::opened("region-kill", "eu-west-1", 2.0, Vec::new())
        }
    }

    #[test]
    fn the_phase_follows_the_journal_and_the_windows() {
        let dir = std::env::temp_dir().join(format!("stop-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(crate::journal::JOURNAL_FILE);
        assert_eq!(phase_of(&path, &[]), StopPhase::BeforeFault);
        assert_eq!(phase_of(&path, &[window(Some(4.0))]), StopPhase::WayBack);
        assert_eq!(phase_of(&path, &[window(None)]), StopPhase::Fault);
        // Journaled but its window not yet opened: the apply was in flight.
        let journal = crate::journal::Journal::open(&path).unwrap();
        let deployment = crate::journal::JournalDeployment::InProcess {
            run_dir: dir.clone(),
        };
        let kill = crate::deployment::FaultAction::RegionKill {
            target: "eu-west-1".into(),
            on: true,
        };
        let id = journal.applying(&deployment, &kill).unwrap().unwrap();
        assert_eq!(phase_of(&path, &[]), StopPhase::Fault);
        journal.undone(id, "drill").unwrap();
        assert_eq!(phase_of(&path, &[window(Some(4.0))]), StopPhase::WayBack);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_stop_is_described_with_its_phase_and_restore_time() {
        let mut stop = StopRecord {
            cause: "SIGTERM".into(),
            phase: StopPhase::Fault,
            at_s: Some(5.24),
            restored_after_s: Some(14.31),
            restore_bound_s: 30.0,
            still_wrong: Vec::new(),
        };
        assert_eq!(
            describe_stop(&stop),
            "stopped by SIGTERM during a fault at t=5.2 s; every fault rolled back; every region \
             served and was in DNS again 14.3 s after the stop; the ledger was not verified"
        );
        stop.restored_after_s = None;
        stop.still_wrong = vec!["eu-west-1: not in DNS (its clients are sent to us-east-1)".into()];
        assert!(describe_stop(&stop)
            .contains("30 s after the stop not every region was back: eu-west-1: not in DNS"));
    }

    #[test]
    fn an_existing_stop_file_refuses_the_drill() {
        let path = std::env::temp_dir().join(format!("STOP-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, "").unwrap();
        let error = watch_stop_file(path.clone()).err().unwrap().to_string();
        assert!(error.contains("exists: a drill does not start"), "{error}");
        std::fs::remove_file(&path).unwrap();
    }
}

#[cfg(test)]
#[path = "stop_url_tests.rs"]
mod stop_url_tests;
