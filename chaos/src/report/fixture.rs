//! Synthetic but realistic drill reports for the renderer's tests: a
//! region kill of us-east-1 at 20 s with three regions and three client
//! regions over 60 s, an aborted drill and one without any data.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use serde_json::json;

use crate::objectives::RecoveryObjectives;

use crate::model::{
    ControllerEvent, DrillReport, ErrorBudget, Failback, FailedOperation, FaultDns, FaultWindow,
    HypothesisCheck, Phases, SecondBucket, Totals, Verdict,
};

pub(crate) const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];
/// Requests per second from each client region.
const RATE_PER_CLIENT: u64 = 50;

/// us-east-1 is killed at 20 s; its clients fail for seconds 20-22 and move
/// to eu-west-1; the region is restored at 45 s and takes its clients back
/// at 50 s.
pub(crate) fn region_kill_report() -> DrillReport {
    let mut timeline = Vec::new();
    for second in 0..60u32 {
        for (index, client) in REGIONS.iter().enumerate() {
            timeline.push(bucket(second, index, client));
        }
    }
    let totals = totals_of(&timeline);
    let rate = (RATE_PER_CLIENT * REGIONS.len() as u64) as f64;
    let mut report = DrillReport {
        title: "Region kill: us-east-1 under load".to_string(),
        drill_file: "drills/region-kill.yaml".to_string(),
        seed: 424_242,
        started_at: Utc.with_ymd_and_hms(2025, 3, 14, 9, 26, 53).unwrap(),
        duration_s: 60.0,
        versions: BTreeMap::from([
            ("chaos".to_string(), "0.1.0".to_string()),
            ("failover-controller".to_string(), "0.1.0".to_string()),
            ("postgresql".to_string(), "16.4".to_string()),
            ("service".to_string(), "0.1.0".to_string()),
        ]),
        // The shape drill/evidence.rs writes: laboratory probe settings
        // (so the report marks them as overriding production's), the
        // default WAN and the round trips the probes measured.
        configuration: json!({
            "topology": {
                "regions": REGIONS, "instances_per_region": 2,
                "wan": {
                    "rtt_ms": {"us-east-1/eu-west-1": 70.0, "us-east-1/ap-southeast-1": 220.0, "eu-west-1/ap-southeast-1": 165.0},
                    "local_rtt_ms": 1.0, "database_rtt_ms": {}, "jitter_ms": 2.0, "loss": 0.001,
                },
            },
            "controller": laboratory_settings(),
            "controller_overrides": laboratory_settings().overridden(),
            "load": { "rate_per_client_region": RATE_PER_CLIENT, "write_ratio": 0.3, "duration_s": 60 },
            "method": [{ "fault": "region-kill", "target": "us-east-1", "start_s": 20, "duration_s": 25 }],
            "database": { "fsync": "on", "synchronous_commit": "on", "full_page_writes": "on" },
            "attached": false,
            "measured_rtt_ms": {
                "us-east-1": {"us-east-1": 5.3, "eu-west-1": 74.8, "ap-southeast-1": 223.8},
                "eu-west-1": {"us-east-1": 74.6, "eu-west-1": 6.1, "ap-southeast-1": 169.6},
                "ap-southeast-1": {"us-east-1": 224.1, "eu-west-1": 169.9, "ap-southeast-1": 5.8},
            },
        }),
        verdict: Verdict::Passed,
        abort_reason: None,
        checks: vec![
            check("decision after the fault", "<= 1.50 s", "0.60 s", true),
            check("DNS changed after the fault", "<= 2.00 s", "1.20 s", true),
            check(
                "client-visible failure window",
                "<= 3 s (TTL + 2 s)",
                "3 s",
                true,
            ),
            check(
                "success ratio after the drain (every client region)",
                ">= 99.0%",
                "100%",
                true,
            ),
            check("lost writes", "= 0", "0", true),
            check("p99 latency in steady state", "<= 250 ms", "41.8 ms", true),
        ],
        regions: REGIONS.map(String::from).to_vec(),
        client_regions: REGIONS.map(String::from).to_vec(),
        timeline,
        faults: vec![FaultWindow {
            kind: "region-kill".to_string(),
            target: "us-east-1".to_string(),
            start_s: 20.0,
            end_s: Some(45.0),
            dns: Some(FaultDns::Left {
                at_s: 21.2,
                after_s: 1.2,
            }),
            failback: Some(Failback {
                dns_back_at_s: Some(48.4),
                dns_back_after_s: Some(3.4),
                served_again_at_s: Some(48.9),
                served_again_after_s: Some(3.9),
            }),
            reach_after_leaving: Some(crate::stickiness::ReachAfterLeaving {
                pooled_s: Some(0.4),
                pooled_requests: 3,
                fresh_s: Some(0.2),
                fresh_requests: 2,
            }),
            hooks: Vec::new(),
        }],
        events: vec![
            event(
                20.6,
                "decision",
                "drain: 3 of 3 vantages see us-east-1 down",
            ),
            event(20.7, "drain_flag", "drain flag set, lease epoch 7"),
            event(
                21.2,
                "dns_change",
                "A records of api.bank.test no longer list us-east-1",
            ),
            event(
                48.3,
                "restore",
                "us-east-1 healthy for 3 s: drain flag cleared, DNS restored",
            ),
        ],
        phases: Phases {
            fault_at_s: Some(20.0),
            detected_at_s: Some(20.6),
            drained_at_s: Some(20.7),
            dns_changed_at_s: Some(21.2),
            recovered_at_s: Some(23.0),
            detect_s: Some(0.6),
            drain_s: Some(0.7),
            dns_s: Some(1.2),
            recover_s: Some(3.0),
            fault_ended_at_s: Some(45.0),
            back_in_dns_at_s: Some(48.4),
            served_again_at_s: Some(48.9),
            failback_s: Some(3.4),
            served_again_s: Some(3.9),
        },
        error_budget: ErrorBudget::compute(0.9999, 30.0, rate, totals.failed),
        totals,
        ledger_findings: Vec::new(),
        objectives: None,
        failed_operations: vec![
            FailedOperation {
                intended_s: 20.35,
                client_region: "us-east-1".to_string(),
                kind: "write".to_string(),
                key: Some("5f1c2a9e-write".to_string()),
                outcome: "unknown".to_string(),
                attempts: 2,
                first_error: Some("127.0.1.11:8080: timeout".to_string()),
                during: vec!["region-kill us-east-1".to_string()],
                in_ledger: Some(true),
            },
            FailedOperation {
                intended_s: 20.9,
                client_region: "eu-west-1".to_string(),
                kind: "read".to_string(),
                key: None,
                outcome: "fail".to_string(),
                attempts: 2,
                first_error: Some("127.0.1.12:8080: connect: <refused>".to_string()),
                during: vec!["region-kill us-east-1".to_string()],
                in_ledger: None,
            },
        ],
        stop: None,
    };
    // Measured as drill/evidence.rs does, against a 5 s RTO and no lost
    // write: the clients are served again 3 s after the kill.
    with_objectives(
        &mut report,
        Some(&RecoveryObjectives {
            rto_s: Some(5.0),
            rpo_writes: Some(0),
        }),
    );
    report
}

