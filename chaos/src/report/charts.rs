//! The timeline charts: success ratio, p50/p99 latency and the serving
//! region per client region, each with the faults shaded and the
//! controller's events marked.

use std::fmt::Write;

use super::format::{
    coordinate as c, escape_html, percent, Palette, FAILED_COLOUR, UNKNOWN_COLOUR,
};
use super::markers::{self, Badges};
use super::summary::{success_ratio, ClientSeries, Derived};
use super::svg::{
    self, latency_range, latency_tick_label, latency_ticks, nice_ceiling, Frame, LineStyle, YScale,
};
use crate::model::DrillReport;

/// Width of every timeline chart in SVG units; the page scales it.
const CHART_WIDTH: f64 = 1100.0;
const LEFT_MARGIN: f64 = 68.0;
const RIGHT_MARGIN: f64 = 18.0;

/// Success ratio per second and client region, 0-100% with 90-100%
/// expanded so that a dip to 98% is as visible as one to 50%.
pub(crate) fn success_chart(
    report: &DrillReport,
    derived: &Derived<'_>,
    palette: &Palette,
) -> String {
    let frame = timeline_frame(derived, 300.0, AxisTitle::Shown, Badges::Shown);
    let scale = YScale::Success {
        knee: 0.9,
        knee_share: 0.75,
    };
    let mut out = String::new();
    svg::open(
        &mut out,
        &frame,
        "success ratio per second and client region",
    );
    markers::fault_shading(&mut out, &frame, &report.faults);
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
    markers::event_markers(&mut out, &frame, &derived.events, Badges::Shown);
    if report.timeline.is_empty() {
        svg::no_data(&mut out, &frame, "no requests were recorded");
    }
    // Every client region sits at 100% most of the time: earlier series are
    // drawn wider so that each colour still shows where the lines coincide.
    let series_count = derived.clients.len();
    for (index, series) in derived.clients.iter().enumerate() {
        let colour = palette.colour(&series.client_region);
        let width = 2.0 + 2.75 * (series_count - 1 - index) as f64;
        let points: Vec<(f64, Option<f64>)> = series
            .buckets
            .iter()
            .map(|bucket| (bucket.second as f64 + 0.5, success_ratio(bucket)))
            .collect();
        svg::line_with_gaps(
            &mut out,
            &frame,
            scale,
            &points,
            LineStyle {
                colour,
                width,
                dashed: false,
            },
        );
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
                    series.client_region,
                    bucket.second,
                    bucket.ok,
                    bucket.requests,
                    bucket.failed,
                    bucket.unknown
                )),
            );
        }
        lowest_point_label(&mut out, &frame, scale, series, colour);
    }
    svg::close(&mut out);
    out
}

/// "min 64.0%" beside the worst second of a client region that lost
/// requests, so the depth of a dip reads without the axis.
fn lowest_point_label(
    out: &mut String,
    frame: &Frame,
    scale: YScale,
    series: &ClientSeries<'_>,
    colour: &str,
) {
    let lowest = series
        .buckets
        .iter()
        .filter_map(|bucket| success_ratio(bucket).map(|ratio| (bucket.second, ratio)))
        .filter(|(_, ratio)| *ratio < 1.0)
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let Some((second, ratio)) = lowest else {
        return;
    };
    // Under the point, where the line has just come down from 100%; above
    // it when the point is too close to the axis.
    let y = frame.y(scale, ratio);
    let label_y = if y + 20.0 < frame.plot_bottom() {
        y + 18.0
    } else {
        y - 9.0
    };
    let _ = write!(
        out,
        r#"<text class="dip-label" x="{x}" y="{y}" text-anchor="middle" fill="{colour}">min {ratio}</text>"#,
        x = c(frame.x(second as f64 + 0.5)),
        y = c(label_y),
        ratio = percent(ratio),
    );
}

