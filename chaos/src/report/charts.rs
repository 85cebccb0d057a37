//! The timeline charts: success ratio, p50/p99 latency and the serving
//! region per client region, each with the faults shaded and the
//! controller's events marked.

use std::fmt::Write;

use super::format::{coordinate as c, escape_html, Palette, FAILED_COLOUR, UNKNOWN_COLOUR};
use super::summary::{success_ratio, ClientSeries, Derived};
use super::svg::{self, Badges, Frame, LineStyle, YScale};
use crate::model::DrillReport;

/// Width of every timeline chart in SVG units; the page scales it.
const CHART_WIDTH: f64 = 1100.0;
const LEFT_MARGIN: f64 = 68.0;
const RIGHT_MARGIN: f64 = 18.0;

/// Success ratio per second and client region, 0-100% with 90-100%
/// expanded so that a dip to 98% is as visible as one to 50%.
pub(crate) fn success_chart(report: &DrillReport, derived: &Derived<'_>, palette: &Palette) -> String {
    let frame = timeline_frame(derived, 300.0, AxisTitle::Shown, Badges::Shown);
    let scale = YScale::Success { knee: 0.9, knee_share: 0.75 };
    let mut out = String::new();
    svg::open(&mut out, &frame, "success ratio per second and client region");
    svg::fault_shading(&mut out, &frame, &report.faults);
    let ticks: Vec<(f64, String)> = [0.0, 0.5, 0.9, 0.95, 0.99, 1.0]
        .into_iter()
        .map(|ratio| (ratio, format!("{:.0}%", ratio * 100.0)))
        .collect();
    svg::y_axis(&mut out, &frame, scale, &ticks, "success (%)");
    // The knee is where the scale changes: draw it a little stronger.
    let knee_y = frame.y(scale, 0.9);
    let _ = write!(
        out,
        r#"<line class="knee" x1="{x1}" x2="{x2}" y1="{y}" y2="{y}"/>"#,
        x1 = c(frame.plot_left()),
        x2 = c(frame.plot_right()),
        y = c(knee_y),
    );
    svg::x_axis(&mut out, &frame, true);
    svg::event_markers(&mut out, &frame, &derived.events, Badges::Shown);
    if report.timeline.is_empty() {
        svg::no_data(&mut out, &frame, "no requests were recorded");
    }
    for series in &derived.clients {
        let colour = palette.colour(&series.client_region);
        let points: Vec<(f64, Option<f64>)> = series
            .buckets
            .iter()
            .map(|bucket| (bucket.second as f64 + 0.5, success_ratio(bucket)))
            .collect();
        svg::line_with_gaps(&mut out, &frame, scale, &points, LineStyle { colour, width: 2.0, dashed: false });
        // A dot on every second that lost requests, so one bad second out of
        // sixty cannot hide in a thin line.
        for bucket in &series.buckets {
            let Some(ratio) = success_ratio(bucket).filter(|ratio| *ratio < 1.0) else {
                continue;
            };
            let _ = write!(
                out,
                r#"<circle cx="{x}" cy="{y}" r="3.5" fill="{colour}"><title>{title}</title></circle>"#,
                x = c(frame.x(bucket.second as f64 + 0.5)),
                y = c(frame.y(scale, ratio)),
                title = escape_html(&format!(
                    "{} clients, second {}: {} ok of {} ({} failed, {} unknown)",
                    series.client_region, bucket.second, bucket.ok, bucket.requests, bucket.failed, bucket.unknown
                )),
            );
        }
    }
    svg::close(&mut out);
    out
}

