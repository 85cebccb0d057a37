//! The RTO and RPO measurements on synthetic seconds, and the validation
//! of the drill file's `objectives` section.

use std::collections::BTreeMap;

use super::*;
use crate::model::{Failback, Verdict};

const CLIENTS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];

/// `seconds` of 20 requests per client region; `failed(second, client
/// index)` requests of each failed after the retry.
fn seconds(seconds: u32, failed: impl Fn(u32, usize) -> u64) -> Vec<SecondBucket> {
    let mut timeline = Vec::new();
    for second in 0..seconds {
        for (index, client) in CLIENTS.iter().enumerate() {
            let failed = failed(second, index);
            timeline.push(SecondBucket {
                second,
                client_region: client.to_string(),
                requests: 20,
                ok: 20 - failed,
                failed,
                unknown: 0,
                p50_ms: Some(5.0),
                p99_ms: Some(9.0),
                served_by: BTreeMap::new(),
            });
        }
    }
    timeline
}

fn fault(kind: &str, start_s: f64, end_s: Option<f64>) -> FaultWindow {
    FaultWindow {
        kind: kind.to_owned(),
        target: "eu-west-1".to_owned(),
        start_s,
        end_s,
        dns: None,
        failback: None,
        reach_after_leaving: None,
        hooks: Vec::new(),
    }
}

fn totals(acknowledged: u64, lost: u64) -> Totals {
    Totals {
        writes_acknowledged: acknowledged,
        writes_lost: lost,
        ..Totals::default()
    }
}

/// Measures with the drills' default threshold (99%) over a 40 s load.
fn measured(
    objectives: Option<RecoveryObjectives>,
    faults: &[FaultWindow],
    timeline: &[SecondBucket],
    totals: &Totals,
) -> Objectives {
    measure(&Inputs {
        objectives: objectives.as_ref(),
        faults,
        timeline,
        served_at_or_above: 0.99,
        load_end_s: 40.0,
        phases: &Phases {
            failback_s: Some(11.85),
            ..Phases::default()
        },
        totals,
    })
}

fn rto(seconds: f64) -> Option<RecoveryObjectives> {
    Some(RecoveryObjectives {
        rto_s: Some(seconds),
        rpo_writes: None,
    })
}

#[test]
fn the_clock_runs_from_injection_to_the_end_of_the_last_bad_second() {
    // Killed at 10.3 s; one client region fails in seconds 10, 11 and 13
    // (12 is good, but not for good); a bad second before the fault and a
    // single failure (95%) in another client region's second 12 change
    // nothing and something: 12 is bad too, 13 stays the last.
    let timeline = seconds(40, |second, client| match (second, client) {
        (5, 0) | (10, 1) | (11, 1) | (13, 1) => 3,
        (12, 2) => 1,
        _ => 0,
    });
    let mut faults = vec![fault("region-kill", 10.3, Some(25.0))];
    faults[0].failback = Some(Failback {
        dns_back_at_s: Some(36.85),
        dns_back_after_s: Some(11.85),
        served_again_at_s: None,
        served_again_after_s: None,
    });
    let result = measured(rto(4.0), &faults, &timeline, &totals(100, 0));
    let recovery = &result.faults[0];
    assert_eq!(recovery.served_again_at_s, Some(14.0));
    assert_eq!(recovery.rto_s, Some(3.7));
    assert_eq!(recovery.until_s, 40.0);
    assert_eq!(recovery.failback_s, Some(11.85));
    assert_eq!(result.rto.measured_s, Some(3.7));
    assert!(result.rto.recovered);
    assert_eq!(result.rto.failback_s, Some(11.85));
    assert_eq!(result.rto.passed, Some(true));
    let judged = checks(&result);
    assert_eq!(judged.len(), 1, "no RPO objective, no RPO check");
    assert!(judged[0].passed);
    assert_eq!(judged[0].expected, "<= 4 s");
    assert_eq!(
        judged[0].observed,
        "3.70 s (region-kill eu-west-1 at 10.3 s)"
    );

    // Tighter than measured: the objective fails, and with it the drill.
    let result = measured(rto(3.5), &faults, &timeline, &totals(100, 0));
    assert_eq!(result.rto.passed, Some(false));
    let judged = checks(&result);
    assert!(!judged[0].passed);
    assert_eq!(Verdict::judge(false, &judged), Verdict::Failed);
}

