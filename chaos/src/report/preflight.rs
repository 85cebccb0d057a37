//! The preflight of a drill on a target (`configuration.preflight` in
//! report.json, written by `chaos drill --target`) as a table: each check,
//! its status, what it expected and observed, and when; for report.md and
//! report.html alike. A drill without a target has no preflight and no
//! table. Beside it, the load runners that sent a vantage point's load
//! (`configuration.runners`): where, their clock and what they sent.

use std::fmt::Write;

use serde::Serialize;

use super::format::escape_markdown_cell as cell;
use crate::model::DrillReport;
use crate::target::preflight::{Outcome, Preflight};

/// The table both renderers show.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PreflightView {
    pub target: String,
    pub passed: bool,
    pub checked_at: String,
    pub rows: Vec<PreflightRow>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct PreflightRow {
    pub check: String,
    /// `pass`, `fail`, `skipped`, or `failed earlier` (a check that failed
    /// on an earlier pass of the drill's preflight).
    pub status: &'static str,
    pub detail: String,
    pub time: String,
}

impl PreflightView {
    /// `None` when the report has no preflight (no `--target`), or one
    /// this version cannot read.
    pub(crate) fn new(report: &DrillReport) -> Option<Self> {
        let value = report.configuration.get("preflight")?;
        let preflight: Preflight = serde_json::from_value(value.clone()).ok()?;
        let time = preflight.checked_at.format("%H:%M:%S UTC").to_string();
        let rows = preflight
            .checks
            .iter()
            .map(|check| PreflightRow {
                check: check.name.clone(),
                status: match check.outcome {
                    Outcome::Pass => "pass",
                    Outcome::Fail => "fail",
                    Outcome::Skipped => "skipped",
                },
                detail: format!("expected {}; observed {}", check.expected, check.observed),
                time: time.clone(),
            })
            // What failed on an earlier pass and passed when checked again
            // (or failed again: then it is also in the rows above).
            .chain(preflight.failed_earlier.iter().map(|check| PreflightRow {
                check: check.name.clone(),
                status: "failed earlier",
                detail: format!(
                    "on an earlier pass: expected {}; observed {}",
                    check.expected, check.observed
                ),
                time: String::new(),
            }))
            .collect();
        Some(Self {
            target: preflight.target,
            passed: preflight.passed,
            checked_at: preflight
                .checked_at
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
            rows,
        })
    }
}

/// The "Preflight" section of report.md; nothing without a preflight.
pub(crate) fn markdown(out: &mut String, report: &DrillReport) {
    let Some(view) = PreflightView::new(report) else {
        return;
    };
    out.push_str("## Preflight\n\n");
    let _ = writeln!(
        out,
        "Target `{}`, checked {} before the first fault: {}.\n",
        view.target,
        view.checked_at,
        if view.passed {
            "every check passed"
        } else {
            "**a check failed**"
        }
    );
    out.push_str("| Check | Status | Detail | Time |\n|---|---|---|---|\n");
    for row in &view.rows {
        let status = match row.status {
            "pass" => "✅ pass",
            "fail" => "❌ **fail**",
            "failed earlier" => "⚠️ failed on an earlier pass",
            other => other,
        };
        let _ = writeln!(
            out,
            "| {} | {status} | {} | {} |",
            cell(&row.check),
            cell(&row.detail),
            row.time
        );
    }
    out.push('\n');
}

/// One load runner, as both renderers show it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunnerRow {
    pub region: String,
    pub url: String,
    pub rtt_ms: String,
    pub offset_ms: String,
    pub late_ms: String,
    pub operations: usize,
    /// Empty when the runner did its part.
    pub error: String,
}

/// The runners of the drill; empty when this machine sent every load.
pub(crate) fn runner_rows(report: &DrillReport) -> Vec<RunnerRow> {
    let Some(value) = report.configuration.get("runners") else {
        return Vec::new();
    };
    let runners: Vec<crate::runner::client::RunnerSummary> =
        serde_json::from_value(value.clone()).unwrap_or_default();
    runners
        .into_iter()
        .map(|runner| RunnerRow {
            region: runner.region,
            url: runner.url,
            rtt_ms: format!("{:.1}", runner.clock.rtt_ms),
            offset_ms: format!("{:+.1}", runner.clock.offset_ms),
            late_ms: format!("{:.0}", runner.late_ms),
            operations: runner.operations,
            error: runner.error.unwrap_or_default(),
        })
        .collect()
}

/// The "Load runners" section of report.md; nothing without a runner.
pub(crate) fn runners_markdown(out: &mut String, report: &DrillReport) {
    let rows = runner_rows(report);
    if rows.is_empty() {
        return;
    }
    out.push_str(
        "## Load runners\n\nThese client regions' load came from a `chaos runner` where their \
         clients are; the others' from this machine. Their operations keep the drill's time: \
         the runner's clock offset was measured before t = 0 (within half the round trip).\n\n",
    );
    out.push_str(
        "| Client region | Runner | Round trip (ms) | Clock offset (ms) | Started late (ms) | \
         Operations | Failure |\n|---|---|---|---|---|---|---|\n",
    );
    for row in &rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            cell(&row.region),
            cell(&row.url),
            row.rtt_ms,
            row.offset_ms,
            row.late_ms,
            row.operations,
            if row.error.is_empty() {
                "none".to_owned()
            } else {
                format!("**{}**", cell(&row.error))
            }
        );
    }
    out.push('\n');
}
