//! The HTML page: one self-contained file with inline CSS and inline SVG.
//! The header carries the verdict and the key figures; the charts follow;
//! the details (phases, budget, totals, events, configuration) come last.

use std::fmt::Write;

use super::format::{count, escape_html, percent, seconds, Palette};
use super::sections;
use super::summary::{failover_detail, Derived};
use crate::model::{DrillReport, Verdict};

/// Renders the whole report as one HTML document.
pub fn render_html(report: &DrillReport) -> String {
    let derived = Derived::new(report);
    let palette = Palette::new(report);
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{verdict}: {title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n",
        verdict = verdict_word(report.verdict),
        title = escape_html(&report.title),
    );
    header(&mut out, report);
    key_figures(&mut out, report, &derived);
    sections::checks(&mut out, report);
    sections::timeline_charts(&mut out, report, &derived, &palette);
    sections::phases(&mut out, &derived);
    sections::error_budget(&mut out, report);
    sections::totals(&mut out, report);
    super::operations::html(&mut out, report);
    sections::faults_and_events(&mut out, report, &derived);
    sections::run_details(&mut out, report);
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

pub(crate) fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Passed => "PASSED",
        Verdict::Failed => "FAILED",
        Verdict::Aborted => "ABORTED",
    }
}

fn header(out: &mut String, report: &DrillReport) {
    let class = match report.verdict {
        Verdict::Passed => "passed",
        Verdict::Failed => "failed",
        Verdict::Aborted => "aborted",
    };
    let passed = report.checks.iter().filter(|check| check.passed).count();
    let _ = write!(
        out,
        r#"<header class="verdict {class}"><div class="verdict-word">{word}</div><div class="headline"><h1>{title}</h1><p>{checks_passed} of {checks} hypothesis checks passed · {duration:.0} s of load · started {started} · seed {seed} · <code>{file}</code></p>"#,
        word = verdict_word(report.verdict),
        title = escape_html(&report.title),
        checks_passed = passed,
        checks = report.checks.len(),
        duration = report.duration_s,
        started = escape_html(
            &report
                .started_at
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        ),
        seed = report.seed,
        file = escape_html(&report.drill_file),
    );
    if report.verdict == Verdict::Aborted {
        let reason = report
            .abort_reason
            .as_deref()
            .unwrap_or("no reason was recorded");
        let _ = write!(
            out,
            r#"<p class="abort-reason">Aborted: {}</p>"#,
            escape_html(reason)
        );
    }
    out.push_str("</div></header>\n");
}

/// Good, bad or neutral: the colour of a key figure.
#[derive(Clone, Copy)]
enum Tone {
    Good,
    Bad,
    Neutral,
}

