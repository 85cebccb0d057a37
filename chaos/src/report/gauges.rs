//! The two small graphics of the summary: the failover phase bar (fault,
//! detect, drain, DNS, recover) and the error-budget gauge.

use std::fmt::Write;

use super::format::{coordinate as c, escape_html, percent};
use super::summary::{phase_colour, Derived};
use super::svg::{self, Frame, TICK_FONT};
use crate::model::ErrorBudget;

const WIDTH: f64 = 1100.0;
const BAR_HEIGHT: f64 = 30.0;
const LABEL_ROW: f64 = 17.0;
/// Rough width of one character of the 12-unit font, to keep labels apart.
const CHAR_WIDTH: f64 = 7.0;

/// A horizontal bar from the fault to recovery, one segment per phase,
/// with each milestone's time underneath.
pub(crate) fn phase_bar(derived: &Derived<'_>) -> String {
    let mut out = String::new();
    let (Some(first), Some(last)) = (derived.milestones.first(), derived.milestones.last()) else {
        return message_svg("no fault was injected, so there are no failover phases");
    };
    if derived.segments.is_empty() {
        return message_svg(&format!(
            "{} at {:.2} s; the controllers never decided to drain",
            first.label, first.at_s
        ));
    }
    let span = (last.at_s - first.at_s).max(0.01);
    let pad = span * 0.03;
    // The frame maps "seconds since the fault minus the pad" to x.
    let base = Frame { width: WIDTH, height: 0.0, left: 20.0, right: 20.0, top: 0.0, bottom: 0.0, x_max: span + 2.0 * pad };
    let x = |seconds: f64| base.x(seconds - first.at_s + pad);

    // Durations go inside their segment when they fit, above it otherwise.
    let labels: Vec<String> = derived
        .segments
        .iter()
        .map(|segment| format!("{} {:.2} s", segment.name, segment.duration_s()))
        .collect();
    let outside: Vec<bool> = derived
        .segments
        .iter()
        .zip(&labels)
        .map(|(segment, label)| x(segment.to_s) - x(segment.from_s) < label.len() as f64 * CHAR_WIDTH + 10.0)
        .collect();
    let above_positions: Vec<(f64, f64)> = derived
        .segments
        .iter()
        .zip(&labels)
        .map(|(segment, label)| ((x(segment.from_s) + x(segment.to_s)) / 2.0, label.len() as f64 * CHAR_WIDTH))
        .collect();
    let above_rows = svg::place_in_rows(&above_positions, 4);
    let rows_above = above_rows
        .iter()
        .zip(&outside)
        .filter(|(_, outside)| **outside)
        .map(|(row, _)| row + 1)
        .max()
        .unwrap_or(0);
    let bar_top = 8.0 + rows_above as f64 * LABEL_ROW;
    let bar_bottom = bar_top + BAR_HEIGHT;

    let milestone_positions: Vec<(f64, f64)> = derived
        .milestones
        .iter()
        .map(|milestone| (x(milestone.at_s), milestone.label.len().max(7) as f64 * CHAR_WIDTH))
        .collect();
    let milestone_rows = svg::place_in_rows(&milestone_positions, 4);
    let rows_below = milestone_rows.iter().max().map(|row| row + 1).unwrap_or(0);
    let height = bar_bottom + 8.0 + rows_below as f64 * (LABEL_ROW * 2.0) + 4.0;

    let _ = write!(
        out,
        r#"<svg class="chart phase-bar" viewBox="0 0 {w} {h}" role="img" aria-label="failover phases">"#,
        w = c(WIDTH),
        h = c(height),
    );
    for ((segment, label), (is_outside, row)) in derived.segments.iter().zip(&labels).zip(outside.iter().zip(&above_rows)) {
        let x1 = x(segment.from_s);
        let x2 = x(segment.to_s);
        let _ = write!(
            out,
            r#"<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{colour}"><title>{title}</title></rect>"#,
            x = c(x1),
            y = c(bar_top),
            w = c((x2 - x1).max(1.0)),
            h = c(BAR_HEIGHT),
            colour = phase_colour(segment.name),
            title = escape_html(label),
        );
        let middle = (x1 + x2) / 2.0;
        if *is_outside {
            let y = bar_top - 5.0 - *row as f64 * LABEL_ROW;
            let _ = write!(
                out,
                r#"<text class="phase-label" x="{x}" y="{y}" text-anchor="middle">{label}</text>"#,
                x = c(middle),
                y = c(y),
                label = escape_html(label),
            );
        } else {
            let _ = write!(
                out,
                r#"<text class="phase-inside" x="{x}" y="{y}" text-anchor="middle">{label}</text>"#,
                x = c(middle),
                y = c(bar_top + BAR_HEIGHT / 2.0 + 4.5),
                label = escape_html(label),
            );
        }
    }
    for (milestone, row) in derived.milestones.iter().zip(&milestone_rows) {
        let mx = x(milestone.at_s);
        let label_y = bar_bottom + 8.0 + TICK_FONT + *row as f64 * LABEL_ROW * 2.0;
        let _ = write!(
            out,
            r#"<line class="milestone" x1="{x}" x2="{x}" y1="{y1}" y2="{y2}"/><text class="tick" x="{x}" y="{ty}" text-anchor="middle"><tspan class="milestone-name">{label}</tspan><tspan x="{x}" dy="{dy}">{at:.2} s</tspan></text>"#,
            x = c(mx),
            y1 = c(bar_top - 2.0),
            y2 = c(bar_bottom + 6.0),
            ty = c(label_y),
            label = escape_html(milestone.label),
            dy = c(TICK_FONT + 2.0),
            at = milestone.at_s,
        );
    }
    svg::close(&mut out);
    out
}

