//! The preflight table of a drill on a target, in report.md and
//! report.html; absent without a preflight.

use super::fixture::region_kill_report;
use super::{render_html, render_markdown};
use crate::model::DrillReport;

fn with_preflight() -> DrillReport {
    let mut report = region_kill_report();
    report.configuration["preflight"] = serde_json::json!({
        "target": "staging",
        "checked_at": "2026-12-06T21:50:07Z",
        "passed": true,
        "checks": [
            {"name": "region eu-west-1 healthy", "outcome": "pass",
             "expected": "every endpoint's /readyz answers 200",
             "observed": "https://10.0.2.10:443 200"},
            {"name": "ledger reachable", "outcome": "skipped",
             "expected": "SELECT count(*) FROM accounts answers",
             "observed": "no ledger configured"},
            {"name": "a leader | holds the lease", "outcome": "fail",
             "expected": "exactly one controller holds it",
             "observed": "no controller holds it"}
        ]
    });
    report
}

#[test]
fn the_preflight_is_a_table_in_the_markdown() {
    let markdown = render_markdown(&with_preflight());
    let table = "## Preflight\n\n\
        Target `staging`, checked 2026-12-06 21:50:07 UTC before the first fault: every check passed.\n\n\
        | Check | Status | Detail | Time |\n\
        |---|---|---|---|\n\
        | region eu-west-1 healthy | ✅ pass | expected every endpoint's /readyz answers 200; observed https://10.0.2.10:443 200 | 21:50:07 UTC |\n\
        | ledger reachable | skipped | expected SELECT count(*) FROM accounts answers; observed no ledger configured | 21:50:07 UTC |\n\
        | a leader \\| holds the lease | ❌ **fail** | expected exactly one controller holds it; observed no controller holds it | 21:50:07 UTC |\n\n";
    assert!(markdown.contains(table), "{markdown}");
    // After the hypothesis, before the phases.
    let at = markdown.find("## Preflight").unwrap();
    assert!(markdown.find("## Steady-state hypothesis").unwrap() < at);
    assert!(at < markdown.find("## Failover and failback phases").unwrap());
}

#[test]
fn the_preflight_is_a_table_in_the_html() {
    let html = render_html(&with_preflight());
    assert!(html.contains(r#"<section class="card preflight" id="preflight"><h2>Preflight</h2>"#));
    assert!(
        html.contains(r#"<tr><td>region eu-west-1 healthy</td><td class="pass">✓ pass</td><td>expected every endpoint"#),
        "{html}"
    );
    assert!(html.contains(r#"200</td><td class="num">21:50:07 UTC</td></tr>"#));
    assert!(html.contains(
        r#"<tr class="bad"><td>a leader | holds the lease</td><td class="fail">✗ fail</td>"#
    ));
    assert!(html.contains(r#"<td class="muted">skipped</td>"#));
}

#[test]
fn without_a_preflight_there_is_no_table() {
    let report = region_kill_report();
    assert!(!render_markdown(&report).contains("## Preflight"));
    assert!(!render_html(&report).contains(r#"id="preflight""#));
}

fn with_runners() -> DrillReport {
    let mut report = region_kill_report();
    report.configuration["runners"] = serde_json::json!([
        {"region": "ap-southeast-1", "url": "https://runner.ap-southeast-1.example:7460",
         "clock": {"offset_ms": -12.34, "rtt_ms": 221.06}, "late_ms": 0.0,
         "operations": 300},
        {"region": "eu-west-1", "url": "https://runner.eu-west-1.example:7460",
         "clock": {"offset_ms": 3.0, "rtt_ms": 70.4}, "late_ms": 0.0,
         "operations": 41, "error": "the runner was shut down during the load"}
    ]);
    report
}

#[test]
fn the_load_runners_are_a_table_in_both_reports_and_absent_without_one() {
    let markdown = render_markdown(&with_runners());
    assert!(
        markdown.contains(
            "| ap-southeast-1 | https://runner.ap-southeast-1.example:7460 | 221.1 | -12.3 | 0 | 300 | none |\n\
             | eu-west-1 | https://runner.eu-west-1.example:7460 | 70.4 | +3.0 | 0 | 41 | **the runner was shut down during the load** |\n"
        ),
        "{markdown}"
    );
    let html = render_html(&with_runners());
    assert!(html.contains(r#"<section class="card runners" id="runners"><h2>Load runners</h2>"#));
    assert!(
        html.contains(r#"<tr class="bad"><td>eu-west-1</td><td>https:"#)
            && html.contains(r#"<td class="num">221.1</td><td class="num">-12.3</td>"#)
            && html
                .contains(r#"<span class="fail">the runner was shut down during the load</span>"#),
        "{html}"
    );
    let plain = region_kill_report();
    assert!(!render_markdown(&plain).contains("## Load runners"));
    assert!(!render_html(&plain).contains("Load runners"));
}

#[test]
fn a_check_that_failed_on_an_earlier_pass_is_shown_beside_the_last_pass() {
    let mut report = with_preflight();
    report.configuration["preflight"]["failed_earlier"] = serde_json::json!([
        {"name": "controllers agree", "outcome": "fail",
         "expected": "one view", "observed": "us-east-1 says leader none"}
    ]);
    let markdown = render_markdown(&report);
    assert!(
        markdown.contains(
            "| controllers agree | ⚠️ failed on an earlier pass | on an earlier pass: expected one view; \
             observed us-east-1 says leader none |  |\n"
        ),
        "{markdown}"
    );
    let html = render_html(&report);
    assert!(
        html.contains(r#"<td>controllers agree</td><td class="muted">failed earlier</td>"#),
        "{html}"
    );
}
