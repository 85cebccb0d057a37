//! The recovery objectives as the three renderings show them: one row per
//! figure (RTO, time to failback, RPO) with its objective and result, one
//! row per fault window when there are several, and the terminal's line.

use std::fmt::Write;

use serde::Serialize;

use super::format::{count, escape_markdown_cell as cell, seconds};
use crate::model::{DrillReport, Objectives};

/// One figure beside its objective.
#[derive(Debug, Serialize)]
pub(crate) struct ObjectiveRow {
    pub name: &'static str,
    /// "<= 5 s", or "no objective".
    pub objective: String,
    pub measured: String,
    pub detail: String,
    /// "pass", "fail", "no objective" or "reported" (no objective exists).
    pub result: &'static str,
}

/// One fault window's recovery.
#[derive(Debug, Serialize)]
pub(crate) struct FaultRow {
    pub fault: String,
    pub injected: String,
    pub served_again: String,
    pub rto: String,
    pub failback: String,
    pub recovered: bool,
}

/// What the HTML's "Recovery objectives" card shows.
#[derive(Debug, Serialize)]
pub(crate) struct ObjectivesView {
    pub rows: Vec<ObjectiveRow>,
    /// Empty for a drill of one fault (its figures are the rows above).
    pub faults: Vec<FaultRow>,
    pub definition: String,
}

impl ObjectivesView {
    /// `None` for a report written before objectives were measured.
    pub(crate) fn new(report: &DrillReport) -> Option<Self> {
        let objectives = report.objectives.as_ref()?;
        Some(Self {
            rows: rows(objectives),
            faults: if objectives.faults.len() > 1 {
                fault_rows(objectives)
            } else {
                Vec::new()
            },
            definition: definition(objectives),
        })
    }
}

fn result(passed: Option<bool>) -> &'static str {
    match passed {
        Some(true) => "pass",
        Some(false) => "fail",
        None => "no objective",
    }
}

fn rows(objectives: &Objectives) -> Vec<ObjectiveRow> {
    let rto = &objectives.rto;
    let rpo = &objectives.rpo;
    let rto_measured = match (rto.measured_s, objectives.faults.is_empty()) {
        (_, true) => "no fault".to_owned(),
        (Some(measured), false) => format!("{measured:.2} s"),
        (None, false) => "not recovered".to_owned(),
    };
    vec![
        ObjectiveRow {
            name: "Recovery time (RTO)",
            objective: rto
                .objective_s
                .map_or("no objective".to_owned(), |s| format!("<= {s} s")),
            measured: rto_measured,
            detail: format!(
                "fault injection to every client region served again after the retry; {}",
                crate::objectives::rto_observed(objectives)
            ),
            result: result(rto.passed),
        },
        ObjectiveRow {
            name: "Time to failback",
            objective: "—".to_owned(),
            measured: seconds(rto.failback_s),
            detail: "the fault's end to its region back in the clients' DNS answers".to_owned(),
            result: "reported",
        },
        ObjectiveRow {
            name: "Recovery point (RPO)",
            objective: rpo
                .objective_writes
                .map_or("no objective".to_owned(), |w| format!("<= {w} writes")),
            measured: format!("{} writes", count(rpo.measured_writes)),
            detail: format!(
                "acknowledged writes missing from the ledger, of {} acknowledged",
                count(rpo.acknowledged_writes)
            ),
            result: result(rpo.passed),
        },
    ]
}

fn fault_rows(objectives: &Objectives) -> Vec<FaultRow> {
    objectives
        .faults
        .iter()
        .map(|fault| FaultRow {
            fault: format!("{} {}", fault.kind, fault.target).trim().to_owned(),
            injected: format!("{:.2} s", fault.start_s),
            served_again: match fault.served_again_at_s {
                Some(at) => format!("{at:.2} s"),
                None => format!("not before {:.2} s", fault.until_s),
            },
            rto: fault
                .rto_s
                .map_or("not recovered".to_owned(), |s| format!("{s:.2} s")),
            failback: seconds(fault.failback_s),
            recovered: fault.rto_s.is_some(),
        })
        .collect()
}

/// What the RTO measures, in one sentence for the reader of the report.
fn definition(objectives: &Objectives) -> String {
    format!(
        "The clock starts when a fault is injected. A fault's RTO runs to the first second from \
         which every client region's success ratio after the retry stays at or above {:.1}% until \
         the next fault or the end of the load; the drill's is its worst fault's. RPO counts \
         acknowledged writes the ledger no longer holds.",
        objectives.served_at_or_above * 100.0
    )
}

/// The Markdown section: the figures beside their objectives, then each
/// fault's recovery when there are several.
pub(crate) fn markdown(out: &mut String, report: &DrillReport) {
    let Some(view) = ObjectivesView::new(report) else {
        return;
    };
    out.push_str("## Recovery objectives\n\n");
    let _ = writeln!(out, "{}\n", view.definition);
    out.push_str("| Figure | Objective | Measured | Detail | Result |\n|---|---|---:|---|---|\n");
    for row in &view.rows {
        let result = match row.result {
            "pass" => "✅ pass",
            "fail" => "❌ **fail**",
            other => other,
        };
        let _ = writeln!(
            out,
            "| {} | {} | **{}** | {} | {result} |",
            row.name,
            cell(&row.objective),
            cell(&row.measured),
            cell(&row.detail)
        );
    }
    out.push('\n');
    if view.faults.is_empty() {
        return;
    }
    out.push_str(
        "| Fault | Injected at | Clients served again at | RTO | Time to failback |\n\
         |---|---:|---:|---:|---:|\n",
    );
    for fault in &view.faults {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            cell(&fault.fault),
            fault.injected,
            fault.served_again,
            fault.rto,
            fault.failback
        );
    }
    out.push('\n');
}

/// The terminal's line: measured RTO, failback and RPO, each with its
/// objective's result. `None` for a report without objectives measured.
pub fn summary_line(report: &DrillReport) -> Option<String> {
    let view = ObjectivesView::new(report)?;
    let parts: Vec<String> = view
        .rows
        .iter()
        .map(|row| match row.result {
            "reported" => format!("{} {}", row.name, row.measured),
            "no objective" => format!("{} {} (no objective)", row.name, row.measured),
            verdict => format!(
                "{} {} (objective {}: {verdict})",
                row.name, row.measured, row.objective
            ),
        })
        .collect();
    Some(format!("  objectives: {}", parts.join("  ")))
}