/// Measures the report's objectives against `objectives` (none: the
/// figures with "no objective"), adds their checks (replacing earlier
/// ones) and judges the verdict again.
pub(crate) fn with_objectives(report: &mut DrillReport, objectives: Option<&RecoveryObjectives>) {
    let measured = crate::objectives::measure(&crate::objectives::Inputs {
        objectives,
        faults: &report.faults,
        timeline: &report.timeline,
        served_at_or_above: 0.99,
        load_end_s: report.duration_s,
        phases: &report.phases,
        totals: &report.totals,
    });
    report
        .checks
        .retain(|check| !check.name.starts_with("RTO:") && !check.name.starts_with("RPO:"));
    report.checks.extend(crate::objectives::checks(&measured));
    report.objectives = Some(measured);
    report.verdict = Verdict::judge(report.abort_reason.is_some(), &report.checks);
}

/// The region-kill drill stopped at 22 s by its error-budget abort rule.
pub(crate) fn aborted_report() -> DrillReport {
    let mut report = region_kill_report();
    report.title = "Region blackhole: eu-west-1".to_string();
    report.verdict = Verdict::Aborted;
    report.abort_reason =
        Some("error budget burn above 50% (61.2%) at 22.0 s: rolled back".to_string());
    report.timeline.retain(|bucket| bucket.second < 23);
    report.duration_s = 23.0;
    report.events.truncate(2);
    report.phases.dns_changed_at_s = None;
    report.phases.recovered_at_s = None;
    report.faults[0].dns = Some(FaultDns::Stayed);
    report.checks[1].passed = false;
    report.checks[1].observed = "never".to_string();
    report
}

