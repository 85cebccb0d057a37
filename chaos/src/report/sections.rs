//! The HTML sections below the header: hypothesis checks, the timeline
//! charts with their legends, phases, error budget, totals, controller
//! events and the run's seed, versions and configuration.

use std::fmt::Write;

use super::charts;
use super::format::{
    count, escape_html, event_kind_label, percent, seconds, signed_count, signed_seconds, Palette,
    FAILED_COLOUR, UNKNOWN_COLOUR,
};
use super::gauges;
use super::markers::fault_label;
use super::summary::{fault_dns_text, fault_failback_text, milestone_colour, Derived};
use crate::model::DrillReport;

pub(crate) fn checks(out: &mut String, report: &DrillReport) {
    out.push_str(r#"<section class="card"><h2>Steady-state hypothesis</h2>"#);
    if report.checks.is_empty() {
        out.push_str(r#"<p class="note">No checks were evaluated.</p></section>"#);
        return;
    }
    out.push_str("<table><thead><tr><th>Check</th><th>Expected</th><th>Observed</th><th>Result</th></tr></thead><tbody>");
    for check in &report.checks {
        let (class, result) = if check.passed {
            ("pass", "✓ pass")
        } else {
            ("fail", "✗ fail")
        };
        let row_class = if check.passed { "" } else { r#" class="bad""# };
        let _ = write!(
            out,
            r#"<tr{row_class}><td>{name}</td><td>{expected}</td><td>{observed}</td><td class="{class}">{result}</td></tr>"#,
            name = escape_html(&check.name),
            expected = escape_html(&check.expected),
            observed = escape_html(&check.observed),
        );
    }
    out.push_str("</tbody></table></section>\n");
}

pub(crate) fn timeline_charts(
    out: &mut String,
    report: &DrillReport,
    derived: &Derived<'_>,
    palette: &Palette,
) {
    out.push_str(r#"<section class="card"><h2>Success ratio per second</h2><p class="note">Requests by intended start second that succeeded (after the one retry). The y axis is stretched above 90% so that small dips stay visible.</p>"#);
    legend(out, report, derived, palette, LegendKind::Clients);
    out.push_str(&charts::success_chart(report, derived, palette));
    out.push_str("</section>\n");

    out.push_str(r#"<section class="card"><h2>Latency per second: p50 and p99</h2><p class="note">From the intended start of each request (no coordinated omission), completed requests only.</p>"#);
    legend(out, report, derived, palette, LegendKind::Latency);
    out.push_str(&charts::latency_chart(report, derived, palette));
    out.push_str("</section>\n");

    out.push_str(r#"<section class="card"><h2>Which region served the traffic</h2><p class="note">Requests per second of each client region, coloured by the region that served them; failed and unknown requests on top.</p>"#);
    legend(out, report, derived, palette, LegendKind::Serving);
    for (client_region, svg) in charts::served_by_panels(report, derived, palette) {
        let _ = write!(
            out,
            r#"<div class="panel-title"><span class="swatch" style="background:{colour}"></span>{name} clients</div>"#,
            colour = palette.colour(&client_region),
            name = escape_html(&client_region),
        );
        out.push_str(&svg);
    }
    if derived.clients.is_empty() {
        out.push_str(r#"<p class="note">No requests were recorded.</p>"#);
    }
    out.push_str("</section>\n");
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LegendKind {
    Clients,
    Latency,
    Serving,
}

fn legend(
    out: &mut String,
    report: &DrillReport,
    derived: &Derived<'_>,
    palette: &Palette,
    kind: LegendKind,
) {
    out.push_str(r#"<div class="legend">"#);
    match kind {
        LegendKind::Clients | LegendKind::Latency => {
            for series in &derived.clients {
                let _ = write!(
                    out,
                    r#"<span><span class="swatch line" style="background:{colour}"></span>{name} clients</span>"#,
                    colour = palette.colour(&series.client_region),
                    name = escape_html(&series.client_region),
                );
            }
        }
        LegendKind::Serving => {
            for region in palette.serving_regions(report) {
                let _ = write!(
                    out,
                    r#"<span><span class="swatch" style="background:{colour}"></span>served by {name}</span>"#,
                    colour = palette.colour(&region),
                    name = escape_html(&region),
                );
            }
            let _ = write!(
                out,
                r#"<span><span class="swatch" style="background:{FAILED_COLOUR}"></span>failed</span><span><span class="swatch" style="background:{UNKNOWN_COLOUR}"></span>unknown</span>"#
            );
        }
    }
    if kind == LegendKind::Latency {
        out.push_str(r#"<span><span class="swatch solid"></span>p50</span><span><span class="swatch dashed"></span>p99</span>"#);
    }
    for fault in &report.faults {
        let _ = write!(
            out,
            r#"<span><span class="swatch fault"></span>{}</span>"#,
            escape_html(&fault_label(fault))
        );
    }
    if !derived.events.is_empty() {
        out.push_str(r#"<span><span class="swatch event">1</span>controller event (numbers as in the events table)</span>"#);
    }
    out.push_str("</div>");
}

pub(crate) fn phases(out: &mut String, derived: &Derived<'_>) {
    out.push_str(r#"<section class="card"><h2>Failover and failback phases</h2><p class="note">Time from the fault to each milestone: the controllers' decision, the drain flag written, DNS answers without the region, every client region healthy again for good; then the way back: the fault's end, the region back in the clients' DNS answers (after the controllers' hold-down) and the first request it served again.</p>"#);
    out.push_str(&gauges::phase_bar(derived));
    if !derived.milestones.is_empty() {
        out.push_str(r#"<table><thead><tr><th>Milestone</th><th class="num">At (s)</th><th class="num">Since the fault</th><th class="num">Since the previous milestone</th></tr></thead><tbody>"#);
        for row in derived.phase_rows() {
            let _ = write!(
                out,
                r#"<tr><td><span class="swatch" style="background:{colour}"></span> {label}</td><td class="num">{at:.2}</td><td class="num">{since}</td><td class="num">{previous}</td></tr>"#,
                colour = milestone_colour(row.label),
                label = escape_html(row.label),
                at = row.at_s,
                since = seconds(row.since_fault_s),
                previous = signed_seconds(row.since_previous_s),
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>\n");
}

pub(crate) fn error_budget(out: &mut String, report: &DrillReport) {
    let budget = &report.error_budget;
    let _ = write!(
        out,
        r#"<section class="card"><h2>Error budget</h2><p class="note">Share of a {window:.0}-day {slo} SLO's budget ({minutes:.2} min of full outage) that this drill's {failed} failed request(s) would use at its rate of {rate:.1} req/s: the budget allows {allowed} failed requests.</p>"#,
        window = budget.window_days,
        slo = percent(budget.slo),
        minutes = budget.budget_minutes,
        failed = count(budget.failed_requests),
        rate = budget.request_rate_per_s,
        allowed = count(budget.budget_requests.round() as u64),
    );
    out.push_str(&gauges::budget_gauge(budget));
    let _ = write!(
        out,
        r#"<p class="note">Consumed: <strong>{share}</strong> of the budget = {consumed_min:.4} min ({consumed_s:.2} s of full outage).</p></section>"#,
        share = percent(budget.consumed_fraction),
        consumed_min = budget.consumed_minutes,
        consumed_s = budget.consumed_minutes * 60.0,
    );
    out.push('\n');
}

pub(crate) fn totals(out: &mut String, report: &DrillReport) {
    let totals = &report.totals;
    let requests = [
        ("Requests", count(totals.requests), false),
        ("Succeeded", count(totals.ok), false),
        (
            "Failed after the retry",
            count(totals.failed),
            totals.failed > 0,
        ),
        ("Unknown outcome", count(totals.unknown), totals.unknown > 0),
        ("Retried and succeeded", count(totals.retried_ok), false),
    ];
    let balance_changed = totals.total_balance_before != totals.total_balance_after;
    let writes = [
        (
            "Writes acknowledged",
            count(totals.writes_acknowledged),
            false,
        ),
        (
            "Lost writes",
            count(totals.writes_lost),
            totals.writes_lost > 0,
        ),
        (
            "Duplicated writes",
            count(totals.writes_duplicated),
            totals.writes_duplicated > 0,
        ),
        (
            "Not as sent (accounts, amount or id)",
            count(totals.writes_altered),
            totals.writes_altered > 0,
        ),
        (
            "Failed writes present",
            count(totals.failed_writes_present),
            totals.failed_writes_present > 0,
        ),
        (
            "Transfers no client sent",
            count(totals.transfers_not_sent),
            totals.transfers_not_sent > 0,
        ),
        (
            "Unknown, resolved committed",
            count(totals.unknown_resolved_committed),
            false,
        ),
        (
            "Unknown, resolved absent",
            count(totals.unknown_resolved_absent),
            false,
        ),
        (
            "Accounts that do not reconcile",
            format!(
                "{} of {}",
                count(totals.accounts_unreconciled),
                count(totals.accounts_checked)
            ),
            totals.accounts_unreconciled > 0,
        ),
        (
            "Total balance before",
            signed_count(totals.total_balance_before),
            false,
        ),
        (
            "Total balance after",
            signed_count(totals.total_balance_after),
            balance_changed,
        ),
        (
            "Lowest balance after",
            signed_count(totals.min_balance_after),
            totals.min_balance_after < 0,
        ),
        (
            "Negative balances read",
            count(totals.negative_balances_read),
            totals.negative_balances_read > 0,
        ),
    ];
    out.push_str(r#"<div class="row"><section class="card"><h2>Requests</h2>"#);
    totals_table(out, &requests);
    out.push_str(r#"</section><section class="card"><h2>Writes and ledger</h2>"#);
    totals_table(out, &writes);
    out.push_str("</section></div>\n");
}

fn totals_table(out: &mut String, rows: &[(&str, String, bool)]) {
    out.push_str("<table><tbody>");
    for (name, value, bad) in rows {
        let class = if *bad { r#" class="bad""# } else { "" };
        let _ = write!(
            out,
            r#"<tr{class}><td>{name}</td><td class="num">{value}</td></tr>"#
        );
    }
    out.push_str("</tbody></table>");
}

pub(crate) fn faults_and_events(out: &mut String, report: &DrillReport, derived: &Derived<'_>) {
    out.push_str(r#"<section class="card"><h2>Faults</h2>"#);
    if report.faults.is_empty() {
        out.push_str(r#"<p class="note">No fault was injected.</p>"#);
    } else {
        out.push_str(r#"<table><thead><tr><th>Fault</th><th>Target</th><th class="num">Start (s)</th><th class="num">End (s)</th><th>DNS</th><th>Way back</th></tr></thead><tbody>"#);
        for fault in &report.faults {
            let end = fault
                .end_s
                .map(|end| format!("{end:.2}"))
                .unwrap_or_else(|| "end of drill".to_string());
            let _ = write!(
                out,
                r#"<tr><td>{kind}</td><td>{target}</td><td class="num">{start:.2}</td><td class="num">{end}</td><td>{dns}</td><td>{back}</td></tr>"#,
                kind = escape_html(&fault.kind),
                target = escape_html(&fault.target),
                start = fault.start_s,
                dns = escape_html(&fault_dns_text(fault)),
                back = escape_html(&fault_failback_text(fault)),
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str(r#"<h2 class="spaced">Controller events</h2>"#);
    if derived.events.is_empty() {
        out.push_str(r#"<p class="note">The controllers recorded no events.</p></section>"#);
        return;
    }
    out.push_str(r#"<table class="events"><thead><tr><th class="num">#</th><th class="num">At (s)</th><th>Event</th><th>Region</th><th>Detail</th></tr></thead><tbody>"#);
    for (index, event) in derived.events.iter().enumerate() {
        let _ = write!(
            out,
            r#"<tr><td class="num">{number}</td><td class="num">{at:.2}</td><td>{kind}</td><td>{region}</td><td>{detail}</td></tr>"#,
            number = index + 1,
            at = event.at_s,
            kind = escape_html(&event_kind_label(&event.kind)),
            region = escape_html(event.region.as_deref().unwrap_or("")),
            detail = escape_html(&event.detail),
        );
    }
    out.push_str("</tbody></table></section>\n");
}

pub(crate) fn run_details(out: &mut String, report: &DrillReport) {
    let _ = write!(
        out,
        r#"<section class="card"><h2>Run</h2><table><tbody><tr><td>Drill file</td><td><code>{file}</code></td></tr><tr><td>Seed</td><td><code>{seed}</code></td></tr><tr><td>Started</td><td>{started}</td></tr><tr><td>Load duration</td><td>{duration}</td></tr><tr><td>Regions</td><td>{regions}</td></tr><tr><td>Client regions</td><td>{clients}</td></tr>"#,
        file = escape_html(&report.drill_file),
        seed = report.seed,
        started = escape_html(&report.started_at.to_rfc3339()),
        duration = seconds(Some(report.duration_s)),
        regions = escape_html(&report.regions.join(", ")),
        clients = escape_html(&report.client_regions.join(", ")),
    );
    for (component, version) in &report.versions {
        let _ = write!(
            out,
            r#"<tr><td>Version of {}</td><td><code>{}</code></td></tr>"#,
            escape_html(component),
            escape_html(version)
        );
    }
    let configuration = serde_json::to_string_pretty(&report.configuration)
        .unwrap_or_else(|error| format!("unprintable configuration: {error}"));
    let _ = write!(
        out,
        r#"</tbody></table><details><summary>Configuration (JSON)</summary><pre>{}</pre></details></section>"#,
        escape_html(&configuration)
    );
    out.push('\n');
}
