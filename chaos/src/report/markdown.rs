//! The Markdown report: the same facts as the HTML in GitHub-flavoured
//! tables, with a 5-second summary and a per-second table around failures.

use std::fmt::Write;

use super::format::{
    count, escape_markdown_cell as cell, event_kind_label, percent, seconds, signed_count,
    signed_seconds,
};
use super::html::verdict_word;
use super::summary::{
    failback_detail, failover_detail, fault_dns_text, fault_failback_text, fault_operations_text,
    Derived,
};
use super::{markdown_conditions, markdown_timeline};
use crate::model::{DrillReport, Verdict};

/// Renders the report as GitHub-flavoured Markdown.
pub fn render_markdown(report: &DrillReport) -> String {
    let derived = Derived::new(report);
    let mut out = String::with_capacity(16 * 1024);
    header(&mut out, report);
    key_figures(&mut out, report, &derived);
    super::objectives::markdown(&mut out, report);
    checks(&mut out, report);
    super::preflight::markdown(&mut out, report);
    super::preflight::runners_markdown(&mut out, report);
    phases(&mut out, &derived);
    error_budget(&mut out, report);
    totals(&mut out, report);
    super::operations::markdown(&mut out, report);
    markdown_timeline::per_five_seconds(&mut out, report, &derived);
    if let Some(window) = &derived.failure_window {
        markdown_timeline::around_failures(&mut out, &derived, window);
    }
    faults_and_events(&mut out, report, &derived);
    super::hooks::markdown(&mut out, report);
    markdown_conditions::conditions(&mut out, report);
    run(&mut out, report);
    out
}

fn header(out: &mut String, report: &DrillReport) {
    let passed = report.checks.iter().filter(|check| check.passed).count();
    let _ = writeln!(
        out,
        "# {}: {}\n",
        verdict_word(report.verdict),
        report.title.replace('\n', " ")
    );
    let _ = writeln!(
        out,
        "**Verdict: {}** — {passed} of {} hypothesis checks passed.\n",
        verdict_word(report.verdict),
        report.checks.len()
    );
    if report.verdict == Verdict::Stopped {
        let reason = report
            .abort_reason
            .as_deref()
            .unwrap_or("no reason was recorded");
        let _ = writeln!(out, "> **Stopped:** {}\n", reason.replace('\n', " "));
    }
    if report.verdict == Verdict::Aborted {
        let reason = report
            .abort_reason
            .as_deref()
            .unwrap_or("no reason was recorded");
        let _ = writeln!(out, "> **Aborted:** {}\n", reason.replace('\n', " "));
    }
    let _ = writeln!(
        out,
        "Drill `{}`, started {}, {:.0} s of load, seed `{}`.\n",
        report.drill_file,
        report.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        report.duration_s,
        report.seed
    );
}

fn key_figures(out: &mut String, report: &DrillReport, derived: &Derived<'_>) {
    let totals = &report.totals;
    let budget = &report.error_budget;
    let window = match &derived.failure_window {
        Some(window) => (
            format!("{} s", window.length_s()),
            format!(
                "t = {}–{} s, {} second(s) with failures, {} clients",
                window.first_second,
                window.end_second,
                window.seconds_with_failures,
                window.client_regions.join(", ")
            ),
        ),
        None => (
            "none".to_string(),
            "no failed or unknown request".to_string(),
        ),
    };
    out.push_str("## Key figures\n\n| Figure | Value | Detail |\n|---|---:|---|\n");
    let rows = [
        (
            "Failover time (fault → DNS changed)",
            seconds(derived.failover_s),
            failover_detail(report),
        ),
        (
            "Failback time (fault ended → back in DNS)",
            seconds(derived.failback_s),
            failback_detail(report),
        ),
        ("Client-visible failure window", window.0, window.1),
        (
            "Lost writes",
            count(totals.writes_lost),
            format!(
                "of {} acknowledged, {} accounts unreconciled",
                count(totals.writes_acknowledged),
                count(totals.accounts_unreconciled)
            ),
        ),
        (
            "Error budget used",
            percent(budget.consumed_fraction),
            format!(
                "{:.1} s of the {:.2} min 30-day budget at {:.0} req/s",
                budget.consumed_minutes * 60.0,
                budget.budget_minutes,
                budget.request_rate_per_s
            ),
        ),
        markdown_conditions::availability_row(report),
        (
            "Failed after the retry",
            count(totals.failed),
            format!(
                "of {} requests, {} success, {} unknown, {} retried ok",
                count(totals.requests),
                derived
                    .overall_success
                    .map(percent)
                    .unwrap_or_else(|| "n/a".to_string()),
                count(totals.unknown),
                count(totals.retried_ok)
            ),
        ),
    ];
    for (name, value, detail) in rows {
        let _ = writeln!(out, "| {name} | **{}** | {} |", cell(&value), cell(&detail));
    }
    out.push('\n');
}

fn checks(out: &mut String, report: &DrillReport) {
    out.push_str("## Steady-state hypothesis\n\n");
    if report.checks.is_empty() {
        out.push_str("No checks were evaluated.\n\n");
        return;
    }
    out.push_str("| Check | Expected | Observed | Result |\n|---|---|---|---|\n");
    for check in &report.checks {
        let result = if check.passed {
            "✅ pass"
        } else {
            "❌ **fail**"
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {result} |",
            cell(&check.name),
            cell(&check.expected),
            cell(&check.observed)
        );
    }
    out.push('\n');
}

