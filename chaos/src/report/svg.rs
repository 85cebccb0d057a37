//! SVG building blocks shared by the charts: the plot frame and its scales,
//! axes, fault shading, controller-event markers and gap-aware lines.

use std::fmt::Write;

use super::format::{coordinate as c, escape_html, event_kind_label};
use crate::model::{ControllerEvent, FaultWindow};

/// Font size of tick labels, in SVG user units (about pixels at full width).
pub(crate) const TICK_FONT: f64 = 12.0;
/// Height of one row of marker badges or fault labels above the plot.
const MARKER_ROW: f64 = 18.0;
/// At most this many badge rows; more events simply share the last row.
const MAX_MARKER_ROWS: usize = 3;

/// A chart's size, margins and x range; maps data to SVG coordinates.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
    /// The x axis covers `0..=x_max` seconds.
    pub x_max: f64,
}

/// How values map to the vertical axis.
#[derive(Debug, Clone, Copy)]
pub(crate) enum YScale {
    Linear { max: f64 },
    Log { min: f64, max: f64 },
    /// A 0..=1 ratio where everything above `knee` gets `knee_share` of the
    /// height: 0-100% stays visible and a dip from 100% to 98% stays readable.
    Success { knee: f64, knee_share: f64 },
}

impl YScale {
    /// The height fraction (0 at the bottom, 1 at the top) of `value`.
    pub fn fraction(self, value: f64) -> f64 {
        let fraction = match self {
            YScale::Linear { max } if max > 0.0 => value / max,
            YScale::Linear { .. } => 0.0,
            YScale::Log { min, max } => {
                let value = value.max(min);
                (value.ln() - min.ln()) / (max.ln() - min.ln())
            }
            YScale::Success { knee, knee_share } if value >= knee => {
                (1.0 - knee_share) + (value - knee) / (1.0 - knee) * knee_share
            }
            YScale::Success { knee, knee_share } => value / knee * (1.0 - knee_share),
        };
        fraction.clamp(0.0, 1.0)
    }
}

impl Frame {
    pub fn plot_left(&self) -> f64 {
        self.left
    }
    pub fn plot_right(&self) -> f64 {
        self.width - self.right
    }
    pub fn plot_top(&self) -> f64 {
        self.top
    }
    pub fn plot_bottom(&self) -> f64 {
        self.height - self.bottom
    }
    pub fn plot_width(&self) -> f64 {
        self.plot_right() - self.plot_left()
    }
    pub fn plot_height(&self) -> f64 {
        self.plot_bottom() - self.plot_top()
    }
    /// The x coordinate of `seconds`, clamped to the plot.
    pub fn x(&self, seconds: f64) -> f64 {
        let fraction = if self.x_max > 0.0 {
            (seconds / self.x_max).clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.plot_left() + fraction * self.plot_width()
    }
    pub fn y(&self, scale: YScale, value: f64) -> f64 {
        self.plot_bottom() - scale.fraction(value) * self.plot_height()
    }
    /// Grows the top margin by `rows` marker rows and the height with it, so
    /// the plot keeps its size.
    pub fn with_marker_rows(mut self, rows: usize) -> Self {
        let extra = rows as f64 * MARKER_ROW;
        self.top += extra;
        self.height += extra;
        self
    }
}

/// Opens an inline `<svg>` scaled to its container's width.
pub(crate) fn open(out: &mut String, frame: &Frame, label: &str) {
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{label}" preserveAspectRatio="xMidYMid meet">"#,
        w = c(frame.width),
        h = c(frame.height),
        label = escape_html(label),
    );
}

pub(crate) fn close(out: &mut String) {
    out.push_str("</svg>");
}

/// Horizontal grid lines with labels on the left, and the y axis title.
pub(crate) fn y_axis(out: &mut String, frame: &Frame, scale: YScale, ticks: &[(f64, String)], title: &str) {
    for (value, label) in ticks {
        let y = frame.y(scale, *value);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{x1}" x2="{x2}" y1="{y}" y2="{y}"/><text class="tick" x="{tx}" y="{ty}" text-anchor="end">{label}</text>"#,
            x1 = c(frame.plot_left()),
            x2 = c(frame.plot_right()),
            y = c(y),
            tx = c(frame.plot_left() - 6.0),
            ty = c(y + TICK_FONT * 0.35),
            label = escape_html(label),
        );
    }
    let middle = (frame.plot_top() + frame.plot_bottom()) / 2.0;
    let _ = write!(
        out,
        r#"<text class="axis-title" x="14" y="{y}" text-anchor="middle" transform="rotate(-90 14 {y})">{title}</text>"#,
        y = c(middle),
        title = escape_html(title),
    );
}

