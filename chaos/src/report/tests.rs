//! Tests of the three renderings and of the atomic writes, on the
//! synthetic reports of [`super::fixture`].

use std::path::PathBuf;

use super::fixture::{aborted_report, empty_report, region_kill_report};
use super::{render_html, render_markdown, write_all};
use crate::model::{DrillReport, FaultDns, FaultWindow};

/// Every opened element of these kinds is closed again.
fn assert_balanced(html: &str) {
    for tag in [
        "section", "table", "details", "header", "main", "div", "tr", "script", "span",
    ] {
        let opened =
            html.matches(&format!("<{tag} ")).count() + html.matches(&format!("<{tag}>")).count();
        let closed = html.matches(&format!("</{tag}>")).count();
        assert_eq!(
            opened, closed,
            "<{tag}> opened {opened} times, closed {closed} times"
        );
    }
}

/// Nothing outside the file is referenced: no URL, no external script or
/// style sheet, no font, no image. The one address allowed is the one in
/// the vendored uPlot's licence banner (a comment).
fn assert_self_contained(html: &str) {
    let lower = html
        .to_lowercase()
        .replace("https://github.com/leeoniya/uplot", "")
        // Links inside the page are fine.
        .replace(r##"href="#"##, "");
    for forbidden in [
        "http",
        "@import",
        "url(",
        "<img",
        "<link",
        "src=",
        "href=",
        "<iframe",
        "fetch(",
        "xmlhttprequest",
    ] {
        assert!(!lower.contains(forbidden), "HTML references {forbidden:?}");
    }
    // The chart data and the inline script, nothing else.
    assert_eq!(lower.matches("<script").count(), 2);
    assert!(lower.contains(r#"<script type="application/json" id="chart-data">"#));
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chaos-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn html_shows_the_verdict_and_key_figures_and_is_self_contained() {
    let html = render_html(&region_kill_report());
    assert_balanced(&html);
    assert_self_contained(&html);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.contains(r#"<header class="verdict passed"><div class="verdict-word">PASSED</div>"#)
    );
    // Failover time, failure window, lost writes, error budget share.
    assert!(html.contains(r#"<div class="figure-value">1.20 s</div>"#));
    assert!(html.contains(r#"<div class="figure-value">3 s</div>"#));
    assert!(html.contains("t = 20–23 s"));
    assert!(html.contains(r#"<div class="figure-value">0</div>"#));
    let budget = region_kill_report().error_budget;
    assert!(html.contains(&super::format::percent(budget.consumed_fraction)));
    // The five charts (drawn by charts.js), the phase bars and the gauge.
    assert_eq!(html.matches(r#"<div class="chart"#).count(), 2 + 3);
    assert!(html.contains(r#"<div class="phase-bars""#));
    assert!(html.contains(r#"<div class="gauge""#));
    assert!(html.contains("region-kill us-east-1 (20.0 s to 45.0 s)"));
    assert!(html.contains("<td>DNS change</td>"));
    assert!(html.contains("<details><summary>Configuration (JSON)</summary><pre>{"));
    assert!(html.contains("&quot;key&quot;: &quot;probe.interval_ms&quot;"));
}

#[test]
fn html_escapes_everything_that_comes_from_the_data() {
    let mut report = region_kill_report();
    report.title = "<script>alert(1)</script>".to_string();
    report.events[0].detail = "a < b & \"c\"".to_string();
    report.client_regions[0] = "us-<east>".to_string();
    for bucket in &mut report.timeline {
        if bucket.client_region == "us-east-1" {
            bucket.client_region = "us-<east>".to_string();
        }
    }
    let html = render_html(&report);
    assert!(!html.contains("<script>alert"));
    assert!(!html.contains("us-<east>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"));
    assert!(html.contains("a &lt; b &amp; &quot;c&quot;"));
    assert!(html.contains("us-&lt;east&gt; clients"));
    // In the chart data too, where "</script>" would end the script.
    assert!(html.contains(r#""name":"us-\u003ceast\u003e""#));
    assert_balanced(&html);
    assert_self_contained(&html);
}

#[test]
fn markdown_has_the_tables_and_figures() {
    let markdown = render_markdown(&region_kill_report());
    assert!(markdown.starts_with("# PASSED: Region kill: us-east-1 under load"));
    assert!(markdown.contains("| Failover time (fault → DNS changed) | **1.20 s** |"));
    assert!(markdown.contains("| Client-visible failure window | **3 s** | t = 20–23 s"));
    assert!(markdown.contains("| Lost writes | **0** |"));
    assert!(markdown.contains("| Check | Expected | Observed | Result |"));
    assert!(markdown.contains("| lost writes | = 0 | 0 | ✅ pass |"));
    assert!(markdown.contains("| DNS changed | 21.20 | 1.20 s | +0.50 s |"));
    assert!(markdown.contains("| 20–25 | **"));
    assert!(markdown.contains("## Per second around the failures (18–25 s)"));
    assert!(markdown.contains("| 3 | 21.20 | DNS change | us-east-1 |"));
    assert!(markdown.contains("```json\n{"));
    // Every table row of the 5-second summary has as many cells as its header.
    let summary: Vec<&str> = markdown
        .lines()
        .skip_while(|line| !line.starts_with("| Seconds |"))
        .take_while(|line| line.starts_with('|'))
        .collect();
    assert_eq!(summary.len(), 2 + 12);
    let cells = |line: &str| line.replace("\\|", "").matches('|').count();
    assert!(summary.iter().all(|line| cells(line) == cells(summary[0])));
}

#[test]
fn json_round_trips_into_the_model() {
    let report = region_kill_report();
    let dir = temp_dir("json");
    let paths = write_all(&report, &dir).unwrap();
    let read: DrillReport =
        serde_json::from_str(&std::fs::read_to_string(&paths.json).unwrap()).unwrap();
    assert_eq!(read, report);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_fault_window_records_its_dns_outcome_and_older_reports_still_read() {
    let json = serde_json::to_value(&region_kill_report().faults[0]).unwrap();
    assert_eq!(
        json["dns"],
        serde_json::json!({"outcome": "left", "at_s": 21.2, "after_s": 1.2})
    );
    let older: FaultWindow = serde_json::from_str(
        r#"{"kind": "region-kill", "target": "eu-west-1", "start_s": 10.0, "end_s": 30.0}"#,
    )
    .unwrap();
    assert_eq!(older.dns, None);
}

#[test]
fn write_all_creates_the_three_files_and_no_temporary_ones() {
    let dir = temp_dir("write").join("nested");
    let report = region_kill_report();
    let paths = write_all(&report, &dir).unwrap();
    assert_eq!(paths.json, dir.join("report.json"));
    assert_eq!(paths.markdown, dir.join("report.md"));
    assert_eq!(paths.html, dir.join("report.html"));
    // A second run replaces the files in place.
    write_all(&report, &dir).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["report.html", "report.json", "report.md"]);
    assert_eq!(
        std::fs::read_to_string(&paths.html).unwrap(),
        render_html(&report)
    );
    std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
}

#[test]
fn aborted_drill_shows_the_reason_in_both_renderings() {
    let report = aborted_report();
    let html = render_html(&report);
    assert_balanced(&html);
    assert_self_contained(&html);
    assert!(html.contains(r#"<div class="verdict-word">ABORTED</div>"#));
    assert!(html.contains("Aborted: error budget burn above 50% (61.2%) at 22.0 s: rolled back"));
    // No DNS change was recorded: the failover time is unknown, not zero.
    // (minijinja escapes "/" too.)
    assert!(html.contains(r#"<div class="figure-value">n&#x2f;a</div>"#));
    let markdown = render_markdown(&report);
    assert!(markdown.starts_with("# ABORTED: "));
    assert!(markdown.contains("> **Aborted:** error budget burn above 50%"));
    assert!(markdown.contains("| DNS changed after the fault | <= 2.00 s | never | ❌ **fail** |"));
}

#[test]
fn empty_timeline_renders_with_no_data_messages() {
    let report = empty_report();
    let html = render_html(&report);
    assert_balanced(&html);
    assert_self_contained(&html);
    assert!(html.contains("no requests were recorded"));
    assert!(html.contains("no completed requests, so no latency"));
    assert!(html.contains("no fault was injected, so there are no failover phases"));
    assert!(html.contains("The controllers recorded no events."));
    let markdown = render_markdown(&report);
    assert!(markdown.contains("No requests were recorded, so there is no timeline."));
    assert!(markdown.contains("No fault was injected, so there are no failover phases."));
    let dir = temp_dir("empty");
    write_all(&report, &dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_fault_without_a_decision_says_so() {
    let mut report = region_kill_report();
    report.phases.detected_at_s = None;
    report.phases.drained_at_s = None;
    report.phases.dns_changed_at_s = None;
    report.phases.recovered_at_s = None;
    let html = render_html(&report);
    assert!(html.contains("fault at 20.00 s; the controllers never decided to drain"));
    assert!(render_markdown(&report).contains("The controllers never decided to drain."));
}

#[test]
fn milestones_out_of_order_and_bursts_of_events_stay_readable() {
    let mut report = region_kill_report();
    // As measured on the real deployment: the DNS change lands before the
    // drain flag, and the clients' view of it arrives as a burst of events.
    report.phases.drained_at_s = Some(20.88);
    report.phases.dns_changed_at_s = Some(20.80);
    report.phases.recovered_at_s = Some(20.0);
    let burst = report.events[2].clone();
    for offset in 0..8 {
        let mut event = burst.clone();
        event.at_s = 21.2 + offset as f64 * 0.02;
        report.events.push(event);
    }
    let html = render_html(&report);
    assert_balanced(&html);
    assert!(!html.contains(r#"width="-"#), "a negative width was drawn");
    assert!(html.contains("\u{2212}0.08 s"));
    // All twelve events reach the charts, in time order (charts.js groups
    // the badges of those a few pixels apart; the browser test sees them).
    assert_eq!(html.matches(r#""number":"#).count(), 12);
    let markdown = render_markdown(&report);
    assert!(markdown.contains("| DNS changed | 20.80 | 0.80 s | \u{2212}0.08 s |"));
}

#[test]
fn faults_tables_give_each_window_its_dns_outcome() {
    let markdown = render_markdown(&region_kill_report());
    assert!(markdown.contains("| Kind | Target | Start (s) | End (s) | DNS |"));
    assert!(markdown.contains(
        "| region-kill | us-east-1 | 20.00 | 45.00 | changed after 1.20 s (at 21.20 s) |"
    ));
    let html = render_html(&region_kill_report());
    assert!(html.contains("<td>changed after 1.20 s (at 21.20 s)</td>"));
}

#[test]
fn a_flapping_region_has_one_dns_change_and_later_kills_say_it_was_already_out() {
    let mut report = region_kill_report();
    let first = report.faults[0].clone();
    report.faults[0].end_s = Some(25.0);
    for start_s in [30.0, 40.0] {
        report.faults.push(FaultWindow {
            start_s,
            end_s: Some(start_s + 5.0),
            dns: Some(FaultDns::AlreadyOut),
            ..first.clone()
        });
    }
    let markdown = render_markdown(&report);
    assert!(markdown.contains("| Failover time (fault → DNS changed) | **1.20 s** |"));
    assert!(markdown.contains(
        "| region-kill | us-east-1 | 30.00 | 35.00 | no change: already out of DNS when it began |"
    ));
    assert_eq!(
        markdown.matches("already out of DNS when it began").count(),
        2
    );
    assert_eq!(markdown.matches("| DNS change |").count(), 1);
    let html = render_html(&report);
    assert_balanced(&html);
    assert_eq!(
        html.matches("<td>no change: already out of DNS when it began</td>")
            .count(),
        2
    );
}

#[test]
fn a_first_fault_on_a_region_already_out_of_dns_says_so_instead_of_a_failover_time() {
    let mut report = region_kill_report();
    report.faults[0].dns = Some(FaultDns::AlreadyOut);
    report.events.retain(|event| event.kind != "dns_change");
    report.phases.dns_changed_at_s = None;
    report.phases.dns_s = None;
    let markdown = render_markdown(&report);
    assert!(markdown.contains(
        "| Failover time (fault → DNS changed) | **n/a** | no DNS change: us-east-1 was already out of DNS when the fault began |"
    ));
    let html = render_html(&report);
    assert!(html.contains("no DNS change: us-east-1 was already out of DNS when the fault began"));
}

/// Writes the synthetic reports for a person to look at:
/// `REPORT_PREVIEW_DIR=/tmp/report-preview cargo test -p chaos report::tests::preview -- --ignored`.
#[test]
#[ignore = "writes files for a manual look"]
fn preview() {
    let dir = PathBuf::from(
        std::env::var("REPORT_PREVIEW_DIR").unwrap_or_else(|_| "/tmp/report-preview".to_string()),
    );
    write_all(&region_kill_report(), &dir).unwrap();
    write_all(&aborted_report(), &dir.join("aborted")).unwrap();
    write_all(&empty_report(), &dir.join("empty")).unwrap();
}

#[test]
fn the_way_back_is_shown_in_key_figures_phases_and_faults() {
    let report = region_kill_report();
    let markdown = render_markdown(&report);
    assert!(
        markdown.contains("| Failback time (fault ended → back in DNS) | **3.40 s** |"),
        "{markdown}"
    );
    assert!(markdown.contains("back in DNS after 3.40 s, served again after 3.90 s"));
    assert!(markdown.contains("| back in DNS | 48.40 |"));
    let html = render_html(&report);
    assert!(html.contains("Failback time"));
    assert!(html.contains("back in DNS after 3.40 s, served again after 3.90 s"));

    // A region that never came back says so instead of a time.
    let mut stuck = report.clone();
    stuck.faults[0].failback = Some(crate::model::Failback {
        dns_back_at_s: None,
        dns_back_after_s: None,
        served_again_at_s: None,
        served_again_after_s: None,
    });
    stuck.phases.back_in_dns_at_s = None;
    stuck.phases.served_again_at_s = None;
    stuck.phases.failback_s = None;
    let markdown = render_markdown(&stuck);
    assert!(markdown.contains("not back in DNS before the end of the drill"));
    assert!(markdown.contains("not back before its next fault or the end"));
}

#[test]
fn failed_operations_and_ledger_findings_are_listed_in_both_renderings() {
    let mut report = region_kill_report();
    let html = render_html(&report);
    let markdown = render_markdown(&report);
    assert_balanced(&html);
    assert!(html.contains("Failed and unknown operations"));
    assert!(html.contains("Every one of the drill's 100 accounts reconciles"));
    // The unknown write, with its fault and what the ledger says of it.
    assert!(html.contains(
        r#"<tr><td class="num">20.35</td><td>us-east-1</td><td>write</td><td>unknown</td><td>region-kill us-east-1</td><td>yes</td>"#
    ));
    assert!(markdown.contains(
        "| 20.35 | us-east-1 | write | unknown | region-kill us-east-1 | yes | 2 | 5f1c2a9e-write |"
    ));
    assert!(markdown.contains("connect: <refused>"));
    assert!(html.contains("connect: &lt;refused&gt;"));

    // A failed write found in the ledger is marked; findings replace the
    // all-clear sentence, escaped.
    report.failed_operations[0].outcome = "fail".to_string();
    report.ledger_findings = vec!["write <k>: failed, yet in the ledger".to_string()];
    let html = render_html(&report);
    assert!(html.contains(r#"<tr class="bad"><td class="num">20.35</td>"#));
    assert!(html.contains(r#"<li class="fail">write &lt;k&gt;: failed, yet in the ledger</li>"#));
    assert!(!html.contains("accounts reconciles"));
    assert!(render_markdown(&report).contains("- write <k>: failed, yet in the ledger"));

    report.failed_operations.clear();
    assert!(render_html(&report).contains("Every operation succeeded."));
}

/// An evacuated region that clients with cached answers kept reaching is
/// "served before" DNS gave it back, not "served again +-9.94 s".
#[test]
fn a_region_served_through_cached_answers_says_so() {
    let mut report = region_kill_report();
    assert_eq!(
        super::summary::failback_detail(&report),
        "fault ended → back in DNS · served again +0.50 s"
    );
    report.phases.served_again_at_s = Some(38.46);
    assert_eq!(
        super::summary::failback_detail(&report),
        "fault ended → back in DNS · served 9.94 s before that, through answers cached \
         before it left"
    );
}