/// The faults of one step (every region's database stalled at once) are
/// injected microseconds apart: they share one window, and each recovers
/// when the clients do, not "never" because its sibling began just after.
#[test]
fn faults_injected_together_share_one_window() {
    let timeline = seconds(40, |second, _| u64::from((10..13).contains(&second)));
    let faults = [
        fault("db-stall", 10.0021, Some(14.0)),
        fault("db-stall", 10.0022, Some(14.0)),
        fault("db-stall", 10.0023, Some(14.0)),
    ];
    let objectives = measured(rto(5.0), &faults, &timeline, &totals(10, 0));
    assert!(objectives.rto.recovered, "{:?}", objectives.faults);
    for fault in &objectives.faults {
        assert_eq!(fault.until_s, 40.0);
        assert_eq!(fault.served_again_at_s, Some(13.0));
    }
    assert_eq!(objectives.rto.measured_s, Some(2.998));
    assert_eq!(objectives.rto.passed, Some(true));
}

#[test]
fn a_fault_that_hurt_no_second_recovers_at_once() {
    let timeline = seconds(40, |_, _| 0);
    let faults = [fault("prober-partition", 5.0, Some(20.0))];
    let result = measured(rto(0.0), &faults, &timeline, &totals(10, 0));
    assert_eq!(result.faults[0].rto_s, Some(0.0));
    assert_eq!(result.rto.passed, Some(true));
}

#[test]
fn clients_still_failing_when_the_load_ends_never_recovered() {
    let timeline = seconds(40, |second, client| u64::from(second >= 30 && client == 0));
    let faults = [fault("region-blackhole", 30.0, None)];
    let result = measured(rto(60.0), &faults, &timeline, &totals(10, 0));
    assert_eq!(result.faults[0].served_again_at_s, None);
    assert_eq!(result.faults[0].rto_s, None);
    assert_eq!(result.rto.measured_s, None);
    assert!(!result.rto.recovered);
    assert_eq!(
        result.rto.passed,
        Some(false),
        "no objective is met unrecovered"
    );
    let check = &checks(&result)[0];
    assert!(!check.passed);
    assert_eq!(
        check.observed,
        "not recovered (region-blackhole eu-west-1 at 30.0 s: below 99.0% until 40.0 s)"
    );
}

/// Each fault gets its own clock, closed by the next fault's start; the
/// verdict takes the worst. Failures after a fault's end still count
/// (a database restarting), and faults injected together share a window.
#[test]
fn each_fault_has_its_own_recovery_and_the_worst_is_judged() {
    let timeline = seconds(40, |second, _| match second {
        10 | 11 => 1,
        20..=25 => 20,
        _ => 0,
    });
    let faults = [
        fault("region-kill", 10.0, Some(12.0)),
        fault("db-crash", 20.0, Some(23.0)),
        fault("route53-throttle", 20.0, Some(23.0)),
    ];
    let result = measured(rto(5.5), &faults, &timeline, &totals(10, 0));
    let rtos: Vec<Option<f64>> = result.faults.iter().map(|f| f.rto_s).collect();
    assert_eq!(rtos, [Some(2.0), Some(6.0), Some(6.0)]);
    assert_eq!(result.faults[0].until_s, 20.0);
    assert_eq!(result.faults[1].until_s, 40.0);
    assert_eq!(result.rto.measured_s, Some(6.0));
    assert_eq!(result.rto.worst_fault, Some(1));
    assert_eq!(result.rto.passed, Some(false));
    assert_eq!(
        checks(&result)[0].observed,
        "6.00 s (worst of 3 faults: db-crash eu-west-1 at 20.0 s)"
    );

    // The first fault still failing when the second began: not recovered.
    let timeline = seconds(40, |second, _| u64::from((10..22).contains(&second)));
    let result = measured(rto(30.0), &faults, &timeline, &totals(10, 0));
    assert_eq!(result.faults[0].rto_s, None);
    assert_eq!(result.faults[1].rto_s, Some(2.0));
    assert_eq!(result.rto.worst_fault, Some(0));
    assert_eq!(result.rto.measured_s, None);
    assert_eq!(result.rto.passed, Some(false));
}

