//! The two small graphics of the details: the failover phases (time from
//! the fault to each milestone) and the error-budget gauge.

use std::fmt::Write;

use super::format::{coordinate as c, escape_html, percent, signed_seconds};
use super::summary::{milestone_colour, Derived, PhaseRow};
use super::svg::{self, Frame, TICK_FONT};
use crate::model::ErrorBudget;

const WIDTH: f64 = 1100.0;
/// Room on the left of the phase bars for the milestone names.
const LABEL_COLUMN: f64 = 130.0;
const TOP: f64 = 26.0;
const ROW_HEIGHT: f64 = 30.0;
const BAR_HEIGHT: f64 = 20.0;

/// One bar per milestone from the fault to that milestone, on one time
/// axis: robust to milestones that land in parallel or out of order.
pub(crate) fn phase_bar(derived: &Derived<'_>) -> String {
    let rows = derived.phase_rows();
    let Some(fault) = rows.iter().find(|row| row.label == "fault") else {
        return message_svg("no fault was injected, so there are no failover phases");
    };
    let later: Vec<&PhaseRow> = rows.iter().filter(|row| row.label != "fault").collect();
    if !later.iter().any(|row| !is_return_milestone(row.label)) {
        return message_svg(&format!(
            "fault at {:.2} s; the controllers never decided to drain",
            fault.at_s
        ));
    }
    let longest = later
        .iter()
        .filter_map(|row| row.since_fault_s)
        .fold(0.0, f64::max);
    let step = axis_step(longest);
    let axis_max = ((longest / step).ceil() * step).max(step);
    let height = TOP + later.len() as f64 * ROW_HEIGHT + 30.0;
    let frame = Frame {
        width: WIDTH,
        height,
        left: LABEL_COLUMN,
        right: 90.0,
        top: TOP,
        bottom: 30.0,
        x_max: axis_max,
    };
    let mut out = String::new();
    svg::open(
        &mut out,
        &frame,
        "time from the fault to each failover milestone",
    );
    // Grid and axis: seconds since the fault.
    let mut tick = 0.0;
    while tick <= axis_max + step / 1000.0 {
        let x = frame.x(tick);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{x}" x2="{x}" y1="{y1}" y2="{y2}"/><text class="tick" x="{x}" y="{ty}" text-anchor="middle">+{label} s</text>"#,
            x = c(x),
            y1 = c(frame.plot_top() - 4.0),
            y2 = c(frame.plot_bottom()),
            ty = c(frame.plot_bottom() + 4.0 + TICK_FONT),
            label = trim_float(tick),
        );
        tick += step;
    }
    let _ = write!(
        out,
        r#"<text class="axis-title" x="{x}" y="{y}" text-anchor="start">fault at {at:.2} s</text>"#,
        x = c(frame.plot_left()),
        y = c(frame.plot_top() - 8.0),
        at = fault.at_s,
    );
    for (index, row) in later.iter().enumerate() {
        let since = row.since_fault_s.unwrap_or(0.0);
        let top = frame.plot_top() + index as f64 * ROW_HEIGHT + (ROW_HEIGHT - BAR_HEIGHT) / 2.0;
        let x_end = frame.x(since.max(0.0));
        let _ = write!(
            out,
            r#"<text class="phase-name" x="{lx}" y="{ty}" text-anchor="end">{label}</text><rect x="{x}" y="{y}" width="{w}" height="{h}" rx="3" fill="{colour}"><title>{label}: {since:.2} s after the fault</title></rect><text class="phase-value" x="{vx}" y="{ty}">{value}</text>"#,
            lx = c(frame.plot_left() - 10.0),
            ty = c(top + BAR_HEIGHT / 2.0 + 4.5),
            label = escape_html(row.label),
            x = c(frame.plot_left()),
            y = c(top),
            w = c((x_end - frame.plot_left()).max(2.0)),
            h = c(BAR_HEIGHT),
            colour = milestone_colour(row.label),
            vx = c(x_end.max(frame.plot_left() + 2.0) + 8.0),
            value = signed_seconds(Some(since)),
        );
    }
    svg::close(&mut out);
    out
}

/// A round tick step that gives 4 to 10 ticks up to `span` seconds.
fn axis_step(span: f64) -> f64 {
    [
        0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0,
    ]
    .into_iter()
    .find(|step| span / step <= 10.0)
    .unwrap_or(600.0)
}

/// "0.5", "1", "2.25": a tick value without trailing zeros.
fn trim_float(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A bar whose full width is the whole 30-day budget, filled to the share
/// this drill consumed (a visible sliver even for tiny shares).
pub(crate) fn budget_gauge(budget: &ErrorBudget) -> String {
    let height = 62.0;
    let (left, right) = (20.0, WIDTH - 20.0);
    let track_top = 12.0;
    let track_height = 22.0;
    let fraction = if budget.consumed_fraction.is_finite() {
        budget.consumed_fraction.max(0.0)
    } else {
        0.0
    };
    let colour = match fraction {
        f if f >= 1.0 => "#dc2626",
        f if f >= 0.25 => "#f59e0b",
        _ => "#16a34a",
    };
    let fill_width = if fraction > 0.0 {
        (fraction.min(1.0) * (right - left)).max(3.0)
    } else {
        0.0
    };
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

/// The milestones of the way back, which follow the failover ones.
pub(crate) fn is_return_milestone(label: &str) -> bool {
    matches!(label, "fault ended" | "back in DNS" | "served again")
}

fn message_svg(message: &str) -> String {
    let frame = Frame {
        width: WIDTH,
        height: 44.0,
        left: 20.0,
        right: 20.0,
        top: 0.0,
        bottom: 0.0,
        x_max: 1.0,
    };
    let mut out = String::new();
    svg::open(&mut out, &frame, "failover phases");
    svg::no_data(&mut out, &frame, message);
    svg::close(&mut out);
    out
}