/// The x axis in seconds with ticks at a step that suits the span.
pub(crate) fn x_axis(out: &mut String, frame: &Frame, with_title: bool) {
    let step = tick_step(frame.x_max);
    let bottom = frame.plot_bottom();
    let _ = write!(
        out,
        r#"<line class="axis" x1="{x1}" x2="{x2}" y1="{y}" y2="{y}"/>"#,
        x1 = c(frame.plot_left()),
        x2 = c(frame.plot_right()),
        y = c(bottom),
    );
    let mut tick = 0.0;
    while tick <= frame.x_max + 1e-9 {
        let x = frame.x(tick);
        let _ = write!(
            out,
            r#"<line class="axis" x1="{x}" x2="{x}" y1="{y1}" y2="{y2}"/><text class="tick" x="{x}" y="{ty}" text-anchor="middle">{tick}</text>"#,
            x = c(x),
            y1 = c(bottom),
            y2 = c(bottom + 4.0),
            ty = c(bottom + 4.0 + TICK_FONT),
            tick = tick,
        );
        tick += step;
    }
    if with_title {
        let _ = write!(
            out,
            r#"<text class="axis-title" x="{x}" y="{y}" text-anchor="middle">seconds since the load started</text>"#,
            x = c((frame.plot_left() + frame.plot_right()) / 2.0),
            y = c(bottom + 4.0 + TICK_FONT * 2.5),
        );
    }
}

/// 1, 2, 5, 10, 15, 30, 60... seconds: about 6 to 15 ticks on any span.
fn tick_step(span: f64) -> f64 {
    [1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0]
        .into_iter()
        .find(|step| span / step <= 15.0)
        .unwrap_or(1800.0)
}

/// Shades every fault's window over the plot (under the data).
pub(crate) fn fault_shading(out: &mut String, frame: &Frame, faults: &[FaultWindow]) {
    for fault in faults {
        let x1 = frame.x(fault.start_s);
        let x2 = frame.x(fault.end_s.unwrap_or(frame.x_max));
        let _ = write!(
            out,
            r#"<rect class="fault" x="{x}" y="{y}" width="{w}" height="{h}"><title>{title}</title></rect>"#,
            x = c(x1),
            y = c(frame.plot_top()),
            w = c((x2 - x1).max(1.0)),
            h = c(frame.plot_height()),
            title = escape_html(&fault_label(fault)),
        );
    }
}

/// "region-kill us-east-1 (20.0-60.0 s)".
pub(crate) fn fault_label(fault: &FaultWindow) -> String {
    let end = fault
        .end_s
        .map(|end| format!("{end:.1} s"))
        .unwrap_or_else(|| "end".to_string());
    format!("{} {} ({:.1} s to {end})", fault.kind, fault.target, fault.start_s)
}

/// Rows for labels at `positions` (x, width) so that no two in a row
/// overlap; greedy, left to right, at most `max_rows` rows.
pub(crate) fn place_in_rows(positions: &[(f64, f64)], max_rows: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..positions.len()).collect();
    order.sort_by(|a, b| positions[*a].0.total_cmp(&positions[*b].0));
    let mut row_ends: Vec<f64> = Vec::new();
    let mut rows = vec![0; positions.len()];
    for index in order {
        let (x, width) = positions[index];
        let start = x - width / 2.0;
        let row = row_ends
            .iter()
            .position(|end| *end + 3.0 <= start)
            .unwrap_or(row_ends.len())
            .min(max_rows.saturating_sub(1));
        if row == row_ends.len() {
            row_ends.push(f64::MIN);
        }
        row_ends[row] = row_ends[row].max(x + width / 2.0);
        rows[index] = row;
    }
    rows
}

/// Badge rows the events need on this frame (0 without events).
pub(crate) fn marker_rows(frame: &Frame, events: &[ControllerEvent]) -> usize {
    let rows = badge_rows(frame, events);
    rows.iter().max().map(|row| row + 1).unwrap_or(0)
}

fn badge_rows(frame: &Frame, events: &[ControllerEvent]) -> Vec<usize> {
    let positions: Vec<(f64, f64)> = events
        .iter()
        .enumerate()
        .map(|(index, event)| (frame.x(event.at_s), badge_width(index + 1)))
        .collect();
    place_in_rows(&positions, MAX_MARKER_ROWS)
}

