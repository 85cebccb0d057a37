//! The HTML page: `templates/report.html` and its parts, rendered with
//! minijinja into one self-contained file (inline CSS, the vendored uPlot
//! and `charts.js` inline, the chart data as inline JSON).
//!
//! minijinja rather than askama: it needs nothing newer than the
//! workspace's Rust 1.80 (askama 0.16 needs 1.88), has no dependency but
//! serde, and renders the report's serde model as it is; strict undefined
//! variables and a test that renders every fixture stand in for askama's
//! compile-time checks. The templates are embedded at compile time.

use std::sync::OnceLock;

use minijinja::value::{Serde, Value};
use minijinja::{context, Environment, UndefinedBehavior};
use serde::Serialize;

use super::charts::{fault_label, ChartData};
use super::confidence::AvailabilityBound;
use super::format::{
    count, event_kind_label, millis, percent, seconds, signed_count, signed_seconds, Palette,
    FAILED_COLOUR, UNKNOWN_COLOUR,
};
use super::settings::{controller_settings, latency_matrix};
use super::summary::{
    failback_detail, failover_detail, fault_dns_text, fault_failback_text, fault_operations_text,
    is_return_milestone, milestone_colour, Derived,
};
use crate::model::{DrillReport, Verdict};

const PAGE: &str = include_str!("../../templates/report.html");
const DETAILS: &str = include_str!("../../templates/details.html");
const STYLE: &str = include_str!("../../templates/report.css");
const CHARTS_JS: &str = include_str!("../../templates/charts.js");
const UPLOT_JS: &str = include_str!("../../vendor/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../../vendor/uplot/uPlot.min.css");

/// Renders the whole report as one HTML document.
pub fn render_html(report: &DrillReport) -> String {
    let derived = Derived::new(report);
    let palette = Palette::new(report);
    let charts = ChartData::new(report, &derived, &palette);
    // The legends' entries: (name, colour, has requests) per client region,
    // (name, colour) per serving region.
    let clients: Vec<_> = derived
        .clients
        .iter()
        .map(|series| {
            let name = &series.client_region;
            (name, palette.colour(name), !series.buckets.is_empty())
        })
        .collect();
    let serving: Vec<_> = palette
        .serving_regions(report)
        .into_iter()
        .map(|region| {
            let colour = palette.colour(&region);
            (region, colour)
        })
        .collect();
    // (DNS outcome, way back, failed and unknown operations) per fault.
    let faults: Vec<_> = report
        .faults
        .iter()
        .map(|fault| {
            (
                fault_dns_text(fault),
                fault_failback_text(fault),
                fault_operations_text(report, fault),
            )
        })
        .collect();
    let events: Vec<_> = derived
        .events
        .iter()
        .map(|event| (event_kind_label(&event.kind), event))
        .collect();
    let context = context! {
        report => Serde(report),
        verdict => verdict_word(report.verdict),
        verdict_class => verdict_word(report.verdict).to_lowercase(),
        checks_passed => report.checks.iter().filter(|check| check.passed).count(),
        figures => Serde(key_figures(report, &derived)),
        objectives => Serde(super::objectives::ObjectivesView::new(report)),
        preflight => Serde(super::preflight::PreflightView::new(report)),
        runners => Serde(super::preflight::runner_rows(report)),
        hooks => Serde(super::hooks::rows(report)),
        availability => Serde(AvailabilityBound::new(&report.totals, report.error_budget.slo)),
        clients => Serde(clients),
        serving => Serde(serving),
        failed_colour => FAILED_COLOUR,
        unknown_colour => UNKNOWN_COLOUR,
        fault_labels => Serde(report.faults.iter().map(fault_label).collect::<Vec<_>>()),
        milestone_legend => Serde(milestone_legend(&charts)),
        phases => Serde(Phases::new(&derived)),
        faults => Serde(faults),
        events => Serde(events),
        settings => Serde(controller_settings(&report.configuration)),
        matrix => Serde(latency_matrix(&report.configuration, &report.regions)),
        lease_note => latency_matrix(&report.configuration, &report.regions)
            .and_then(|matrix| matrix.lease_transfer_s)
            .map(super::markdown_conditions::lease_transfer_note),
        configuration => serde_json::to_string_pretty(&report.configuration)
            .unwrap_or_else(|error| format!("unprintable configuration: {error}")),
        // Trusted text, inlined as it is: the stylesheets, the scripts and
        // the chart data (escaped for a script element by script_json).
        style => Value::from_safe_string(format!("{UPLOT_CSS}\n{STYLE}")),
        scripts => Value::from_safe_string(format!("{UPLOT_JS}\n{CHARTS_JS}")),
        chart_data => Value::from_safe_string(script_json(&charts)),
    };
    environment()
        .get_template("report.html")
        .and_then(|template| template.render(context))
        // The templates are fixed at compile time and every fixture renders
        // in the tests: an error here is a bug in them, not in the data.
        .unwrap_or_else(|error| panic!("the report template failed: {}", error_chain(&error)))
}

