//! The drill's result: everything the report shows, serialised as
//! `report.json` and rendered as Markdown and HTML by [`crate::report`].
//!
//! Times are seconds since the start of the load (`t = 0`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The whole result of one drill.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DrillReport {
    pub title: String,
    /// Path of the drill file as given.
    pub drill_file: String,
    pub seed: u64,
    pub started_at: DateTime<Utc>,
    /// Length of the load phase in seconds.
    pub duration_s: f64,
    /// Component versions (service, failover-controller, chaos, PostgreSQL).
    pub versions: BTreeMap<String, String>,
    /// The effective configuration (topology, load, probe interval, TTL...).
    pub configuration: serde_json::Value,
    pub verdict: Verdict,
    /// Why the drill was aborted, when it was.
    pub abort_reason: Option<String>,
    pub checks: Vec<HypothesisCheck>,
    /// Regions of the deployment, in order.
    pub regions: Vec<String>,
    /// Regions clients send from, in order.
    pub client_regions: Vec<String>,
    /// One bucket per second and client region, in time order.
    pub timeline: Vec<SecondBucket>,
    pub faults: Vec<FaultWindow>,
    pub events: Vec<ControllerEvent>,
    pub phases: Phases,
    pub totals: Totals,
    pub error_budget: ErrorBudget,
    /// What the verifier found wrong in the ledger, one sentence each
    /// (empty when it reconciled); at most [`MAX_LEDGER_FINDINGS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ledger_findings: Vec<String>,
    /// The recovery objectives and what was measured against them (RTO,
    /// failback, RPO); `None` only in reports written before they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objectives: Option<Objectives>,
    /// Every operation that did not succeed, with the fault active at its
    /// intended start and what the ledger says of it (the whole history is
    /// in `history.jsonl`).
    #[serde(default)]
    pub failed_operations: Vec<FailedOperation>,
    /// The emergency stop, when the drill was stopped (verdict `stopped`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopRecord>,
}

/// An emergency stop: what stopped the drill, when, and how long the
/// rollback took until every region served and was in DNS again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StopRecord {
    /// "SIGTERM", "SIGINT" or "stop file <path>".
    pub cause: String,
    pub phase: StopPhase,
    /// Since the start of the load; `None` before it started.
    pub at_s: Option<f64>,
    /// From the stop to every region serving and in DNS; `None` when that
    /// did not happen within `restore_bound_s`.
    pub restored_after_s: Option<f64>,
    pub restore_bound_s: f64,
    /// What was still wrong when the wait ended, one sentence each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub still_wrong: Vec<String>,
}

/// Where in the drill an emergency stop came.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StopPhase {
    /// Before the first fault was applied (bringing up, seeding, steady load).
    BeforeFault,
    /// While a fault was applied.
    Fault,
    /// After every applied fault had ended, with the load still running.
    WayBack,
    /// While the ledger was being verified, after the rollback.
    Verification,
}

impl StopPhase {
    pub fn describe(self) -> &'static str {
        match self {
            Self::BeforeFault => "before the first fault",
            Self::Fault => "during a fault",
            Self::WayBack => "on the way back",
            Self::Verification => "during verification",
        }
    }
}

/// How many findings the report keeps; the counts in [`Totals`] are complete.
pub const MAX_LEDGER_FINDINGS: usize = 50;

/// An operation that ended as fail or unknown.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FailedOperation {
    pub intended_s: f64,
    pub client_region: String,
    /// "read" or "write".
    pub kind: String,
    pub key: Option<String>,
    /// "fail" or "unknown".
    pub outcome: String,
    pub attempts: u8,
    pub first_error: Option<String>,
    /// The faults active at its intended start ("region-kill eu-west-1"),
    /// empty outside every fault window.
    pub during: Vec<String>,
    /// For a write: whether the ledger holds it after the drill (a failed
    /// write must not; an unknown one is resolved by this).
    pub in_ledger: Option<bool>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    Failed,
    Aborted,
    /// Stopped by Ctrl-C, SIGTERM or the stop file; rolled back.
    Stopped,
}

impl Verdict {
    /// Aborted when the drill was, else passed only when every check did
    /// (the objectives' checks among them).
    pub fn judge(aborted: bool, checks: &[HypothesisCheck]) -> Self {
        if aborted {
            Verdict::Aborted
        } else if checks.iter().all(|c| c.passed) {
            Verdict::Passed
        } else {
            Verdict::Failed
        }
    }
}

/// The drill's recovery objectives and what it measured against them
/// (`crate::objectives` says exactly what each figure is). Each `passed`
/// is `None` when the drill states no such objective.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Objectives {
    /// `hypothesis.bad_second_below`: a second counts as served when every
    /// client region's after-retry success ratio is at or above it.
    pub served_at_or_above: f64,
    pub rto: RtoMeasure,
    pub rpo: RpoMeasure,
    /// The recovery of each fault window, in injection order.
    pub faults: Vec<FaultRecovery>,
}