#[test]
fn lost_acknowledged_writes_are_the_measured_rpo() {
    let timeline = seconds(40, |_, _| 0);
    let faults = [fault("db-crash", 12.0, Some(18.0))];
    let objectives = |writes| {
        Some(RecoveryObjectives {
            rto_s: None,
            rpo_writes: Some(writes),
        })
    };
    let result = measured(objectives(0), &faults, &timeline, &totals(1014, 1));
    assert_eq!(result.rpo.measured_writes, 1);
    assert_eq!(result.rpo.passed, Some(false));
    let judged = checks(&result);
    assert_eq!(judged.len(), 1, "no RTO objective, no RTO check");
    assert_eq!(judged[0].name, "RPO: acknowledged writes lost");
    assert_eq!(judged[0].expected, "<= 0");
    assert_eq!(judged[0].observed, "1 of 1014 acknowledged");
    assert!(!judged[0].passed);

    let result = measured(objectives(1), &faults, &timeline, &totals(1014, 1));
    assert_eq!(result.rpo.passed, Some(true));

    // Without objectives: measured, reported, not judged.
    let result = measured(None, &faults, &timeline, &totals(1014, 1));
    assert_eq!(result.rpo.passed, None);
    assert_eq!(result.rto.passed, None);
    assert_eq!(result.rto.measured_s, Some(0.0));
    assert!(checks(&result).is_empty());
}

#[test]
fn without_a_fault_there_is_no_recovery_time() {
    let result = measured(rto(5.0), &[], &seconds(40, |_, _| 0), &totals(0, 0));
    assert_eq!(result.rto.measured_s, None);
    assert!(!result.rto.recovered);
    assert_eq!(result.rto.passed, Some(false));
    assert_eq!(rto_observed(&result), "no fault was injected");
}

const DRILL: &str = r#"
title: Kill a region
load: { rate_per_client_region: 10, write_ratio: 0.5, duration_s: 30 }
hypothesis: { min_success_ratio: 0.999, max_p99_ms: 2000 }
objectives: { rto_s: 5, rpo_writes: 0 }
method:
  - { fault: region-kill, target: us-east-1, start_s: 10 }
"#;

#[test]
fn objectives_parse_and_bad_ones_are_named() {
    let drill = Drill::parse(DRILL).unwrap();
    assert_eq!(
        drill.objectives,
        Some(RecoveryObjectives {
            rto_s: Some(5.0),
            rpo_writes: Some(0),
        })
    );
    let without = DRILL.replace("objectives: { rto_s: 5, rpo_writes: 0 }\n", "");
    assert_eq!(Drill::parse(&without).unwrap().objectives, None);

    let cases = [
        (
            "rto_s: -1",
            "field `objectives.rto_s`: must be 0 or more seconds, got -1",
        ),
        (
            "rto_s: .nan",
            "field `objectives.rto_s`: must be a finite number of seconds",
        ),
        (
            "rto_s: .inf",
            "field `objectives.rto_s`: must be a finite number of seconds",
        ),
        (
            "rpo_writes: -2",
            "field `objectives.rpo_writes`: must be 0 or more acknowledged writes, got -2",
        ),
        ("rpo_writes: 0.5", "field `objectives.rpo_writes`"),
        ("rto_s: soon", "field `objectives.rto_s`"),
        (
            "rto_seconds: 5",
            "field `objectives.rto_seconds`: line 5 column 15: unknown field `rto_seconds`",
        ),
    ];
    for (replacement, expected) in cases {
        let text = DRILL.replace("rto_s: 5, rpo_writes: 0", replacement);
        let error = Drill::parse(&text).unwrap_err();
        println!("{replacement}: {error}");
        assert!(error.starts_with(expected), "{replacement}: {error}");
    }
    let empty = Drill::parse(&DRILL.replace("{ rto_s: 5, rpo_writes: 0 }", "{}"));
    assert!(empty.unwrap_err().contains("states no objective"));
    let no_fault = DRILL.replace(
        "method:\n  - { fault: region-kill, target: us-east-1, start_s: 10 }\n",
        "method: []\n",
    );
    assert!(Drill::parse(&no_fault)
        .unwrap_err()
        .starts_with("field `objectives.rto_s`: the drill injects no fault"));
}
