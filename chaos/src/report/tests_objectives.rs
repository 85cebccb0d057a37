//! The recovery objectives in the three renderings and the terminal line,
//! on the fixture region kill (clients served again 3 s after the kill,
//! back in DNS 3.4 s after the fault's end, nothing lost), and the
//! fail-on-purpose case: an objective tighter than measured fails exactly
//! its own check, and with it the drill.

use super::fixture::{region_kill_report, with_objectives};
use super::objectives::summary_line;
use super::{render_html, render_markdown};
use crate::model::{DrillReport, Verdict};
use crate::objectives::RecoveryObjectives;

fn objectives(rto_s: Option<f64>, rpo_writes: Option<i64>) -> RecoveryObjectives {
    RecoveryObjectives { rto_s, rpo_writes }
}

#[test]
fn the_objectives_are_measured_and_shown_near_the_verdict() {
    let report = region_kill_report();
    let measured = report.objectives.as_ref().unwrap();
    assert_eq!(measured.rto.measured_s, Some(3.0));
    assert_eq!(measured.rto.failback_s, Some(3.4));
    assert_eq!(measured.rpo.measured_writes, 0);
    assert_eq!(report.verdict, Verdict::Passed);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["objectives"]["rto"]["objective_s"], 5.0);
    assert_eq!(json["objectives"]["rto"]["measured_s"], 3.0);
    assert_eq!(json["objectives"]["rto"]["passed"], true);
    assert_eq!(json["objectives"]["rpo"]["measured_writes"], 0);
    assert_eq!(json["objectives"]["faults"][0]["served_again_at_s"], 23.0);

    let html = render_html(&report);
    let objectives_at = html.find(r#"id="objectives""#).expect("objectives card");
    assert!(objectives_at < html.find(r#"id="availability""#).unwrap());
    assert!(html
        .contains(r#"<td>Recovery time (RTO)</td><td>&lt;= 5 s</td><td class="num">3.00 s</td>"#));
    assert!(html.contains(r#"<td>Time to failback</td><td>—</td><td class="num">3.40 s</td>"#));
    assert!(html.contains(
        r#"<td>Recovery point (RPO)</td><td>&lt;= 0 writes</td><td class="num">0 writes</td>"#
    ));
    // One fault: no table per fault.
    assert!(!html.contains(r#"<table class="objective-faults">"#));

    let markdown = render_markdown(&report);
    assert!(markdown.contains("## Recovery objectives"));
    assert!(markdown.contains(
        "| Recovery time (RTO) | <= 5 s | **3.00 s** | fault injection to every client region \
         served again after the retry; 3.00 s (region-kill us-east-1 at 20.0 s) | ✅ pass |"
    ));
    assert!(markdown.contains("| Time to failback | — | **3.40 s** |"));
    assert!(markdown.contains("| Recovery point (RPO) | <= 0 writes | **0 writes** |"));
    assert!(markdown.contains(
        "| RTO: fault injection to clients served again after the retry | <= 5 s | 3.00 s"
    ));
    assert_eq!(
        summary_line(&report).unwrap(),
        "  objectives: Recovery time (RTO) 3.00 s (objective <= 5 s: pass)  Time to failback \
         3.40 s  Recovery point (RPO) 0 writes (objective <= 0 writes: pass)"
    );
}

/// Fail on purpose: a 2.5 s RTO objective against the measured 3 s fails
/// the RTO check and nothing else, and the drill with it.
#[test]
fn an_objective_tighter_than_measured_fails_exactly_that_check() {
    let mut report = region_kill_report();
    with_objectives(&mut report, Some(&objectives(Some(2.5), Some(0))));
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|check| !check.passed)
        .map(|check| check.name.as_str())
        .collect();
    assert_eq!(
        failed,
        ["RTO: fault injection to clients served again after the retry"]
    );
    assert_eq!(report.verdict, Verdict::Failed);
    let html = render_html(&report);
    assert!(html.contains(r#"<header class="verdict failed">"#));
    assert!(html.contains(
        r#"<tr class="bad"><td>Recovery time (RTO)</td><td>&lt;= 2.5 s</td><td class="num">3.00 s</td>"#
    ));
    let markdown = render_markdown(&report);
    assert!(markdown.starts_with("# FAILED: "));
    assert!(markdown.contains("| Recovery time (RTO) | <= 2.5 s | **3.00 s** |"));
    assert!(markdown.contains("| ❌ **fail** |"));
    assert!(summary_line(&report)
        .unwrap()
        .contains("Recovery time (RTO) 3.00 s (objective <= 2.5 s: fail)"));

    // The same for the RPO: one lost write against none allowed.
    let mut report = region_kill_report();
    report.totals.writes_lost = 1;
    with_objectives(&mut report, Some(&objectives(Some(5.0), Some(0))));
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|check| !check.passed)
        .map(|check| check.name.as_str())
        .collect();
    assert_eq!(failed, ["RPO: acknowledged writes lost"]);
    assert_eq!(report.verdict, Verdict::Failed);
}

#[test]
fn without_objectives_the_figures_say_no_objective_and_judge_nothing() {
    let mut report = region_kill_report();
    with_objectives(&mut report, None);
    assert!(report.checks.iter().all(|check| check.passed));
    assert!(!report
        .checks
        .iter()
        .any(|check| check.name.starts_with("RTO")));
    assert_eq!(report.verdict, Verdict::Passed);
    let html = render_html(&report);
    assert!(html.contains(
        r#"<td>Recovery time (RTO)</td><td>no objective</td><td class="num">3.00 s</td>"#
    ));
    assert!(html.contains(r#"<td class="muted">no objective</td>"#));
    assert!(
        render_markdown(&report).contains("| Recovery point (RPO) | no objective | **0 writes** |")
    );
    assert!(summary_line(&report)
        .unwrap()
        .contains("Recovery time (RTO) 3.00 s (no objective)"));
}

/// Several faults get a row each; one that never recovered is marked, and
/// the drill's RTO is "not recovered".
#[test]
fn several_faults_get_a_row_each_and_an_unrecovered_one_is_marked() {
    let mut report = region_kill_report();
    let mut second = report.faults[0].clone();
    second.kind = "region-blackhole".into();
    second.target = "eu-west-1".into();
    second.start_s = 55.0;
    second.end_s = None;
    second.failback = None;
    report.faults.push(second);
    // eu-west-1's clients fail from 56 s to the end of the load.
    for bucket in &mut report.timeline {
        if bucket.client_region == "eu-west-1" && bucket.second >= 56 {
            bucket.ok -= 5;
            bucket.failed += 5;
        }
    }
    with_objectives(&mut report, Some(&objectives(Some(5.0), None)));
    assert_eq!(report.verdict, Verdict::Failed);
    let html = render_html(&report);
    assert!(html.contains(r#"<table class="objective-faults">"#));
    assert!(html.contains(
        r#"<tr><td>region-kill us-east-1</td><td class="num">20.00 s</td><td class="num">23.00 s</td><td class="num">3.00 s</td><td class="num">3.40 s</td></tr>"#
    ));
    assert!(html.contains(
        r#"<tr class="bad"><td>region-blackhole eu-west-1</td><td class="num">55.00 s</td><td class="num">not before 60.00 s</td><td class="num">not recovered</td><td class="num">n&#x2f;a</td></tr>"#
    ));
    let markdown = render_markdown(&report);
    assert!(markdown.contains("| Recovery time (RTO) | <= 5 s | **not recovered** |"));
    assert!(markdown.contains(
        "not recovered (worst of 2 faults: region-blackhole eu-west-1 at 55.0 s: below 99.0% until 60.0 s)"
    ));
    assert!(markdown.contains(
        "| region-blackhole eu-west-1 | 55.00 s | not before 60.00 s | not recovered | n/a |"
    ));
}

/// A report written before objectives were measured has none, reads back
/// and renders without the section.
#[test]
fn an_older_report_without_objectives_renders_without_them() {
    let mut json = serde_json::to_value(region_kill_report()).unwrap();
    json.as_object_mut().unwrap().remove("objectives");
    let older: DrillReport = serde_json::from_value(json).unwrap();
    assert_eq!(older.objectives, None);
    assert!(!render_html(&older).contains(r#"id="objectives""#));
    assert!(!render_markdown(&older).contains("## Recovery objectives"));
    assert_eq!(summary_line(&older), None);
}