/// An error and its causes: minijinja's says "error in details.html" and
/// keeps the line and the reason in its source.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

pub(crate) fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Passed => "PASSED",
        Verdict::Failed => "FAILED",
        Verdict::Aborted => "ABORTED",
        Verdict::Stopped => "STOPPED",
    }
}

/// The templates and the number formats they use, built once.
fn environment() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut env = Environment::new();
        // A misspelt variable is an error, not an empty cell.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_template("report.html", PAGE)
            .expect("report.html parses");
        env.add_template("details.html", DETAILS)
            .expect("details.html parses");
        env.add_filter("count", count);
        env.add_filter("signed_count", signed_count);
        env.add_filter("percent", percent);
        env.add_filter("seconds", seconds);
        env.add_filter("signed_seconds", signed_seconds);
        env.add_filter("millis", millis);
        env.add_filter("fixed", |value: f64, decimals: usize| {
            format!("{value:.decimals$}")
        });
        env
    })
}

/// JSON for a `<script type="application/json">`: `<`, `>` and `&` as
/// `\u` escapes, so that no string in the data can close the script.
fn script_json(value: &impl Serialize) -> String {
    serde_json::to_string(value)
        .expect("chart data serialises")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// A key figure of the header: name, value, detail and colour.
#[derive(Serialize)]
struct Figure {
    name: &'static str,
    value: String,
    detail: String,
    /// "good", "bad" or "neutral".
    tone: &'static str,
}

fn key_figures(report: &DrillReport, derived: &Derived<'_>) -> Vec<Figure> {
    let totals = &report.totals;
    let budget = &report.error_budget;
    let tone = |bad: bool| if bad { "bad" } else { "good" };
    let (window_value, window_detail) = match &derived.failure_window {
        Some(window) => (
            format!("{} s", window.length_s()),
            format!(
                "client-visible: t = {}–{} s, {} second(s) with failures · {} clients",
                window.first_second,
                window.end_second,
                window.seconds_with_failures,
                window.client_regions.join(", ")
            ),
        ),
        None => ("none".into(), "no failed or unknown request".into()),
    };
    vec![
        Figure {
            name: "Failover time",
            value: seconds(derived.failover_s),
            detail: failover_detail(report),
            tone: "neutral",
        },
        Figure {
            name: "Failback time",
            value: seconds(derived.failback_s),
            detail: failback_detail(report),
            tone: "neutral",
        },
        Figure {
            name: "Failure window",
            tone: tone(derived.failure_window.is_some()),
            value: window_value,
            detail: window_detail,
        },
        Figure {
            name: "Lost writes",
            value: count(totals.writes_lost),
            detail: format!(
                "of {} acknowledged · {} accounts unreconciled",
                count(totals.writes_acknowledged),
                count(totals.accounts_unreconciled)
            ),
            tone: tone(totals.writes_lost > 0 || !report.ledger_findings.is_empty()),
        },
        Figure {
            name: "Error budget used",
            value: percent(budget.consumed_fraction),
            detail: format!(
                "{:.1} s of the {:.2} min in 30 days at {:.0} req/s",
                budget.consumed_minutes * 60.0,
                budget.budget_minutes,
                budget.request_rate_per_s
            ),
            tone: if budget.consumed_fraction >= 1.0 {
                "bad"
            } else {
                "neutral"
            },
        },
        Figure {
            name: "Failed requests",
            value: count(totals.failed),
            detail: format!(
                "after the retry, of {} requests · {} success · {} unknown · {} retried ok",
                count(totals.requests),
                derived
                    .overall_success
                    .map(percent)
                    .unwrap_or_else(|| "n/a".to_string()),
                count(totals.unknown),
                count(totals.retried_ok)
            ),
            tone: tone(totals.failed + totals.unknown > 0),
        },
    ]
}

/// The legend entries of the milestone markers that the charts carry.
fn milestone_legend(charts: &ChartData) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut legend: Vec<(&str, &str, &str)> = Vec::new();
    for mark in &charts.milestones {
        if !legend.iter().any(|(label, _, _)| *label == mark.label) {
            legend.push((mark.label, mark.colour, mark.direction));
        }
    }
    legend
}