/// p50 (solid) and p99 (dashed) latency per client region on a log scale.
pub(crate) fn latency_chart(report: &DrillReport, derived: &Derived<'_>, palette: &Palette) -> String {
    let frame = timeline_frame(derived, 300.0, AxisTitle::Shown, Badges::Shown);
    let mut out = String::new();
    svg::open(&mut out, &frame, "p50 and p99 latency per second and client region");
    svg::fault_shading(&mut out, &frame, &report.faults);
    let values: Vec<f64> = report
        .timeline
        .iter()
        .flat_map(|bucket| [bucket.p50_ms, bucket.p99_ms])
        .flatten()
        .filter(|value| value.is_finite() && *value > 0.0)
        .collect();
    let Some((min, max)) = latency_range(&values) else {
        svg::y_axis(&mut out, &frame, YScale::Linear { max: 1.0 }, &[], "latency (ms, log scale)");
        svg::x_axis(&mut out, &frame, true);
        svg::event_markers(&mut out, &frame, &derived.events, Badges::Shown);
        svg::no_data(&mut out, &frame, "no completed requests, so no latency");
        svg::close(&mut out);
        return out;
    };
    let scale = YScale::Log { min, max };
    let ticks: Vec<(f64, String)> = latency_ticks(min, max)
        .into_iter()
        .map(|value| (value, latency_tick_label(value)))
        .collect();
    svg::y_axis(&mut out, &frame, scale, &ticks, "latency (ms, log scale)");
    svg::x_axis(&mut out, &frame, true);
    svg::event_markers(&mut out, &frame, &derived.events, Badges::Shown);
    for series in &derived.clients {
        let colour = palette.colour(&series.client_region);
        let p99: Vec<(f64, Option<f64>)> =
            series.buckets.iter().map(|bucket| (bucket.second as f64 + 0.5, bucket.p99_ms)).collect();
        let p50: Vec<(f64, Option<f64>)> =
            series.buckets.iter().map(|bucket| (bucket.second as f64 + 0.5, bucket.p50_ms)).collect();
        svg::line_with_gaps(&mut out, &frame, scale, &p99, LineStyle { colour, width: 1.6, dashed: true });
        svg::line_with_gaps(&mut out, &frame, scale, &p50, LineStyle { colour, width: 2.2, dashed: false });
    }
    svg::close(&mut out);
    out
}

