//! The verifier's findings and every operation that failed or ended
//! unknown, in both renderings: what an on-call engineer reads to see
//! which requests the outage cost and whether the ledger agrees.

use std::fmt::Write;

use super::format::{escape_html, escape_markdown_cell};
use crate::model::{DrillReport, FailedOperation};

/// Rows shown; `report.json` and `history.jsonl` hold every one.
const MAX_ROWS: usize = 1000;

/// The HTML section: the findings (when any), then the table.
pub(crate) fn html(out: &mut String, report: &DrillReport) {
    out.push_str(r#"<section class="card"><h2>Ledger verification</h2>"#);
    if report.ledger_findings.is_empty() {
        let _ = write!(
            out,
            r#"<p class="note">Every one of the drill's {} accounts reconciles with the history: opening balance plus the acknowledged transfers plus the unknown-outcome transfers found applied; every acknowledged transfer is in the ledger once, as sent; no failed transfer and nothing that no client sent is.</p>"#,
            report.totals.accounts_checked
        );
    } else {
        out.push_str("<ul>");
        for finding in &report.ledger_findings {
            let _ = write!(out, r#"<li class="fail">{}</li>"#, escape_html(finding));
        }
        out.push_str("</ul>");
    }
    out.push_str(r#"<h2 class="spaced">Failed and unknown operations</h2>"#);
    if report.failed_operations.is_empty() {
        out.push_str(r#"<p class="note">Every operation succeeded.</p></section>"#);
        return;
    }
    out.push_str(r#"<p class="note">Each operation that failed after its retry or ended with an unknown outcome, by intended start, with the fault active then and what the ledger holds of a write (a failed write must be absent; an unknown one is resolved by it). The whole history is in <code>history.jsonl</code>.</p>"#);
    out.push_str(r#"<table class="events"><thead><tr><th class="num">At (s)</th><th>Clients</th><th>Kind</th><th>Outcome</th><th>During</th><th>In the ledger</th><th class="num">Attempts</th><th>Key</th><th>First error</th></tr></thead><tbody>"#);
    for operation in report.failed_operations.iter().take(MAX_ROWS) {
        let bad = operation.outcome == "fail" && operation.in_ledger == Some(true);
        let _ = write!(
            out,
            r#"<tr{class}><td class="num">{at:.2}</td><td>{client}</td><td>{kind}</td><td>{outcome}</td><td>{during}</td><td>{ledger}</td><td class="num">{attempts}</td><td><code>{key}</code></td><td>{error}</td></tr>"#,
            class = if bad { r#" class="bad""# } else { "" },
            at = operation.intended_s,
            client = escape_html(&operation.client_region),
            kind = escape_html(&operation.kind),
            outcome = escape_html(&operation.outcome),
            during = escape_html(&during(operation)),
            ledger = in_ledger(operation),
            attempts = operation.attempts,
            key = escape_html(operation.key.as_deref().unwrap_or("")),
            error = escape_html(operation.first_error.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</tbody></table>");
    more(out, report, "<p class=\"note\">", "</p>");
    out.push_str("</section>\n");
}

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
