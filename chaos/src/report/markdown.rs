//! The Markdown report: the same facts as the HTML in GitHub-flavoured
//! tables, with a 5-second summary and a per-second table around failures.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::format::{count, escape_markdown_cell as cell, event_kind_label, millis, percent, seconds, signed_count};
use super::html::verdict_word;
use super::summary::{Derived, FailureWindow};
use crate::model::{DrillReport, SecondBucket, Verdict};

/// Seconds per row of the summary table.
const SUMMARY_STEP: u32 = 5;
/// Seconds shown on each side of the failure window in the per-second table.
const FAILURE_CONTEXT: u32 = 2;

/// Renders the report as GitHub-flavoured Markdown.
pub fn render_markdown(report: &DrillReport) -> String {
    let derived = Derived::new(report);
    let mut out = String::with_capacity(16 * 1024);
    header(&mut out, report);
    key_figures(&mut out, report, &derived);
    checks(&mut out, report);
    phases(&mut out, &derived);
    error_budget(&mut out, report);
    totals(&mut out, report);
    per_five_seconds(&mut out, report, &derived);
    if let Some(window) = &derived.failure_window {
        around_failures(&mut out, &derived, window);
    }
    faults_and_events(&mut out, report, &derived);
    run(&mut out, report);
    out
}

