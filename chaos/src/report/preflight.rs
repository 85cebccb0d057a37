//! The preflight of a drill on a target (`configuration.preflight` in
//! report.json, written by `chaos drill --target`) as a table: each check,
//! its status, what it expected and observed, and when; for report.md and
//! report.html alike. A drill without a target has no preflight and no
//! table.

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
    /// `pass`, `fail` or `skipped`.
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
