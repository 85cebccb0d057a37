//! The runs of `command` and `http` faults (`faults[].hooks` in
//! report.json) as a table: which fault, start or stop, what ran or was
//! called, how it ended, how long it took, and the end of its output; for
//! report.md and report.html alike. A drill without hooks has no table.

use std::fmt::Write;

use serde::Serialize;

use super::format::escape_markdown_cell as cell;
use crate::model::DrillReport;

/// The tail of a run's output the tables show (report.json keeps 64 KiB).
const SHOWN_OUTPUT_CHARS: usize = 300;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct HookRow {
    /// `command eu-west-1 at 3.0 s`.
    pub fault: String,
    /// `start` or `stop`.
    pub run: &'static str,
    /// The argv (space-joined) or `METHOD url`.
    pub what: String,
    /// `exit 0`, `timed out`, `HTTP 204`, `no answer: ...`.
    pub result: String,
    pub ok: bool,
    pub elapsed: String,
    /// The last lines of stdout and stderr, or of the answer's body.
    pub output: String,
}

/// Every hook run of the drill, fault by fault, start before stop.
pub(crate) fn rows(report: &DrillReport) -> Vec<HookRow> {
    let mut rows = Vec::new();
    for fault in &report.faults {
        let label = format!("{} {} at {:.1} s", fault.kind, fault.target, fault.start_s);
        for (index, run) in fault.hooks.iter().enumerate() {
            let row = HookRow {
                fault: label.clone(),
                run: if index == 0 { "start" } else { "stop" },
                what: run.what(),
                result: run.result(),
                ok: run.succeeded(),
                elapsed: format!("{:.2} s", run.elapsed_s()),
                output: run.output_tail(SHOWN_OUTPUT_CHARS),
            };
            rows.push(row);
        }
    }
    rows
}

/// The "Hooks" section of report.md; nothing without hook runs.
pub(crate) fn markdown(out: &mut String, report: &DrillReport) {
    let rows = rows(report);
    if rows.is_empty() {
        return;
    }
    out.push_str("## Hooks\n\n");
    out.push_str(
        "The commands and calls of `command` and `http` faults (whole outputs, up to 64 KiB, \
         in report.json under `faults[].hooks`).\n\n",
    );
    out.push_str("| Fault | Run | What | Result | Took | Output (end) |\n");
    out.push_str("|---|---|---|---|---:|---|\n");
    for row in &rows {
        let result = if row.ok {
            format!("✅ {}", row.result)
        } else {
            format!("❌ **{}**", row.result)
        };
        let _ = writeln!(
            out,
            "| {} | {} | `{}` | {} | {} | {} |",
            cell(&row.fault),
            row.run,
            cell(&row.what).replace('`', "'"),
            cell(&result),
            row.elapsed,
            cell(&row.output),
        );
    }
    out.push('\n');
}
