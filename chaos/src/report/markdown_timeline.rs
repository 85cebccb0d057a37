//! The Markdown timeline tables: a summary per 5 seconds for the whole
//! drill and a per-second table around the seconds that had failures.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::charts::fault_milestones;
use super::format::{escape_markdown_cell as cell, event_kind_label, millis, percent};
use super::summary::{Derived, FailureWindow};
use crate::model::{DrillReport, SecondBucket};

/// Seconds per row of the summary table.
const SUMMARY_STEP: u32 = 5;
/// Seconds shown on each side of the failure window in the per-second table.
const FAILURE_CONTEXT: u32 = 2;

pub(crate) fn per_five_seconds(out: &mut String, report: &DrillReport, derived: &Derived<'_>) {
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
            let buckets: Vec<&SecondBucket> = series
                .buckets
                .iter()
                .copied()
                .filter(|bucket| bucket.second >= start && bucket.second < end)
                .collect();
            let _ = write!(out, " {} |", window_cell(&buckets));
        }
        let in_window: Vec<&SecondBucket> = report
            .timeline
            .iter()
            .filter(|bucket| bucket.second >= start && bucket.second < end)
            .collect();
        let _ = writeln!(
            out,
            " {} | {} |",
            served_by_cell(&in_window),
            marks_cell(report, derived, start, end)
        );
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
    let worst_p99 = buckets
        .iter()
        .filter_map(|bucket| bucket.p99_ms)
        .reduce(f64::max);
    let ratio = percent(ok as f64 / requests as f64);
    let ratio = if ok < requests {
        format!("**{ratio}**")
    } else {
        ratio
    };
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
    let mut shares: Vec<(&str, u64)> = by_region
        .into_iter()
        .filter(|(_, served)| *served > 0)
        .collect();
    shares.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    shares
        .iter()
        .map(|(region, served)| {
            format!(
                "{} {:.0}%",
                cell(region),
                *served as f64 * 100.0 / total as f64
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Faults starting or ending and events happening in `start..end`.
fn marks_cell(report: &DrillReport, derived: &Derived<'_>, start: u32, end: u32) -> String {
    let inside = |at: f64| at >= start as f64 && at < end as f64;
    let mut marks: Vec<String> = Vec::new();
    for fault in &report.faults {
        if inside(fault.start_s) {
            marks.push(format!(
                "⚡ {} {} at {:.1} s",
                fault.kind, fault.target, fault.start_s
            ));
        }
        if let Some(end_s) = fault.end_s.filter(|end_s| inside(*end_s)) {
            marks.push(format!(
                "{} {} ends at {:.1} s",
                fault.kind, fault.target, end_s
            ));
        }
    }
    // The way out and the way back, as the charts tag them.
    for mark in report.faults.iter().flat_map(fault_milestones) {
        if inside(mark.at_s) && !matches!(mark.label, "fault" | "fault ended") {
            marks.push(format!("{} at {:.1} s", mark.label, mark.at_s));
        }
    }
    for (index, event) in derived.events.iter().enumerate() {
        if inside(event.at_s) {
            marks.push(format!(
                "#{} {} {:.2} s",
                index + 1,
                event_kind_label(&event.kind),
                event.at_s
            ));
        }
    }
    cell(&marks.join("; "))
}

pub(crate) fn around_failures(out: &mut String, derived: &Derived<'_>, window: &FailureWindow) {
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