/// One small stacked-bar chart per client region: requests per second by
/// the region that served them, with failed and unknown requests on top.
/// All panels share one y scale so their heights compare.
pub(crate) fn served_by_panels(report: &DrillReport, derived: &Derived<'_>, palette: &Palette) -> Vec<(String, String)> {
    let max_requests = report.timeline.iter().map(|bucket| bucket.requests).max().unwrap_or(0);
    let scale = YScale::Linear { max: nice_ceiling(max_requests as f64) };
    let serving = palette.serving_regions(report);
    let last = derived.clients.len().saturating_sub(1);
    derived
        .clients
        .iter()
        .enumerate()
        .map(|(index, series)| {
            let badges = if index == 0 { Badges::Shown } else { Badges::Hidden };
            let title = if index == last { AxisTitle::Shown } else { AxisTitle::Hidden };
            let frame = timeline_frame(derived, 150.0, title, badges);
            let svg = served_by_panel(report, derived, palette, &serving, series, &frame, scale, badges);
            (series.client_region.clone(), svg)
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn served_by_panel(
    report: &DrillReport,
    derived: &Derived<'_>,
    palette: &Palette,
    serving: &[String],
    series: &ClientSeries<'_>,
    frame: &Frame,
    scale: YScale,
    badges: Badges,
) -> String {
    let mut out = String::new();
    let label = format!("requests of {} clients per second by serving region", series.client_region);
    svg::open(&mut out, frame, &label);
    svg::fault_shading(&mut out, frame, &report.faults);
    let max = match scale {
        YScale::Linear { max } => max,
        _ => 1.0,
    };
    let ticks: Vec<(f64, String)> = [0.0, max / 2.0, max]
        .into_iter()
        .map(|value| (value, format!("{value:.0}")))
        .collect();
    svg::y_axis(&mut out, frame, scale, &ticks, "req/s");
    svg::x_axis(&mut out, frame, frame.bottom > 30.0);
    if series.buckets.is_empty() {
        svg::no_data(&mut out, frame, "no requests from this client region");
    }
    for bucket in &series.buckets {
        let x1 = frame.x(bucket.second as f64);
        let x2 = frame.x(bucket.second as f64 + 1.0);
        let gap = if x2 - x1 > 6.0 { 1.5 } else { 0.0 };
        let mut stacked = 0.0;
        let mut layers: Vec<(&str, u64, String)> = serving
            .iter()
            .filter_map(|region| bucket.served_by.get(region).map(|count| (region, *count)))
            .map(|(region, count)| (palette.colour(region), count, format!("served by {region}")))
            .collect();
        layers.push((FAILED_COLOUR, bucket.failed, "failed".to_string()));
        layers.push((UNKNOWN_COLOUR, bucket.unknown, "unknown".to_string()));
        for (colour, count, what) in layers {
            if count == 0 {
                continue;
            }
            let y_top = frame.y(scale, stacked + count as f64);
            let y_bottom = frame.y(scale, stacked);
            stacked += count as f64;
            let _ = write!(
                out,
                r#"<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{colour}"><title>{title}</title></rect>"#,
                x = c(x1 + gap / 2.0),
                y = c(y_top),
                w = c((x2 - x1 - gap).max(0.5)),
                h = c((y_bottom - y_top).max(0.0)),
                title = escape_html(&format!("second {}: {count} {what}", bucket.second)),
            );
        }
    }
    // Markers go over the bars: they would vanish under them.
    svg::event_markers(&mut out, frame, &derived.events, badges);
    svg::close(&mut out);
    out
}

/// Whether a chart prints "seconds since the load started" under its axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AxisTitle {
    Shown,
    Hidden,
}

fn timeline_frame(derived: &Derived<'_>, height: f64, title: AxisTitle, badges: Badges) -> Frame {
    let bottom = if title == AxisTitle::Shown { 48.0 } else { 24.0 };
    let base = Frame {
        width: CHART_WIDTH,
        height,
        left: LEFT_MARGIN,
        right: RIGHT_MARGIN,
        top: 10.0,
        bottom,
        x_max: derived.span_s,
    };
    if badges == Badges::Hidden {
        return base;
    }
    let rows = svg::marker_rows(&base, &derived.events);
    base.with_marker_rows(rows)
}

/// The 1-2-5 values from 0.1 ms up, the steps of the latency axis.
fn one_two_five() -> impl Iterator<Item = f64> {
    (-1..7).flat_map(|exponent| [1.0, 2.0, 5.0].map(|mantissa| mantissa * 10f64.powi(exponent)))
}

/// The log axis range: the 1-2-5 steps around the data, at least a decade.
fn latency_range(values: &[f64]) -> Option<(f64, f64)> {
    let low = values.iter().copied().reduce(f64::min)?;
    let high = values.iter().copied().reduce(f64::max)?;
    let min = one_two_five().filter(|step| *step <= low).last().unwrap_or(0.1);
    let max = one_two_five().find(|step| *step >= high).unwrap_or(5_000_000.0);
    Some((min, max.max(min * 10.0)))
}

/// Tick values: every 1-2-5 step over up to three decades, only powers of
/// ten beyond that (so labels never crowd).
fn latency_ticks(min: f64, max: f64) -> Vec<f64> {
    let decades = (max / min).log10();
    one_two_five()
        .filter(|value| *value >= min * 0.999 && *value <= max * 1.001)
        .filter(|value| decades <= 3.0 || (value.log10() - value.log10().round()).abs() < 1e-9)
        .collect()
}

fn latency_tick_label(value: f64) -> String {
    if value >= 1000.0 {
        return format!("{} s", value / 1000.0);
    }
    format!("{value} ms")
}

/// The smallest 1-2-5 step at or above `value` (at least 1).
fn nice_ceiling(value: f64) -> f64 {
    one_two_five().find(|step| *step >= value.max(1.0)).unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_axis_brackets_the_data_with_readable_ticks() {
        let (min, max) = latency_range(&[3.2, 48.0, 1400.0]).unwrap();
        assert_eq!((min, max), (2.0, 2000.0));
        let ticks = latency_ticks(min, max);
        assert_eq!(ticks.first(), Some(&2.0));
        assert_eq!(ticks.last(), Some(&2000.0));
        assert_eq!(latency_tick_label(2000.0), "2 s");
        let wide = latency_ticks(0.1, 100_000.0);
        assert_eq!(wide, vec![0.1, 1.0, 10.0, 100.0, 1000.0, 10_000.0, 100_000.0]);
    }

    #[test]
    fn request_axis_rounds_up_to_a_round_number() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(43.0), 50.0);
        assert_eq!(nice_ceiling(101.0), 200.0);
    }
}
