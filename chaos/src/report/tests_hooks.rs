//! The hook runs of `command` and `http` faults, in report.md and
//! report.html; absent without hooks.

use super::fixture::region_kill_report;
use super::{render_html, render_markdown};
use crate::actuators::command::CommandRun;
use crate::actuators::http::HttpRun;
use crate::actuators::HookRun;
use crate::model::DrillReport;

fn with_hooks() -> DrillReport {
    let mut report = region_kill_report();
    let fault = &mut report.faults[0];
    fault.kind = "command".into();
    fault.hooks = vec![
        HookRun::Command(CommandRun {
            argv: vec!["kubectl".into(), "scale".into(), "--replicas=0".into()],
            exit_code: Some(0),
            timed_out: false,
            elapsed_s: 1.234,
            stdout: format!("{}deployment.apps/service scaled\n", "x".repeat(400)),
            stderr: String::new(),
        }),
        HookRun::Http(HttpRun {
            method: "POST".into(),
            url: "https://chaos.example.com/stop|now".into(),
            status: Some(500),
            elapsed_s: 0.05,
            body: "<b>boom</b>".into(),
            error: None,
        }),
    ];
    report
}

#[test]
fn hook_runs_are_a_table_in_both_reports() {
    let report = with_hooks();
    let markdown = render_markdown(&report);
    assert!(markdown.contains("## Hooks\n"), "{markdown}");
    let start = markdown
        .lines()
        .find(|line| line.contains("`kubectl scale --replicas=0`"))
        .unwrap_or_else(|| panic!("{markdown}"));
    assert!(
        start.starts_with("| command us-east-1 at 20.0 s | ")
            && start.contains("| start | ")
            && start.contains("| ✅ exit 0 | 1.23 s | …")
            && start.ends_with("xxxxdeployment.apps/service scaled |"),
        "{start}"
    );
    // The output column keeps the last 300 characters.
    assert!(start.len() < 600, "{start}");
    assert!(
        markdown.contains(
            "| stop | `POST https://chaos.example.com/stop\\|now` | ❌ **HTTP 500** | 0.05 s | <b>boom</b> |"
        ),
        "{markdown}"
    );
    let html = render_html(&report);
    assert!(
        html.contains(r#"<h2 class="spaced" id="hooks">Hooks</h2>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<td class="fail">✗ HTTP 500</td>"#),
        "{html}"
    );
    // Escaped: an answer's body is not markup.
    assert!(html.contains("&lt;b&gt;boom&lt;&#x2f;b&gt;"), "{html}");
}

#[test]
fn a_drill_without_hooks_has_no_hooks_section() {
    let report = region_kill_report();
    assert!(!render_markdown(&report).contains("## Hooks"));
    assert!(!render_html(&report).contains(r#"id="hooks""#));
}