/// Recovery time: fault injection to clients served again after the retry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RtoMeasure {
    pub objective_s: Option<f64>,
    /// The worst fault's recovery time; `None` when some fault never
    /// recovered, or no fault was injected.
    pub measured_s: Option<f64>,
    /// Every fault recovered (false without faults).
    pub recovered: bool,
    /// Index into `faults` of the worst: one that never recovered, else
    /// the slowest to.
    pub worst_fault: Option<usize>,
    /// Time to failback, reported beside the RTO: the end of the last fault
    /// on the first fault's region to that region back in DNS
    /// ([`Phases::failback_s`]).
    pub failback_s: Option<f64>,
    pub passed: Option<bool>,
}

/// Recovery point: acknowledged writes missing from the ledger.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RpoMeasure {
    pub objective_writes: Option<u64>,
    /// [`Totals::writes_lost`].
    pub measured_writes: u64,
    pub acknowledged_writes: u64,
    pub passed: Option<bool>,
}

/// How one fault window's clients were served again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaultRecovery {
    pub kind: String,
    pub target: String,
    /// Injection: the clock's start.
    pub start_s: f64,
    /// The end of the window searched: the next fault's start, or the end
    /// of the load.
    pub until_s: f64,
    /// The start of the first second from which every client region stayed
    /// served; `None`: not before `until_s`.
    pub served_again_at_s: Option<f64>,
    /// `served_again_at_s` minus `start_s`: this fault's RTO.
    pub rto_s: Option<f64>,
    /// This fault's end to its region back in DNS (`None` when it never
    /// left DNS, lasted to the end, or did not return in time).
    pub failback_s: Option<f64>,
}

/// One steady-state hypothesis check with its tolerance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HypothesisCheck {
    /// e.g. "success ratio (us-east-1 clients)".
    pub name: String,
    /// The expectation, human readable, e.g. ">= 99.0%".
    pub expected: String,
    /// What was measured, human readable, e.g. "99.62%".
    pub observed: String,
    pub passed: bool,
}

/// Requests of one client region in one second (by intended start time).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecondBucket {
    pub second: u32,
    pub client_region: String,
    pub requests: u64,
    pub ok: u64,
    pub failed: u64,
    pub unknown: u64,
    /// Latency percentiles of the completed requests, milliseconds, from the
    /// intended start (no coordinated omission). `None` without completions.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Successful requests by the region that served them.
    pub served_by: BTreeMap<String, u64>,
}

/// A fault's active window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaultWindow {
    /// region-kill, region-blackhole, leader-kill, prober-partition, latency, db-stall.
    pub kind: String,
    /// The region (or replica) it hit.
    pub target: String,
    pub start_s: f64,
    /// When it was rolled back; `None` if it lasted to the end.
    pub end_s: Option<f64>,
    /// What the clients' DNS answers did about `target` from `start_s` on;
    /// `None` without DNS observations (and in reports written before it
    /// was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<FaultDns>,
    /// The way back after the fault ended: `None` for a fault still active
    /// at the end, or whose target never left DNS (nothing to come back
    /// from), and in reports written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback: Option<Failback>,
    /// After the target left DNS: how long pooled and fresh clients kept
    /// reaching it (`None` when it never left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach_after_leaving: Option<crate::stickiness::ReachAfterLeaving>,
    /// A `command` or `http` fault's runs (start, then stop): argv, exit
    /// status and output tail, or the call, its status and answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<crate::actuators::HookRun>,
}

impl FaultWindow {
    /// A fault window opened at `start_s`, nothing yet observed of it.
    pub fn opened(
        kind: &str,
        target: &str,
        start_s: f64,
        hooks: Vec<crate::actuators::HookRun>,
    ) -> Self {
        Self {
            kind: kind.to_owned(),
            target: target.to_owned(),
            start_s,
            end_s: None,
            dns: None,
            failback: None,
            reach_after_leaving: None,
            hooks,
        }
    }
}

/// When a fault's target came back after the fault ended (`end_s`), before
/// the next fault on the same region began (or the drill ended).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Failback {
    /// Back in some client region's DNS answers (`None`: not back in time).
    pub dns_back_at_s: Option<f64>,
    /// `dns_back_at_s` minus the fault's end: the failback time.
    pub dns_back_after_s: Option<f64>,
    /// The first request that DNS sent to the region (a first attempt, not
    /// a retry) and it served, after the fault's end.
    pub served_again_at_s: Option<f64>,
    pub served_again_after_s: Option<f64>,
}