fn key_figures(out: &mut String, report: &DrillReport, derived: &Derived<'_>) {
    out.push_str(r#"<section class="figures">"#);
    let failover_detail = failover_detail(report);
    figure(
        out,
        "Failover time",
        &seconds(derived.failover_s),
        &failover_detail,
        Tone::Neutral,
    );

    figure(
        out,
        "Failback time",
        &seconds(derived.failback_s),
        &super::summary::failback_detail(report),
        Tone::Neutral,
    );

    let (window_value, window_detail, window_tone) = match &derived.failure_window {
        Some(window) => (
            format!("{} s", window.length_s()),
            format!(
                "client-visible: t = {}–{} s, {} second(s) with failures · {} clients",
                window.first_second,
                window.end_second,
                window.seconds_with_failures,
                window.client_regions.join(", ")
            ),
            Tone::Bad,
        ),
        None => (
            "none".to_string(),
            "no failed or unknown request".to_string(),
            Tone::Good,
        ),
    };
    figure(
        out,
        "Failure window",
        &window_value,
        &window_detail,
        window_tone,
    );

    let totals = &report.totals;
    let lost_tone = if totals.writes_lost == 0 && report.ledger_findings.is_empty() {
        Tone::Good
    } else {
        Tone::Bad
    };
    figure(
        out,
        "Lost writes",
        &count(totals.writes_lost),
        &format!(
            "of {} acknowledged · {} accounts unreconciled",
            count(totals.writes_acknowledged),
            count(totals.accounts_unreconciled)
        ),
        lost_tone,
    );

    let budget = &report.error_budget;
    let budget_tone = if budget.consumed_fraction >= 1.0 {
        Tone::Bad
    } else {
        Tone::Neutral
    };
    figure(
        out,
        "Error budget used",
        &percent(budget.consumed_fraction),
        &format!(
            "{:.1} s of the {:.2} min in 30 days at {:.0} req/s",
            budget.consumed_minutes * 60.0,
            budget.budget_minutes,
            budget.request_rate_per_s
        ),
        budget_tone,
    );

    let failed_tone = if totals.failed + totals.unknown == 0 {
        Tone::Good
    } else {
        Tone::Bad
    };
    figure(
        out,
        "Failed requests",
        &count(totals.failed),
        &format!(
            "after the retry, of {} requests · {} success · {} unknown · {} retried ok",
            count(totals.requests),
            derived
                .overall_success
                .map(percent)
                .unwrap_or_else(|| "n/a".to_string()),
            count(totals.unknown),
            count(totals.retried_ok)
        ),
        failed_tone,
    );
    out.push_str("</section>\n");
}

fn figure(out: &mut String, name: &str, value: &str, detail: &str, tone: Tone) {
    let class = match tone {
        Tone::Good => "good",
        Tone::Bad => "bad",
        Tone::Neutral => "neutral",
    };
    let _ = write!(
        out,
        r#"<div class="figure {class}"><div class="figure-name">{name}</div><div class="figure-value">{value}</div><div class="figure-detail">{detail}</div></div>"#,
        name = escape_html(name),
        value = escape_html(value),
        detail = escape_html(detail),
    );
}

const STYLE: &str = r#"
:root { --ink: #0f172a; --muted: #64748b; --line: #e2e8f0; --card: #ffffff; --page: #f1f5f9;
  --good: #15803d; --bad: #b91c1c; --warn: #b45309; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--page); color: var(--ink);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 0 0 6px; }
h2.spaced { margin-top: 18px; }
h3 { font-size: 15px; margin: 14px 0 2px; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
.verdict { display: flex; align-items: center; gap: 24px; padding: 20px 26px; border-radius: 12px; color: #fff; }
.verdict.passed { background: linear-gradient(90deg, #15803d, #16a34a); }
.verdict.failed { background: linear-gradient(90deg, #b91c1c, #dc2626); }
.verdict.aborted { background: linear-gradient(90deg, #b45309, #d97706); }
.verdict-word { font-size: 44px; font-weight: 800; letter-spacing: 2px; padding-right: 24px; border-right: 2px solid rgba(255,255,255,.5); }
.verdict p { margin: 0; opacity: .95; }
.verdict code { background: rgba(255,255,255,.18); padding: 1px 5px; border-radius: 4px; }
.verdict .abort-reason { margin-top: 6px; font-weight: 700; font-size: 17px; }
.figures { display: grid; grid-template-columns: repeat(5, 1fr); gap: 12px; margin: 14px 0 18px; }
.figure { background: var(--card); border-radius: 10px; padding: 12px 14px; border-top: 4px solid var(--muted); box-shadow: 0 1px 2px rgba(15,23,42,.08); }
.figure.good { border-top-color: var(--good); } .figure.bad { border-top-color: var(--bad); }
.figure-name { color: var(--muted); font-size: 13px; font-weight: 600; text-transform: uppercase; letter-spacing: .4px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.figure-value { font-size: 30px; font-weight: 750; margin: 2px 0; }
.figure.good .figure-value { color: var(--good); } .figure.bad .figure-value { color: var(--bad); }
.figure-detail { color: var(--muted); font-size: 13px; }
.card { background: var(--card); border-radius: 10px; padding: 16px 18px; margin: 0 0 16px; box-shadow: 0 1px 2px rgba(15,23,42,.08); }
.note { color: var(--muted); font-size: 13px; margin: 0 0 6px; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 18px; font-size: 13px; margin: 4px 0 6px; align-items: center; }
.legend span { display: inline-flex; align-items: center; gap: 6px; }
.swatch { width: 14px; height: 14px; border-radius: 3px; display: inline-block; }
.swatch.line { height: 4px; border-radius: 2px; }
.swatch.dashed { height: 0; border-top: 3px dashed var(--ink); border-radius: 0; width: 20px; background: none; }
.swatch.solid { height: 0; border-top: 3px solid var(--ink); border-radius: 0; width: 20px; background: none; }
.swatch.fault { background: #fecaca; border: 1px solid #f87171; }
.swatch.event { width: 16px; height: 16px; border-radius: 8px; background: #334155; color: #fff; font-size: 11px; font-weight: 700; display: inline-flex; justify-content: center; align-items: center; }
svg.chart { width: 100%; height: auto; display: block; font-family: inherit; }
svg .grid { stroke: #e2e8f0; stroke-width: 1; }
svg .knee { stroke: #94a3b8; stroke-width: 1; stroke-dasharray: 2 3; }
svg .axis { stroke: #64748b; stroke-width: 1; }
svg .tick { fill: #475569; font-size: 12px; }
svg .axis-title { fill: #334155; font-size: 13px; font-weight: 600; }
svg .fault { fill: #fecaca; fill-opacity: .55; }
svg .fault-strip { fill: #f87171; }
svg .dip-label { font-size: 12px; font-weight: 700; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
svg .event { stroke: #334155; stroke-width: 1; stroke-dasharray: 4 3; stroke-opacity: .75; }
svg .badge rect { fill: #334155; } svg .badge line { stroke: #334155; stroke-width: 1.2; }
svg .badge text { fill: #fff; font-size: 11px; font-weight: 700; }
svg .no-data { fill: #64748b; font-size: 16px; font-style: italic; }
svg .phase-name { fill: #0f172a; font-size: 13.5px; font-weight: 600; }
svg .phase-value { fill: #0f172a; font-size: 13.5px; font-weight: 700; }
svg .track { fill: #e2e8f0; }
svg .gauge-label { fill: #0f172a; font-size: 14px; font-weight: 700; } svg .gauge-label.inside { fill: #fff; }
.panel-title { font-size: 13px; font-weight: 700; margin: 8px 0 0 4px; display: flex; align-items: center; gap: 6px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 13px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: var(--good); font-weight: 700; } .fail { color: var(--bad); font-weight: 700; }
.row { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
.row > .card { margin: 0 0 16px; }
tr.bad td { background: #fef2f2; }
table.events td:nth-child(-n+4) { white-space: nowrap; }
details summary { cursor: pointer; font-weight: 600; margin: 8px 0; }
pre { background: #f8fafc; border: 1px solid var(--line); border-radius: 6px; padding: 10px; overflow: auto; max-height: 480px; }
@media (max-width: 900px) { .figures { grid-template-columns: repeat(2, 1fr); } .row { grid-template-columns: 1fr; } }
"#;