/// A drill that recorded nothing: no timeline, no events, no faults.
pub(crate) fn empty_report() -> DrillReport {
    let mut report = region_kill_report();
    report.title = "Nothing happened".to_string();
    report.verdict = Verdict::Failed;
    report.timeline.clear();
    report.events.clear();
    report.faults.clear();
    report.checks.clear();
    report.phases = Phases::default();
    report.totals = Totals::default();
    report.error_budget = ErrorBudget::compute(0.9999, 30.0, 0.0, 0);
    with_objectives(&mut report, None);
    report.verdict = Verdict::Failed;
    report
}

fn bucket(second: u32, client_index: usize, client: &str) -> SecondBucket {
    // A deterministic wobble so the lines look like measurements.
    let wobble = ((second as f64 * 1.7 + client_index as f64 * 2.3).sin() + 1.0) / 2.0;
    let base_p50 = [4.0, 6.0, 9.0][client_index];
    let mut p50 = base_p50 + wobble * 2.0;
    let mut p99 = base_p50 * 3.5 + wobble * 12.0;
    let requests = RATE_PER_CLIENT;
    let (mut failed, mut unknown) = (0, 0);
    let home = client.to_string();
    let mut served_region = home.clone();
    let killed = client == "us-east-1" && (20..50).contains(&second);
    if killed {
        served_region = "eu-west-1".to_string();
        // Transatlantic round trips from now on.
        p50 = 78.0 + wobble * 6.0;
        p99 = 110.0 + wobble * 20.0;
        match second {
            20 => (failed, unknown, p50, p99) = (12, 2, 640.0, 1950.0),
            21 => (failed, unknown, p50, p99) = (17, 1, 820.0, 2000.0),
            22 => (failed, unknown, p50, p99) = (4, 0, 180.0, 1200.0),
            _ => {}
        }
    }
    if client == "eu-west-1" && (20..24).contains(&second) {
        // eu-west-1 absorbs the extra load: a small bump.
        p99 *= 1.8;
    }
    let ok = requests - failed - unknown;
    let mut served_by = BTreeMap::from([(served_region, ok)]);
    if killed && second == 20 {
        // A few requests of second 20 finished in us-east-1 before the kill.
        served_by.insert("eu-west-1".to_string(), ok - 6);
        served_by.insert("us-east-1".to_string(), 6);
    }
    SecondBucket {
        second,
        client_region: client.to_string(),
        requests,
        ok,
        failed,
        unknown,
        // Microsecond resolution, as the histograms record.
        p50_ms: Some((p50 * 1000.0).round() / 1000.0),
        p99_ms: Some((p99 * 1000.0).round() / 1000.0),
        served_by,
    }
}

fn totals_of(timeline: &[SecondBucket]) -> Totals {
    let requests = timeline.iter().map(|bucket| bucket.requests).sum();
    let ok: u64 = timeline.iter().map(|bucket| bucket.ok).sum();
    let failed = timeline.iter().map(|bucket| bucket.failed).sum();
    let unknown: u64 = timeline.iter().map(|bucket| bucket.unknown).sum();
    Totals {
        requests,
        ok,
        failed,
        unknown,
        retried_ok: 41,
        writes_acknowledged: ok * 3 / 10,
        writes_lost: 0,
        writes_duplicated: 0,
        writes_altered: 0,
        failed_writes_present: 0,
        transfers_not_sent: 0,
        accounts_checked: 100,
        accounts_unreconciled: 0,
        negative_balances_read: 0,
        unknown_resolved_committed: 1,
        unknown_resolved_absent: unknown - 1,
        total_balance_before: 100_000_000,
        total_balance_after: 100_000_000,
        min_balance_after: 1_250,
    }
}

fn check(name: &str, expected: &str, observed: &str, passed: bool) -> HypothesisCheck {
    HypothesisCheck {
        name: name.to_string(),
        expected: expected.to_string(),
        observed: observed.to_string(),
        passed,
    }
}

fn event(at_s: f64, kind: &str, detail: &str) -> ControllerEvent {
    ControllerEvent {
        at_s,
        kind: kind.to_string(),
        region: Some("us-east-1".to_string()),
        detail: detail.to_string(),
    }
}

/// Laboratory settings that override production's: 500 ms probes with a
/// 400 ms timeout and a 1 s DNS TTL.
pub(crate) fn laboratory_settings() -> crate::controller_settings::ControllerSettings {
    crate::controller_settings::ControllerSettings::new(
        &crate::controller_settings::ControllerOverrides {
            probe: std::collections::BTreeMap::from([
                ("interval_ms".into(), 500),
                ("timeout_ms".into(), 400),
            ]),
            dns_ttl_s: Some(1),
            ..Default::default()
        },
    )
    .expect("valid laboratory settings")
}