fn header(out: &mut String, report: &DrillReport) {
    let passed = report.checks.iter().filter(|check| check.passed).count();
    let _ = writeln!(out, "# {}: {}\n", verdict_word(report.verdict), report.title.replace('\n', " "));
    let _ = writeln!(
        out,
        "**Verdict: {}** — {passed} of {} hypothesis checks passed.\n",
        verdict_word(report.verdict),
        report.checks.len()
    );
    if report.verdict == Verdict::Aborted {
        let reason = report.abort_reason.as_deref().unwrap_or("no reason was recorded");
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
        None => ("none".to_string(), "no failed or unknown request".to_string()),
    };
    out.push_str("## Key figures\n\n| Figure | Value | Detail |\n|---|---:|---|\n");
    let rows = [
        ("Failover time (fault → DNS changed)", seconds(derived.failover_s), String::new()),
        ("Client-visible failure window", window.0, window.1),
        (
            "Lost writes",
            count(totals.writes_lost),
            format!("of {} acknowledged, {} duplicated", count(totals.writes_acknowledged), count(totals.writes_duplicated)),
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
        (
            "Failed after the retry",
            count(totals.failed),
            format!(
                "of {} requests, {} success, {} unknown, {} retried ok",
                count(totals.requests),
                derived.overall_success.map(percent).unwrap_or_else(|| "n/a".to_string()),
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
        let result = if check.passed { "✅ pass" } else { "❌ **fail**" };
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
    out.push_str("## Failover phases\n\n");
    let Some(fault) = derived.milestones.first() else {
        out.push_str("No fault was injected, so there are no failover phases.\n\n");
        return;
    };
    out.push_str("| Milestone | At (s) | Since the fault | Phase | Phase length |\n|---|---:|---:|---|---:|\n");
    for (index, milestone) in derived.milestones.iter().enumerate() {
        let segment = index.checked_sub(1).and_then(|previous| derived.segments.get(previous));
        let (phase, length) = segment
            .map(|segment| (segment.name.to_string(), seconds(Some(segment.duration_s()))))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {:.2} | {} | {phase} | {length} |",
            milestone.label,
            milestone.at_s,
            seconds(Some(milestone.at_s - fault.at_s))
        );
    }
    if derived.segments.is_empty() {
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
    out.push_str("| Writes acknowledged | Lost | Duplicated | Failed but present | Unknown → committed | Unknown → absent |\n|---:|---:|---:|---:|---:|---:|\n");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} |\n",
        count(totals.writes_acknowledged),
        count(totals.writes_lost),
        count(totals.writes_duplicated),
        count(totals.failed_writes_present),
        count(totals.unknown_resolved_committed),
        count(totals.unknown_resolved_absent)
    );
    out.push_str("| Total balance before | Total balance after | Lowest balance after |\n|---:|---:|---:|\n");
    let _ = writeln!(
        out,
        "| {} | {} | {} |\n",
        signed_count(totals.total_balance_before),
        signed_count(totals.total_balance_after),
        signed_count(totals.min_balance_after)
    );
}

fn per_five_seconds(out: &mut String, report: &DrillReport, derived: &Derived<'_>) {
    let _ = writeln!(out, "## Per {SUMMARY_STEP} seconds\n");
    if report.timeline.is_empty() {
        out.push_str("No requests were recorded, so there is no timeline.\n\n");
        return;
    }
    out.push_str("Success ratio and worst p99 per client region; share of successful requests by serving region.\n\n| Seconds |");
    for series in &derived.clients {
        let _ = write!(out, " {} clients |", cell(&series.client_region));
    }
    out.push_str(" Served by | Fault / events |\n|---|");
    for _ in &derived.clients {
        out.push_str("---:|");
    }
    out.push_str("---|---|\n");
    let mut start = 0;
    while (start as f64) < derived.span_s {
        let end = start + SUMMARY_STEP;
        let _ = write!(out, "| {start}–{end} |");
        for series in &derived.clients {
            let buckets: Vec<&SecondBucket> =
                series.buckets.iter().copied().filter(|bucket| bucket.second >= start && bucket.second < end).collect();
            let _ = write!(out, " {} |", window_cell(&buckets));
        }
        let in_window: Vec<&SecondBucket> =
            report.timeline.iter().filter(|bucket| bucket.second >= start && bucket.second < end).collect();
        let _ = writeln!(out, " {} | {} |", served_by_cell(&in_window), marks_cell(report, derived, start, end));
        start = end;
    }
    out.push('\n');
}

/// "99.80% · p99 45.0 ms" for some seconds of one client region.
fn window_cell(buckets: &[&SecondBucket]) -> String {
    let requests: u64 = buckets.iter().map(|bucket| bucket.requests).sum();
    if requests == 0 {
        return "no requests".to_string();
    }
    let ok: u64 = buckets.iter().map(|bucket| bucket.ok).sum();
    let worst_p99 = buckets.iter().filter_map(|bucket| bucket.p99_ms).reduce(f64::max);
    let ratio = percent(ok as f64 / requests as f64);
    let ratio = if ok < requests { format!("**{ratio}**") } else { ratio };
    format!("{ratio} · p99 {}", millis(worst_p99))
}

/// "eu-west-1 67%, ap-southeast-1 33%".
fn served_by_cell(buckets: &[&SecondBucket]) -> String {
    let mut by_region: BTreeMap<&str, u64> = BTreeMap::new();
    for bucket in buckets {
        for (region, served) in &bucket.served_by {
            *by_region.entry(region.as_str()).or_default() += served;
        }
    }
    let total: u64 = by_region.values().sum();
    if total == 0 {
        return "none".to_string();
    }
    let mut shares: Vec<(&str, u64)> = by_region.into_iter().filter(|(_, served)| *served > 0).collect();
    shares.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    shares
        .iter()
        .map(|(region, served)| format!("{} {:.0}%", cell(region), *served as f64 * 100.0 / total as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Faults starting or ending and events happening in `start..end`.
fn marks_cell(report: &DrillReport, derived: &Derived<'_>, start: u32, end: u32) -> String {
    let inside = |at: f64| at >= start as f64 && at < end as f64;
    let mut marks: Vec<String> = Vec::new();
    for fault in &report.faults {
        if inside(fault.start_s) {
            marks.push(format!("⚡ {} {} at {:.1} s", fault.kind, fault.target, fault.start_s));
        }
        if let Some(end_s) = fault.end_s.filter(|end_s| inside(*end_s)) {
            marks.push(format!("{} {} ends at {:.1} s", fault.kind, fault.target, end_s));
        }
    }
    for (index, event) in derived.events.iter().enumerate() {
        if inside(event.at_s) {
            marks.push(format!("#{} {} {:.2} s", index + 1, event_kind_label(&event.kind), event.at_s));
        }
    }
    cell(&marks.join("; "))
}

fn around_failures(out: &mut String, derived: &Derived<'_>, window: &FailureWindow) {
    let from = window.first_second.saturating_sub(FAILURE_CONTEXT);
    let to = window.end_second + FAILURE_CONTEXT;
    let _ = writeln!(out, "## Per second around the failures ({from}–{to} s)\n");
    out.push_str("ok / requests (failed, unknown), p50 / p99, serving regions.\n\n| Second |");
    for series in &derived.clients {
        let _ = write!(out, " {} clients |", cell(&series.client_region));
    }
    out.push_str("\n|---:|");
    for _ in &derived.clients {
        out.push_str("---|");
    }
    out.push('\n');
    for second in from..to {
        let _ = write!(out, "| {second} |");
        for series in &derived.clients {
            let text = match series.buckets.iter().find(|bucket| bucket.second == second) {
                Some(bucket) => format!(
                    "{}/{} ({}, {}), {} / {}, {}",
                    bucket.ok,
                    bucket.requests,
                    bucket.failed,
                    bucket.unknown,
                    millis(bucket.p50_ms),
                    millis(bucket.p99_ms),
                    served_by_cell(&[bucket])
                ),
                None => "no requests".to_string(),
            };
            let _ = write!(out, " {} |", cell(&text));
        }
        out.push('\n');
    }
    out.push('\n');
}

fn faults_and_events(out: &mut String, report: &DrillReport, derived: &Derived<'_>) {
    out.push_str("## Faults\n\n");
    if report.faults.is_empty() {
        out.push_str("No fault was injected.\n\n");
    } else {
        out.push_str("| Kind | Target | Start (s) | End (s) |\n|---|---|---:|---:|\n");
        for fault in &report.faults {
            let end = fault.end_s.map(|end| format!("{end:.2}")).unwrap_or_else(|| "end of drill".to_string());
            let _ = writeln!(out, "| {} | {} | {:.2} | {end} |", cell(&fault.kind), cell(&fault.target), fault.start_s);
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
    let _ = writeln!(out, "| Load duration | {} |", seconds(Some(report.duration_s)));
    let _ = writeln!(out, "| Regions | {} |", cell(&report.regions.join(", ")));
    let _ = writeln!(out, "| Client regions | {} |", cell(&report.client_regions.join(", ")));
    for (component, version) in &report.versions {
        let _ = writeln!(out, "| Version of {} | `{}` |", cell(component), cell(version));
    }
    let configuration = serde_json::to_string_pretty(&report.configuration)
        .unwrap_or_else(|error| format!("unprintable configuration: {error}"));
    let _ = writeln!(
        out,
        "\n<details><summary>Configuration</summary>\n\n```json\n{configuration}\n```\n\n</details>"
    );
}