/// The phases section: one bar per milestone after the fault, on one axis
/// of seconds since the fault, and the table of every milestone.
#[derive(Serialize)]
struct Phases {
    /// Instead of the bars, when there are none to draw.
    message: Option<String>,
    bars: Vec<PhaseBar>,
    /// The axis's end, seconds after the fault.
    axis_s: f64,
    rows: Vec<PhaseRow>,
}

#[derive(Serialize)]
struct PhaseBar {
    label: &'static str,
    colour: &'static str,
    /// Width in percent of the axis.
    percent: f64,
    value: String,
}

#[derive(Serialize)]
struct PhaseRow {
    label: &'static str,
    colour: &'static str,
    at_s: f64,
    since_fault: String,
    since_previous: String,
}

impl Phases {
    fn new(derived: &Derived<'_>) -> Self {
        let all = derived.phase_rows();
        let rows = all
            .iter()
            .map(|row| PhaseRow {
                label: row.label,
                colour: milestone_colour(row.label),
                at_s: row.at_s,
                since_fault: seconds(row.since_fault_s),
                since_previous: signed_seconds(row.since_previous_s),
            })
            .collect();
        let fault = all.iter().find(|row| row.label == "fault");
        let later: Vec<_> = all.iter().filter(|row| row.label != "fault").collect();
        let message = match fault {
            None => Some("no fault was injected, so there are no failover phases".to_string()),
            Some(fault) if later.iter().all(|row| is_return_milestone(row.label)) => Some(format!(
                "fault at {:.2} s; the controllers never decided to drain",
                fault.at_s
            )),
            Some(_) => None,
        };
        let longest = later
            .iter()
            .filter_map(|row| row.since_fault_s)
            .fold(0.0, f64::max);
        let axis_s = axis_end(longest);
        let bars = later
            .iter()
            .map(|row| {
                let since = row.since_fault_s.unwrap_or(0.0);
                PhaseBar {
                    label: row.label,
                    colour: milestone_colour(row.label),
                    percent: (since.max(0.0) / axis_s * 100.0).clamp(0.2, 100.0),
                    value: signed_seconds(Some(since)),
                }
            })
            .collect();
        Self {
            message,
            bars: if fault.is_some() { bars } else { Vec::new() },
            axis_s,
            rows,
        }
    }
}

/// A round end for the phases' axis: the longest bar rounded up to a step
/// that gives 4 to 10 ticks.
fn axis_end(longest: f64) -> f64 {
    let step = [
        0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0,
    ]
    .into_iter()
    .find(|step| longest / step <= 10.0)
    .unwrap_or(600.0);
    ((longest / step).ceil() * step).max(step)
}