/// A bar whose full width is the whole 30-day budget, filled to the share
/// this drill consumed (a visible sliver even for tiny shares).
pub(crate) fn budget_gauge(budget: &ErrorBudget) -> String {
    let height = 62.0;
    let (left, right) = (20.0, WIDTH - 20.0);
    let track_top = 12.0;
    let track_height = 22.0;
    let fraction = if budget.consumed_fraction.is_finite() { budget.consumed_fraction.max(0.0) } else { 0.0 };
    let colour = match fraction {
        f if f >= 1.0 => "#dc2626",
        f if f >= 0.25 => "#f59e0b",
        _ => "#16a34a",
    };
    let fill_width = if fraction > 0.0 { (fraction.min(1.0) * (right - left)).max(3.0) } else { 0.0 };
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart budget" viewBox="0 0 {w} {h}" role="img" aria-label="error budget consumed"><rect class="track" x="{l}" y="{t}" width="{tw}" height="{th}" rx="5"/><rect x="{l}" y="{t}" width="{fw}" height="{th}" rx="5" fill="{colour}"/>"#,
        w = c(WIDTH),
        h = c(height),
        l = c(left),
        t = c(track_top),
        tw = c(right - left),
        th = c(track_height),
        fw = c(fill_width),
    );
    for quarter in 0..=4 {
        let share = quarter as f64 / 4.0;
        let tick_x = left + share * (right - left);
        let anchor = match quarter {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            out,
            r#"<line class="axis" x1="{x}" x2="{x}" y1="{y1}" y2="{y2}"/><text class="tick" x="{x}" y="{ty}" text-anchor="{anchor}">{label}</text>"#,
            x = c(tick_x),
            y1 = c(track_top + track_height),
            y2 = c(track_top + track_height + 4.0),
            ty = c(track_top + track_height + 6.0 + TICK_FONT),
            label = if quarter == 4 {
                format!("100% = {:.2} min", budget.budget_minutes)
            } else {
                format!("{:.0}%", share * 100.0)
            },
        );
    }
    let label = format!("{} used", percent(fraction));
    let (label_x, anchor, class) = if fraction < 0.75 {
        (left + fill_width + 8.0, "start", "gauge-label")
    } else {
        (left + 10.0, "start", "gauge-label inside")
    };
    let _ = write!(
        out,
        r#"<text class="{class}" x="{x}" y="{y}" text-anchor="{anchor}">{label}</text>"#,
        x = c(label_x),
        y = c(track_top + track_height / 2.0 + 5.0),
        label = escape_html(&label),
    );
    svg::close(&mut out);
    out
}

fn message_svg(message: &str) -> String {
    let frame = Frame { width: WIDTH, height: 44.0, left: 20.0, right: 20.0, top: 0.0, bottom: 0.0, x_max: 1.0 };
    let mut out = String::new();
    svg::open(&mut out, &frame, "failover phases");
    svg::no_data(&mut out, &frame, message);
    svg::close(&mut out);
    out
}
