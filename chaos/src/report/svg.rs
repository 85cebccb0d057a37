//! SVG building blocks shared by the charts: the plot frame and its scales,
//! axes, the 1-2-5 steps of value axes, gap-aware lines and "no data"
//! messages.

use std::fmt::Write;

use super::format::{coordinate as c, escape_html};

/// Font size of tick labels, in SVG user units (about pixels at full width).
pub(crate) const TICK_FONT: f64 = 12.0;

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
    Linear {
        max: f64,
    },
    Log {
        min: f64,
        max: f64,
    },
    /// A 0..=1 ratio where everything above `knee` gets `knee_share` of the
    /// height: 0-100% stays visible and a dip from 100% to 98% stays readable.
    Success {
        knee: f64,
        knee_share: f64,
    },
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
        let extra = rows as f64 * super::markers::MARKER_ROW;
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
pub(crate) fn y_axis(
    out: &mut String,
    frame: &Frame,
    scale: YScale,
    ticks: &[(f64, String)],
    title: &str,
) {
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
        let _ = write!(
            path,
            "{command}{} {} ",
            c(frame.x(*seconds)),
            c(frame.y(scale, *value))
        );
        pen_down = true;
    }
    if path.is_empty() {
        return;
    }
    let dash = if style.dashed {
        r#" stroke-dasharray="6 4""#
    } else {
        ""
    };
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

/// The 1-2-5 values from 0.1 ms up, the steps of the latency axis.
pub(crate) fn one_two_five() -> impl Iterator<Item = f64> {
    (-1..7).flat_map(|exponent| [1.0, 2.0, 5.0].map(|mantissa| mantissa * 10f64.powi(exponent)))
}

/// The log axis range: the 1-2-5 steps around the data, at least a decade.
pub(crate) fn latency_range(values: &[f64]) -> Option<(f64, f64)> {
    let low = values.iter().copied().reduce(f64::min)?;
    let high = values.iter().copied().reduce(f64::max)?;
    let min = one_two_five()
        .filter(|step| *step <= low)
        .last()
        .unwrap_or(0.1);
    let max = one_two_five()
        .find(|step| *step >= high)
        .unwrap_or(5_000_000.0);
    Some((min, max.max(min * 10.0)))
}

/// Tick values: every 1-2-5 step over up to three decades, only powers of
/// ten beyond that (so labels never crowd).
pub(crate) fn latency_ticks(min: f64, max: f64) -> Vec<f64> {
    let decades = (max / min).log10();
    one_two_five()
        .filter(|value| *value >= min * 0.999 && *value <= max * 1.001)
        .filter(|value| decades <= 3.0 || (value.log10() - value.log10().round()).abs() < 1e-9)
        .collect()
}

pub(crate) fn latency_tick_label(value: f64) -> String {
    if value >= 1000.0 {
        return format!("{} s", value / 1000.0);
    }
    format!("{value} ms")
}

/// The smallest 1-2-5 step at or above `value` (at least 1).
pub(crate) fn nice_ceiling(value: f64) -> f64 {
    one_two_five()
        .find(|step| *step >= value.max(1.0))
        .unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_scale_expands_the_top_band() {
        let scale = YScale::Success {
            knee: 0.9,
            knee_share: 0.75,
        };
        assert_eq!(scale.fraction(0.0), 0.0);
        assert!((scale.fraction(0.9) - 0.25).abs() < 1e-9);
        assert!((scale.fraction(1.0) - 1.0).abs() < 1e-9);
        assert!(scale.fraction(0.99) - scale.fraction(0.98) > 0.05);
    }

    #[test]
    fn latency_axis_brackets_the_data_with_readable_ticks() {
        let (min, max) = latency_range(&[3.2, 48.0, 1400.0]).unwrap();
        assert_eq!((min, max), (2.0, 2000.0));
        let ticks = latency_ticks(min, max);
        assert_eq!(ticks.first(), Some(&2.0));
        assert_eq!(ticks.last(), Some(&2000.0));
        assert_eq!(latency_tick_label(2000.0), "2 s");
        let wide = latency_ticks(0.1, 100_000.0);
        assert_eq!(
            wide,
            vec![0.1, 1.0, 10.0, 100.0, 1000.0, 10_000.0, 100_000.0]
        );
    }

    #[test]
    fn request_axis_rounds_up_to_a_round_number() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(43.0), 50.0);
        assert_eq!(nice_ceiling(101.0), 200.0);
    }
}