fn badge_width(number: usize) -> f64 {
    if number >= 10 {
        22.0
    } else {
        16.0
    }
}

/// Dashed vertical lines for the controller's events, and numbered badges
/// above the plot (numbers match the events table) when `badges` says so.
pub(crate) fn event_markers(out: &mut String, frame: &Frame, events: &[ControllerEvent], badges: Badges) {
    let rows = badge_rows(frame, events);
    for (index, event) in events.iter().enumerate() {
        let x = frame.x(event.at_s);
        let number = index + 1;
        let title = format!(
            "{number}. {} at {:.2} s{}",
            event_kind_label(&event.kind),
            event.at_s,
            event.region.as_deref().map(|region| format!(" ({region})")).unwrap_or_default(),
        );
        let _ = write!(
            out,
            r#"<line class="event" x1="{x}" x2="{x}" y1="{y1}" y2="{y2}"><title>{title}</title></line>"#,
            x = c(x),
            y1 = c(frame.plot_top()),
            y2 = c(frame.plot_bottom()),
            title = escape_html(&title),
        );
        if badges == Badges::Hidden {
            continue;
        }
        let centre_y = frame.plot_top() - 10.0 - rows[index] as f64 * MARKER_ROW;
        let width = badge_width(number);
        let _ = write!(
            out,
            r#"<g class="badge"><title>{title}</title><line x1="{x}" x2="{x}" y1="{ly1}" y2="{ly2}"/><rect x="{rx}" y="{ry}" width="{w}" height="16" rx="8"/><text x="{x}" y="{ty}" text-anchor="middle">{number}</text></g>"#,
            x = c(x),
            ly1 = c(centre_y + 8.0),
            ly2 = c(frame.plot_top()),
            rx = c(x - width / 2.0),
            ry = c(centre_y - 8.0),
            w = c(width),
            ty = c(centre_y + 4.0),
            title = escape_html(&title),
        );
    }
}

/// Whether [`event_markers`] draws the numbered badges or only the lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Badges {
    Shown,
    Hidden,
}

/// A line through `points` (x in seconds, y value or `None` for a gap);
/// gaps split the line instead of being drawn as zero.
pub(crate) fn line_with_gaps(
    out: &mut String,
    frame: &Frame,
    scale: YScale,
    points: &[(f64, Option<f64>)],
    style: LineStyle<'_>,
) {
    let mut path = String::new();
    let mut pen_down = false;
    for (seconds, value) in points {
        let Some(value) = value else {
            pen_down = false;
            continue;
        };
        let command = if pen_down { 'L' } else { 'M' };
        let _ = write!(path, "{command}{} {} ", c(frame.x(*seconds)), c(frame.y(scale, *value)));
        pen_down = true;
    }
    if path.is_empty() {
        return;
    }
    let dash = if style.dashed { r#" stroke-dasharray="6 4""# } else { "" };
    let _ = write!(
        out,
        r#"<path d="{path}" fill="none" stroke="{colour}" stroke-width="{width}" stroke-linejoin="round"{dash}/>"#,
        path = path.trim_end(),
        colour = style.colour,
        width = style.width,
    );
}

/// Stroke of one data line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineStyle<'a> {
    pub colour: &'a str,
    pub width: f64,
    pub dashed: bool,
}

/// A centred "no data" message over an empty plot.
pub(crate) fn no_data(out: &mut String, frame: &Frame, message: &str) {
    let _ = write!(
        out,
        r#"<text class="no-data" x="{x}" y="{y}" text-anchor="middle">{message}</text>"#,
        x = c((frame.plot_left() + frame.plot_right()) / 2.0),
        y = c((frame.plot_top() + frame.plot_bottom()) / 2.0),
        message = escape_html(message),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_labels_go_to_separate_rows() {
        let rows = place_in_rows(&[(100.0, 16.0), (104.0, 16.0), (140.0, 16.0), (300.0, 16.0)], 3);
        assert_eq!(rows, vec![0, 1, 0, 0]);
    }

    #[test]
    fn success_scale_expands_the_top_band() {
        let scale = YScale::Success { knee: 0.9, knee_share: 0.75 };
        assert_eq!(scale.fraction(0.0), 0.0);
        assert!((scale.fraction(0.9) - 0.25).abs() < 1e-9);
        assert!((scale.fraction(1.0) - 1.0).abs() < 1e-9);
        assert!(scale.fraction(0.99) - scale.fraction(0.98) > 0.05);
    }
}
