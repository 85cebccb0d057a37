//! The runs of `command` and `http` faults (`faults[].hooks` in
//! report.json) as a table: which fault, start or stop, what ran or was
//! called, how it ended, how long it took, and the end of its output; for
//! report.md and report.html alike. A drill without hooks has no table.

use std::fmt::Write;

use serde::Serialize;

use super::format::escape_markdown_cell as cell;
use crate::actuators::HookRun;
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
            let run_name = if index == 0 { "start" } else { "stop" };
            let row = match run {
                HookRun::Command(run) => HookRow {
                    fault: label.clone(),
                    run: run_name,
                    what: run.argv.join(" "),
                    result: match (run.timed_out, run.exit_code) {
                        (true, _) => "timed out (killed)".into(),
                        (false, Some(code)) => format!("exit {code}"),
                        (false, None) => "killed by a signal".into(),
                    },
                    ok: run.succeeded(),
                    elapsed: format!("{:.2} s", run.elapsed_s),
                    output: tail(&[run.stdout.as_str(), run.stderr.as_str()]),
                },
                HookRun::Http(run) => HookRow {
                    fault: label.clone(),
                    run: run_name,
                    what: format!("{} {}", run.method, run.url),
                    result: match (&run.error, run.status) {
                        (Some(error), _) => format!("no answer: {error}"),
                        (None, Some(status)) => format!("HTTP {status}"),
                        (None, None) => "no answer".into(),
                    },
                    ok: run.succeeded(),
                    elapsed: format!("{:.2} s", run.elapsed_s),
                    output: tail(&[run.body.as_str()]),
                },
            };
            rows.push(row);
        }
    }
    rows
}

/// The last [`SHOWN_OUTPUT_CHARS`] characters of the non-empty parts,
/// trimmed, joined by " / ".
fn tail(parts: &[&str]) -> String {
    let joined = parts
        .iter()
        .map(|part| part.trim())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    let count = joined.chars().count();
    if count <= SHOWN_OUTPUT_CHARS {
        return joined;
    }
    let kept: String = joined.chars().skip(count - SHOWN_OUTPUT_CHARS).collect();
    format!("…{kept}")
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