/// p50 (solid) and p99 (dashed) latency per client region on a log scale.
pub(crate) fn latency_chart(
    report: &DrillReport,
    derived: &Derived<'_>,
    palette: &Palette,
) -> String {
    let frame = timeline_frame(derived, 300.0, AxisTitle::Shown, Badges::Shown);
    let mut out = String::new();
    svg::open(
        &mut out,
        &frame,
        "p50 and p99 latency per second and client region",
    );
    markers::fault_shading(&mut out, &frame, &report.faults);
    let values: Vec<f64> = report
        .timeline
        .iter()
        .flat_map(|bucket| [bucket.p50_ms, bucket.p99_ms])
        .flatten()
        .filter(|value| value.is_finite() && *value > 0.0)
        .collect();
    let Some((min, max)) = latency_range(&values) else {
        svg::y_axis(
            &mut out,
            &frame,
            YScale::Linear { max: 1.0 },
            &[],
            "latency (ms, log scale)",
        );
        svg::x_axis(&mut out, &frame, true);
        markers::event_markers(&mut out, &frame, &derived.events, Badges::Shown);
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
    markers::event_markers(&mut out, &frame, &derived.events, Badges::Shown);
    for series in &derived.clients {
        let colour = palette.colour(&series.client_region);
        let p99: Vec<(f64, Option<f64>)> = series
            .buckets
            .iter()
            .map(|bucket| (bucket.second as f64 + 0.5, bucket.p99_ms))
            .collect();
        let p50: Vec<(f64, Option<f64>)> = series
            .buckets
            .iter()
            .map(|bucket| (bucket.second as f64 + 0.5, bucket.p50_ms))
            .collect();
        svg::line_with_gaps(
            &mut out,
            &frame,
            scale,
            &p99,
            LineStyle {
                colour,
                width: 1.6,
                dashed: true,
            },
        );
        svg::line_with_gaps(
            &mut out,
            &frame,
            scale,
            &p50,
            LineStyle {
                colour,
                width: 2.2,
                dashed: false,
            },
        );
    }
    svg::close(&mut out);
    out
}

/// One small stacked-bar chart per client region: requests per second by
/// the region that served them, with failed and unknown requests on top.
/// All panels share one y scale so their heights compare.
pub(crate) fn served_by_panels(
    report: &DrillReport,
    derived: &Derived<'_>,
    palette: &Palette,
) -> Vec<(String, String)> {
    let max_requests = report
        .timeline
        .iter()
        .map(|bucket| bucket.requests)
        .max()
        .unwrap_or(0);
    let scale = YScale::Linear {
        max: nice_ceiling(max_requests as f64),
    };
    let serving = palette.serving_regions(report);
    let last = derived.clients.len().saturating_sub(1);
    derived
        .clients
        .iter()
        .enumerate()
        .map(|(index, series)| {
            let badges = if index == 0 {
                Badges::Shown
            } else {
                Badges::Hidden
            };
            let title = if index == last {
                AxisTitle::Shown
            } else {
                AxisTitle::Hidden
            };
            let frame = timeline_frame(derived, 150.0, title, badges);
            let svg = served_by_panel(
                report, derived, palette, &serving, series, &frame, scale, badges,
            );
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
    let label = format!(
        "requests of {} clients per second by serving region",
        series.client_region
    );
    svg::open(&mut out, frame, &label);
    markers::fault_shading(&mut out, frame, &report.faults);
    // The bars hide the shading: a strip above the plot marks the faults.
    markers::fault_strip(&mut out, frame, &report.faults);
    let max = match scale {
        YScale::Linear { max } => max,
        _ => 1.0,
    };
    let ticks: Vec<(f64, String)> = [0.0, max / 2.0, max]
        .into_iter()
        .map(|value| (value, format!("{value}")))
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
    markers::event_markers(&mut out, frame, &derived.events, badges);
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
    let bottom = if title == AxisTitle::Shown {
        48.0
    } else {
        24.0
    };
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
    let rows = markers::marker_rows(&base, &derived.events);
    base.with_marker_rows(rows)
}
