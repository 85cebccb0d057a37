//! The data of the timeline charts, as the JSON that `templates/charts.js`
//! hands to uPlot: one x axis of seconds, the series per client region,
//! the serving regions' stacks, the fault windows, the controller's events
//! and the failover and failback milestones of each fault.
//!
//! Everything the charts show is decided here, in Rust and under test; the
//! script only draws it.

use serde::Serialize;

use super::format::{event_kind_label, Palette, FAILED_COLOUR, UNKNOWN_COLOUR};
use super::summary::{milestone_colour, success_ratio, Derived};
use crate::model::{DrillReport, FaultDns, FaultWindow};

/// Everything the charts draw.
#[derive(Debug, Serialize)]
pub(crate) struct ChartData {
    /// The x axis covers `0..=span_s` seconds.
    pub span_s: f64,
    /// The middle of every second, `0.5, 1.5, ...`: the x of each point.
    pub x: Vec<f64>,
    pub clients: Vec<ClientSeries>,
    /// The top of the requests-per-second axis, shared by every panel so
    /// that their heights compare.
    pub requests_axis_max: f64,
    pub faults: Vec<FaultMark>,
    pub events: Vec<EventMark>,
    pub milestones: Vec<MilestoneMark>,
}

/// One client region's series, aligned with [`ChartData::x`] (`None` for a
/// second without a bucket: a gap, never a zero).
#[derive(Debug, Serialize)]
pub(crate) struct ClientSeries {
    pub name: String,
    pub colour: &'static str,
    pub success: Vec<Option<f64>>,
    pub p50_ms: Vec<Option<f64>>,
    pub p99_ms: Vec<Option<f64>>,
    /// Requests per second, bottom of the stack first: each serving region,
    /// then failed, then unknown.
    pub layers: Vec<Layer>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Layer {
    pub label: String,
    pub colour: &'static str,
    pub counts: Vec<Option<u64>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct FaultMark {
    pub label: String,
    pub start_s: f64,
    /// The end of the drill when the fault lasted to it.
    pub end_s: f64,
}

/// A controller event; its 1-based number matches the events table.
#[derive(Debug, Serialize)]
pub(crate) struct EventMark {
    pub number: usize,
    pub at_s: f64,
    pub title: String,
}

/// A named moment of one fault: the way out (fault, out of DNS) and the way
/// back (fault ended, back in DNS, served again).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct MilestoneMark {
    pub label: &'static str,
    pub at_s: f64,
    pub colour: &'static str,
    /// "failover" or "failback": the failback ones are drawn solid.
    pub direction: &'static str,
    pub title: String,
}

impl ChartData {
    pub fn new(report: &DrillReport, derived: &Derived<'_>, palette: &Palette) -> Self {
        let seconds = derived.span_s as usize;
        let x = (0..seconds).map(|second| second as f64 + 0.5).collect();
        let serving = palette.serving_regions(report);
        let clients = derived
            .clients
            .iter()
            .map(|series| {
                let mut aligned = vec![None; seconds];
                for bucket in &series.buckets {
                    if let Some(slot) = aligned.get_mut(bucket.second as usize) {
                        *slot = Some(*bucket);
                    }
                }
                let each = |value: &dyn Fn(&crate::model::SecondBucket) -> Option<f64>| {
                    aligned
                        .iter()
                        .map(|bucket| bucket.and_then(value))
                        .collect::<Vec<_>>()
                };
                // A log axis cannot show zero: such a latency is left out.
                let positive = |value: Option<f64>| value.filter(|ms| ms.is_finite() && *ms > 0.0);
                let count = |get: &dyn Fn(&crate::model::SecondBucket) -> u64| {
                    aligned
                        .iter()
                        .map(|bucket| bucket.map(get))
                        .collect::<Vec<_>>()
                };
                let mut layers: Vec<Layer> = serving
                    .iter()
                    .map(|region| Layer {
                        label: format!("served by {region}"),
                        colour: palette.colour(region),
                        counts: count(&|bucket| bucket.served_by.get(region).copied().unwrap_or(0)),
                    })
                    .collect();
                layers.push(Layer {
                    label: "failed".to_string(),
                    colour: FAILED_COLOUR,
                    counts: count(&|bucket| bucket.failed),
                });
                layers.push(Layer {
                    label: "unknown".to_string(),
                    colour: UNKNOWN_COLOUR,
                    counts: count(&|bucket| bucket.unknown),
                });
                ClientSeries {
                    name: series.client_region.clone(),
                    colour: palette.colour(&series.client_region),
                    success: each(&success_ratio),
                    p50_ms: each(&|bucket| positive(bucket.p50_ms)),
                    p99_ms: each(&|bucket| positive(bucket.p99_ms)),
                    layers,
                }
            })
            .collect();
        let max_requests = report
            .timeline
            .iter()
            .map(|bucket| bucket.requests)
            .max()
            .unwrap_or(0);
        Self {
            span_s: derived.span_s,
            x,
            clients,
            requests_axis_max: nice_ceiling(max_requests as f64),
            faults: report
                .faults
                .iter()
                .map(|fault| FaultMark {
                    label: fault_label(fault),
                    start_s: fault.start_s,
                    end_s: fault.end_s.unwrap_or(derived.span_s),
                })
                .collect(),
            events: derived
                .events
                .iter()
                .enumerate()
                .map(|(index, event)| EventMark {
                    number: index + 1,
                    at_s: event.at_s,
                    title: format!(
                        "{}. {} at {:.2} s{}",
                        index + 1,
                        event_kind_label(&event.kind),
                        event.at_s,
                        event
                            .region
                            .as_deref()
                            .map(|region| format!(" ({region})"))
                            .unwrap_or_default()
                    ),
                })
                .collect(),
            // A moment past the chart's end (an aborted drill's) cannot be
            // drawn: it stays in the phases and faults tables.
            milestones: report
                .faults
                .iter()
                .flat_map(fault_milestones)
                .filter(|mark| mark.at_s <= derived.span_s)
                .collect(),
        }
    }
}

/// The way out and the way back of one fault window, each moment that was
/// observed: the fault, its target out of DNS, the fault's end, the target
/// back in DNS and serving again.
pub(crate) fn fault_milestones(fault: &FaultWindow) -> Vec<MilestoneMark> {
    let target = &fault.target;
    let mut marks = vec![mark(
        "fault",
        fault.start_s,
        "failover",
        format!("{} {target} at {:.2} s", fault.kind, fault.start_s),
    )];
    if let Some(FaultDns::Left { at_s, after_s }) = fault.dns {
        marks.push(mark(
            "out of DNS",
            at_s,
            "failover",
            format!("{target} out of the clients' DNS answers at {at_s:.2} s, {after_s:.2} s after the fault"),
        ));
    }
    let Some(end_s) = fault.end_s else {
        return marks;
    };
    marks.push(mark(
        "fault ended",
        end_s,
        "failback",
        format!("{} {target} undone at {end_s:.2} s", fault.kind),
    ));
    let Some(failback) = fault.failback else {
        return marks;
    };
    if let (Some(at_s), Some(after_s)) = (failback.dns_back_at_s, failback.dns_back_after_s) {
        marks.push(mark(
            "back in DNS",
            at_s,
            "failback",
            format!("{target} back in the clients' DNS answers at {at_s:.2} s, {after_s:.2} s after the fault ended"),
        ));
    }
    if let (Some(at_s), Some(after_s)) = (failback.served_again_at_s, failback.served_again_after_s)
    {
        marks.push(mark(
            "served again",
            at_s,
            "failback",
            format!("{target} served a request again at {at_s:.2} s, {after_s:.2} s after the fault ended"),
        ));
    }
    marks
}

fn mark(label: &'static str, at_s: f64, direction: &'static str, title: String) -> MilestoneMark {
    // The milestone colours of the phases table, so a marker and its row
    // read as one thing ("out of DNS" is the phases' "DNS changed").
    let colour = match label {
        "out of DNS" => milestone_colour("DNS changed"),
        other => milestone_colour(other),
    };
    MilestoneMark {
        label,
        at_s,
        colour,
        direction,
        title,
    }
}

/// "region-kill us-east-1 (20.0 s to 45.0 s)".
pub(crate) fn fault_label(fault: &FaultWindow) -> String {
    let end = fault
        .end_s
        .map(|end| format!("{end:.1} s"))
        .unwrap_or_else(|| "end".to_string());
    format!(
        "{} {} ({:.1} s to {end})",
        fault.kind, fault.target, fault.start_s
    )
}

/// The smallest 1-2-5 step at or above `value` (at least 1).
pub(crate) fn nice_ceiling(value: f64) -> f64 {
    (0..7)
        .flat_map(|exponent| [1.0, 2.0, 5.0].map(|mantissa| mantissa * 10f64.powi(exponent)))
        .find(|step| *step >= value.max(1.0))
        .unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture::region_kill_report;

    #[test]
    fn request_axis_rounds_up_to_a_round_number() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(43.0), 50.0);
        assert_eq!(nice_ceiling(101.0), 200.0);
    }

    #[test]
    fn each_fault_marks_its_way_out_and_its_way_back() {
        let report = region_kill_report();
        let labels: Vec<(&str, f64)> = fault_milestones(&report.faults[0])
            .iter()
            .map(|mark| (mark.label, mark.at_s))
            .collect();
        assert_eq!(
            labels,
            [
                ("fault", 20.0),
                ("out of DNS", 21.2),
                ("fault ended", 45.0),
                ("back in DNS", 48.4),
                ("served again", 48.9),
            ]
        );
        // A fault still active at the end has no way back to mark.
        let mut open = report.faults[0].clone();
        open.end_s = None;
        assert_eq!(fault_milestones(&open).len(), 2);
    }

    #[test]
    fn series_are_aligned_on_one_axis_with_gaps_for_missing_seconds() {
        let mut report = region_kill_report();
        report
            .timeline
            .retain(|bucket| !(bucket.client_region == "eu-west-1" && bucket.second == 5));
        let derived = Derived::new(&report);
        let data = ChartData::new(&report, &derived, &Palette::new(&report));
        assert_eq!(data.x.len(), 60);
        let eu = &data.clients[1];
        assert_eq!(eu.name, "eu-west-1");
        assert_eq!(eu.success[5], None);
        assert_eq!(eu.success[4], Some(1.0));
        let us = &data.clients[0];
        // Second 20 of us-east-1: 6 served there, 30 by eu-west-1, 12
        // failed, 2 unknown; stacked bottom up.
        let at_20: Vec<Option<u64>> = us.layers.iter().map(|layer| layer.counts[20]).collect();
        assert_eq!(at_20, [Some(6), Some(30), Some(0), Some(12), Some(2)]);
        assert_eq!(data.requests_axis_max, 50.0);
        assert_eq!(data.milestones.len(), 5);
    }
}