/// A fault window's DNS outcome, as the clients saw it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FaultDns {
    /// The target was in some client region's answers at the fault's start
    /// and was gone from every client region's answers at `at_s`,
    /// `after_s` seconds after the start: a DNS change, and a failover time.
    Left { at_s: f64, after_s: f64 },
    /// The target was in no client region's answers when the fault began
    /// (drained by an earlier fault and not restored since): no DNS change,
    /// no failover time.
    AlreadyOut,
    /// The target was in the answers at the start and some client region
    /// kept getting it.
    Stayed,
}

/// Something the failover controllers did, read from their audit log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ControllerEvent {
    pub at_s: f64,
    /// decision, drain_flag, dns_change, restore, freeze, leader_change, ...
    pub kind: String,
    pub region: Option<String>,
    pub detail: String,
}

/// Fault, detect, drain, recover, in seconds since t = 0 and as durations.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Phases {
    pub fault_at_s: Option<f64>,
    /// The controller's decision to drain.
    pub detected_at_s: Option<f64>,
    /// The drain flag written.
    pub drained_at_s: Option<f64>,
    /// The DNS answers no longer contain the region.
    pub dns_changed_at_s: Option<f64>,
    /// Every client region back above the success threshold for good.
    pub recovered_at_s: Option<f64>,
    /// The end of the last fault on the first fault's target: where the
    /// way back starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_ended_at_s: Option<f64>,
    /// The target back in the clients' DNS answers after that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back_in_dns_at_s: Option<f64>,
    /// The first request served by the target after that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_again_at_s: Option<f64>,
    pub detect_s: Option<f64>,
    pub drain_s: Option<f64>,
    pub dns_s: Option<f64>,
    pub recover_s: Option<f64>,
    /// Failback time: fault's end to back in DNS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback_s: Option<f64>,
    /// Fault's end to the first request served by the region again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_again_s: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Totals {
    pub requests: u64,
    pub ok: u64,
    /// Failed even after the one retry on the next region.
    pub failed: u64,
    /// Timed out with a write whose outcome the client could not know.
    pub unknown: u64,
    /// Requests whose first attempt failed and whose retry succeeded.
    pub retried_ok: u64,
    pub writes_acknowledged: u64,
    /// Acknowledged transfers missing from the database.
    pub writes_lost: u64,
    /// Keys under which the ledger holds more than one transfer (must be
    /// 0; only possible if the unique key on `transfers.idempotency_key`
    /// were lost, so [`Totals::accounts_unreconciled`] is what catches a
    /// transfer applied twice behind one row).
    pub writes_duplicated: u64,
    /// Transfers held under a client's key that differ from what it sent
    /// (accounts or amount), or from the id it was acknowledged with.
    #[serde(default)]
    pub writes_altered: u64,
    /// Failed transfers that nevertheless exist (must be 0).
    pub failed_writes_present: u64,
    pub unknown_resolved_committed: u64,
    pub unknown_resolved_absent: u64,
    /// Transfers touching the drill's accounts under a key no client sent.
    #[serde(default)]
    pub transfers_not_sent: u64,
    /// The drill's accounts, each reconciled on its own.
    #[serde(default)]
    pub accounts_checked: u64,
    /// Accounts whose final balance is not the opening balance plus the
    /// acknowledged transfers and the unknown-outcome transfers found
    /// applied that touch it.
    #[serde(default)]
    pub accounts_unreconciled: u64,
    /// Successful reads that returned a negative balance.
    #[serde(default)]
    pub negative_balances_read: u64,
    /// Sum of the drill's accounts' balances before and after (must be equal).
    pub total_balance_before: i64,
    pub total_balance_after: i64,
    /// Lowest balance of the drill's accounts after the drill.
    pub min_balance_after: i64,
}

/// The share of a 30-day 99.99% error budget the drill consumed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ErrorBudget {
    pub slo: f64,
    pub window_days: f64,
    /// 4.32 for 99.99% over 30 days.
    pub budget_minutes: f64,
    pub request_rate_per_s: f64,
    pub failed_requests: u64,
    /// Requests allowed to fail in the window at this rate.
    pub budget_requests: f64,
    /// failed_requests / budget_requests.
    pub consumed_fraction: f64,
    /// consumed_fraction * budget_minutes.
    pub consumed_minutes: f64,
}

impl ErrorBudget {
    /// Computes the share for `failed` requests at `rate` requests/second.
    pub fn compute(slo: f64, window_days: f64, rate: f64, failed: u64) -> Self {
        let window_s = window_days * 86_400.0;
        let budget_minutes = (1.0 - slo) * window_s / 60.0;
        let budget_requests = (1.0 - slo) * window_s * rate;
        let consumed_fraction = if budget_requests > 0.0 {
            failed as f64 / budget_requests
        } else {
            0.0
        };
        Self {
            slo,
            window_days,
            budget_minutes,
            request_rate_per_s: rate,
            failed_requests: failed,
            budget_requests,
            consumed_fraction,
            consumed_minutes: consumed_fraction * budget_minutes,
        }
    }
}
