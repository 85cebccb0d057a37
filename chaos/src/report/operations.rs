//! The verifier's findings and every operation that failed or ended
//! unknown, in Markdown (the HTML's are in `templates/details.html`): what
//! an on-call engineer reads to see which requests the outage cost and
//! whether the ledger agrees.

use std::fmt::Write;

use super::format::escape_markdown_cell;
use crate::model::{DrillReport, FailedOperation};

/// Rows shown (the HTML shows as many); `report.json` and `history.jsonl`
/// hold every one.
const MAX_ROWS: usize = 1000;

/// The Markdown section.
pub(crate) fn markdown(out: &mut String, report: &DrillReport) {
    out.push_str("## Ledger verification\n\n");
    if report.ledger_findings.is_empty() {
        let _ = writeln!(
            out,
            "Every one of the drill's {} accounts reconciles with the history.\n",
            report.totals.accounts_checked
        );
    } else {
        for finding in &report.ledger_findings {
            let _ = writeln!(out, "- {}", escape_markdown_cell(finding));
        }
        out.push('\n');
    }
    out.push_str("## Failed and unknown operations\n\n");
    if report.failed_operations.is_empty() {
        out.push_str("Every operation succeeded.\n\n");
        return;
    }
    out.push_str("| At (s) | Clients | Kind | Outcome | During | In the ledger | Attempts | Key | First error |\n|---:|---|---|---|---|---|---:|---|---|\n");
    for operation in report.failed_operations.iter().take(MAX_ROWS) {
        let _ = writeln!(
            out,
            "| {:.2} | {} | {} | {} | {} | {} | {} | {} | {} |",
            operation.intended_s,
            escape_markdown_cell(&operation.client_region),
            escape_markdown_cell(&operation.kind),
            escape_markdown_cell(&operation.outcome),
            escape_markdown_cell(&during(operation)),
            in_ledger(operation),
            operation.attempts,
            escape_markdown_cell(operation.key.as_deref().unwrap_or("")),
            escape_markdown_cell(operation.first_error.as_deref().unwrap_or("")),
        );
    }
    out.push('\n');
    more(out, report, "", "\n\n");
}

fn during(operation: &FailedOperation) -> String {
    if operation.during.is_empty() {
        "no fault".to_owned()
    } else {
        operation.during.join(", ")
    }
}

fn in_ledger(operation: &FailedOperation) -> &'static str {
    match operation.in_ledger {
        None => "",
        Some(true) => "yes",
        Some(false) => "no",
    }
}

fn more(out: &mut String, report: &DrillReport, open: &str, close: &str) {
    let hidden = report.failed_operations.len().saturating_sub(MAX_ROWS);
    if hidden > 0 {
        let _ = write!(
            out,
            "{open}{hidden} more in report.json and history.jsonl.{close}"
        );
    }
}