fn phases(out: &mut String, derived: &Derived<'_>) {
    out.push_str("## Failover and failback phases\n\n");
    if derived.milestones.is_empty() {
        out.push_str("No fault was injected, so there are no failover phases.\n\n");
        return;
    }
    out.push_str("| Milestone | At (s) | Since the fault | Since the previous milestone |\n|---|---:|---:|---:|\n");
    for row in derived.phase_rows() {
        let _ = writeln!(
            out,
            "| {} | {:.2} | {} | {} |",
            row.label,
            row.at_s,
            seconds(row.since_fault_s),
            signed_seconds(row.since_previous_s)
        );
    }
    let decided = derived
        .milestones
        .iter()
        .any(|m| m.label != "fault" && !super::summary::is_return_milestone(m.label));
    if !decided {
        out.push_str("\nThe controllers never decided to drain.\n");
    }
    out.push('\n');
}

fn error_budget(out: &mut String, report: &DrillReport) {
    let budget = &report.error_budget;
    out.push_str("## Error budget\n\n| SLO | Window | Budget | Request rate | Failures allowed | Failed | Consumed | Consumed time |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let _ = writeln!(
        out,
        "| {} | {:.0} days | {:.2} min | {:.1} req/s | {} | {} | **{}** | {:.2} s |\n",
        percent(budget.slo),
        budget.window_days,
        budget.budget_minutes,
        budget.request_rate_per_s,
        count(budget.budget_requests.round() as u64),
        count(budget.failed_requests),
        percent(budget.consumed_fraction),
        budget.consumed_minutes * 60.0
    );
}

fn totals(out: &mut String, report: &DrillReport) {
    let totals = &report.totals;
    out.push_str("## Totals\n\n| Requests | Succeeded | Failed after the retry | Unknown | Retried and succeeded |\n|---:|---:|---:|---:|---:|\n");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} |\n",
        count(totals.requests),
        count(totals.ok),
        count(totals.failed),
        count(totals.unknown),
        count(totals.retried_ok)
    );
    out.push_str("| Writes acknowledged | Lost | Duplicated | Not as sent | Failed but present | Unknown → committed | Unknown → absent | Sent by no client |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
        count(totals.writes_acknowledged),
        count(totals.writes_lost),
        count(totals.writes_duplicated),
        count(totals.writes_altered),
        count(totals.failed_writes_present),
        count(totals.unknown_resolved_committed),
        count(totals.unknown_resolved_absent),
        count(totals.transfers_not_sent)
    );
    out.push_str(
        "| Accounts reconciled | Total balance before | Total balance after | Lowest balance after | Negative balances read |\n|---:|---:|---:|---:|---:|\n",
    );
    let _ = writeln!(
        out,
        "| {} of {} | {} | {} | {} | {} |\n",
        count(totals.accounts_checked - totals.accounts_unreconciled.min(totals.accounts_checked)),
        count(totals.accounts_checked),
        signed_count(totals.total_balance_before),
        signed_count(totals.total_balance_after),
        signed_count(totals.min_balance_after),
        count(totals.negative_balances_read)
    );
}

fn faults_and_events(out: &mut String, report: &DrillReport, derived: &Derived<'_>) {
    out.push_str("## Faults\n\n");
    if report.faults.is_empty() {
        out.push_str("No fault was injected.\n\n");
    } else {
        out.push_str("| Kind | Target | Start (s) | End (s) | DNS | Way back | Failed or unknown in it |\n|---|---|---:|---:|---|---|---|\n");
        for fault in &report.faults {
            let end = fault
                .end_s
                .map(|end| format!("{end:.2}"))
                .unwrap_or_else(|| "end of drill".to_string());
            let _ = writeln!(
                out,
                "| {} | {} | {:.2} | {end} | {} | {} | {} |",
                cell(&fault.kind),
                cell(&fault.target),
                fault.start_s,
                cell(&fault_dns_text(fault)),
                cell(&fault_failback_text(fault)),
                fault_operations_text(report, fault)
            );
        }
        out.push('\n');
    }
    out.push_str("## Controller events\n\n");
    if derived.events.is_empty() {
        out.push_str("The controllers recorded no events.\n\n");
        return;
    }
    out.push_str("| # | At (s) | Event | Region | Detail |\n|---:|---:|---|---|---|\n");
    for (index, event) in derived.events.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {:.2} | {} | {} | {} |",
            index + 1,
            event.at_s,
            cell(&event_kind_label(&event.kind)),
            cell(event.region.as_deref().unwrap_or("")),
            cell(&event.detail)
        );
    }
    out.push('\n');
}

fn run(out: &mut String, report: &DrillReport) {
    out.push_str("## Run\n\n| Item | Value |\n|---|---|\n");
    let _ = writeln!(out, "| Drill file | `{}` |", cell(&report.drill_file));
    let _ = writeln!(out, "| Seed | `{}` |", report.seed);
    let _ = writeln!(out, "| Started | {} |", report.started_at.to_rfc3339());
    let _ = writeln!(
        out,
        "| Load duration | {} |",
        seconds(Some(report.duration_s))
    );
    let _ = writeln!(out, "| Regions | {} |", cell(&report.regions.join(", ")));
    let _ = writeln!(
        out,
        "| Client regions | {} |",
        cell(&report.client_regions.join(", "))
    );
    for (component, version) in &report.versions {
        let _ = writeln!(
            out,
            "| Version of {} | `{}` |",
            cell(component),
            cell(version)
        );
    }
    let configuration = serde_json::to_string_pretty(&report.configuration)
        .unwrap_or_else(|error| format!("unprintable configuration: {error}"));
    let _ = writeln!(
        out,
        "\n<details><summary>Configuration</summary>\n\n```json\n{configuration}\n```\n\n</details>"
    );
}
