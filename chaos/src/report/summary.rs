//! Figures derived from a [`DrillReport`] that both renderers show: the
//! failover time, the client-visible failure window, the milestones and
//! the per-client time series.

use crate::model::{ControllerEvent, DrillReport, FaultDns, FaultWindow, SecondBucket};

/// Everything the renderers compute from the report, computed once.
pub(crate) struct Derived<'a> {
    /// The x range of the timeline charts in seconds (at least 1).
    pub span_s: f64,
    /// Fault to "DNS answers no longer contain the region".
    pub failover_s: Option<f64>,
    /// The end of the last fault on the target to "back in DNS".
    pub failback_s: Option<f64>,
    pub failure_window: Option<FailureWindow>,
    /// ok / requests over the whole drill.
    pub overall_success: Option<f64>,
    /// One series per client region, in the report's order, then any client
    /// region that only appears in the timeline.
    pub clients: Vec<ClientSeries<'a>>,
    /// Fault, decision, drain flag, DNS changed, recovered: those that
    /// happened, in that order (not necessarily in time order: the DNS
    /// change and the drain flag are written in parallel).
    pub milestones: Vec<Milestone>,
    /// The controller's events in time order; their 1-based positions are
    /// the numbers on the chart markers and in the events table.
    pub events: Vec<ControllerEvent>,
}

/// The seconds in which clients saw failed or unknown requests.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FailureWindow {
    /// First second with a failed or unknown request.
    pub first_second: u32,
    /// Exclusive end: one past the last such second.
    pub end_second: u32,
    /// Seconds inside the window that had failures (gaps are not counted).
    pub seconds_with_failures: u32,
    /// Client regions that saw them, in order of first appearance.
    pub client_regions: Vec<String>,
}

impl FailureWindow {
    pub fn length_s(&self) -> u32 {
        self.end_second - self.first_second
    }
}

/// The buckets of one client region, in time order.
pub(crate) struct ClientSeries<'a> {
    pub client_region: String,
    pub buckets: Vec<&'a SecondBucket>,
}

/// A point of the failover: fault, decision, drain flag, DNS, recovered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Milestone {
    pub label: &'static str,
    pub at_s: f64,
}

/// ok / requests for one bucket; `None` for a second without requests.
pub(crate) fn success_ratio(bucket: &SecondBucket) -> Option<f64> {
    if bucket.requests == 0 {
        return None;
    }
    Some(bucket.ok as f64 / bucket.requests as f64)
}

impl<'a> Derived<'a> {
    pub fn new(report: &'a DrillReport) -> Self {
        let clients = client_series(report);
        let last_second_end = report
            .timeline
            .iter()
            .map(|bucket| bucket.second as f64 + 1.0)
            .fold(0.0, f64::max);
        let span_s = report.duration_s.max(last_second_end).max(1.0).ceil();
        let phases = &report.phases;
        let failover_s = match (phases.fault_at_s, phases.dns_changed_at_s) {
            (Some(fault), Some(dns)) => Some(dns - fault),
            _ => None,
        };
        let overall_success = if report.totals.requests > 0 {
            Some(report.totals.ok as f64 / report.totals.requests as f64)
        } else {
            None
        };
        let milestones = milestones(report);
        let mut events = report.events.clone();
        events.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        Self {
            span_s,
            failover_s,
            failback_s: phases.failback_s,
            failure_window: failure_window(report),
            overall_success,
            clients,
            milestones,
            events,
        }
    }
}

fn client_series(report: &DrillReport) -> Vec<ClientSeries<'_>> {
    let mut names = report.client_regions.clone();
    for bucket in &report.timeline {
        if !names.contains(&bucket.client_region) {
            names.push(bucket.client_region.clone());
        }
    }
    names
        .into_iter()
        .map(|client_region| {
            let mut buckets: Vec<&SecondBucket> = report
                .timeline
                .iter()
                .filter(|bucket| bucket.client_region == client_region)
                .collect();
            buckets.sort_by_key(|bucket| bucket.second);
            ClientSeries {
                client_region,
                buckets,
            }
        })
        .collect()
}

fn failure_window(report: &DrillReport) -> Option<FailureWindow> {
    let mut seconds: Vec<u32> = Vec::new();
    let mut client_regions: Vec<String> = Vec::new();
    for bucket in &report.timeline {
        if bucket.failed + bucket.unknown == 0 {
            continue;
        }
        seconds.push(bucket.second);
        if !client_regions.contains(&bucket.client_region) {
            client_regions.push(bucket.client_region.clone());
        }
    }
    seconds.sort_unstable();
    seconds.dedup();
    let first_second = *seconds.first()?;
    let last_second = *seconds.last()?;
    Some(FailureWindow {
        first_second,
        end_second: last_second + 1,
        seconds_with_failures: seconds.len() as u32,
        client_regions,
    })
}

fn milestones(report: &DrillReport) -> Vec<Milestone> {
    let phases = &report.phases;
    [
        ("fault", phases.fault_at_s),
        ("decision", phases.detected_at_s),
        ("drain flag", phases.drained_at_s),
        ("DNS changed", phases.dns_changed_at_s),
        ("recovered", phases.recovered_at_s),
        ("fault ended", phases.fault_ended_at_s),
        ("back in DNS", phases.back_in_dns_at_s),
        ("served again", phases.served_again_at_s),
    ]
    .into_iter()
    .filter_map(|(label, at_s)| at_s.map(|at_s| Milestone { label, at_s }))
    .collect()
}

/// One line of the phases table.
pub(crate) struct PhaseRow {
    pub label: &'static str,
    pub at_s: f64,
    pub since_fault_s: Option<f64>,
    /// Negative when this milestone came before the previous one (the DNS
    /// change can land before the drain flag).
    pub since_previous_s: Option<f64>,
}

impl Derived<'_> {
    /// The milestones with their offsets from the fault and from the
    /// previous milestone.
    pub fn phase_rows(&self) -> Vec<PhaseRow> {
        let fault_at = self
            .milestones
            .iter()
            .find(|milestone| milestone.label == "fault")
            .map(|milestone| milestone.at_s);
        let mut previous: Option<f64> = None;
        self.milestones
            .iter()
            .map(|milestone| {
                let row = PhaseRow {
                    label: milestone.label,
                    at_s: milestone.at_s,
                    since_fault_s: fault_at.map(|fault| milestone.at_s - fault),
                    since_previous_s: previous.map(|previous| milestone.at_s - previous),
                };
                previous = Some(milestone.at_s);
                row
            })
            .collect()
    }
}

/// "fault → DNS changed · decision +0.60 s, drain flag +0.70 s".
pub(crate) fn failover_detail(report: &DrillReport) -> String {
    let phases = &report.phases;
    let Some(fault) = phases.fault_at_s else {
        return "no fault injected".to_string();
    };
    if phases.dns_changed_at_s.is_none() {
        if let Some(first) = report
            .faults
            .first()
            .filter(|first| first.dns == Some(FaultDns::AlreadyOut))
        {
            return format!(
                "no DNS change: {} was already out of DNS when the fault began",
                first.target
            );
        }
    }
    let steps: Vec<String> = [
        ("decision", phases.detected_at_s),
        ("drain flag", phases.drained_at_s),
    ]
    .into_iter()
    .filter_map(|(name, at_s)| at_s.map(|at_s| format!("{name} +{:.2} s", at_s - fault)))
    .collect();
    if steps.is_empty() {
        return "fault → DNS changed".to_string();
    }
    format!("fault → DNS changed · {}", steps.join(", "))
}

/// What a fault window's target did in the clients' DNS answers, for the
/// faults tables: "changed after 0.82 s (at 10.82 s)", or why there was no
/// change.
pub(crate) fn fault_dns_text(fault: &FaultWindow) -> String {
    match fault.dns {
        Some(FaultDns::Left { at_s, after_s }) => {
            format!("changed after {after_s:.2} s (at {at_s:.2} s)")
        }
        Some(FaultDns::AlreadyOut) => "no change: already out of DNS when it began".to_string(),
        Some(FaultDns::Stayed) => "no change: stayed in the answers".to_string(),
        None => "not observed".to_string(),
    }
}

/// How a fault window's target came back, for the faults tables: "back in
/// DNS after 12.40 s, served again after 12.50 s", or why there is nothing
/// to say.
pub(crate) fn fault_failback_text(fault: &FaultWindow) -> String {
    let way_back = way_back_text(fault);
    match fault.reach_after_leaving {
        Some(reach) => format!("{way_back}; {}", reach_text(&reach)),
        None => way_back,
    }
}

/// How long clients kept reaching a region after it left DNS: pooled
/// keep-alive connections, and fresh connections through a resolver's
/// cached answer.
fn reach_text(reach: &crate::stickiness::ReachAfterLeaving) -> String {
    let part = |kind: &str, last: Option<f64>, count: u64| match last {
        Some(last) => format!("{kind} clients for {last:.2} s ({count} requests)"),
        None => format!("no {kind} client"),
    };
    if reach.pooled_s.is_none() && reach.fresh_s.is_none() {
        return "no client reached it after it left DNS".to_string();
    }
    format!(
        "after it left DNS it served {}, {}",
        part("pooled", reach.pooled_s, reach.pooled_requests),
        part("fresh", reach.fresh_s, reach.fresh_requests)
    )
}

fn way_back_text(fault: &FaultWindow) -> String {
    let Some(failback) = fault.failback else {
        return match fault.end_s {
            None => "still faulted at the end".to_string(),
            Some(_) => "never left DNS".to_string(),
        };
    };
    match (failback.dns_back_after_s, failback.served_again_after_s) {
        (Some(back), Some(served)) => {
            format!("back in DNS after {back:.2} s, served again after {served:.2} s")
        }
        (Some(back), None) => format!("back in DNS after {back:.2} s, served nothing after"),
        (None, _) => "not back before its next fault or the end".to_string(),
    }
}

/// The operations that failed or ended unknown with their intended start
/// in a fault's window, for the faults tables: "12 failed, 2 unknown" or
/// "none" (each one is listed under "Failed and unknown operations").
pub(crate) fn fault_operations_text(report: &DrillReport, fault: &FaultWindow) -> String {
    let inside = |at: f64| at >= fault.start_s && !matches!(fault.end_s, Some(end) if at >= end);
    let (mut failed, mut unknown) = (0, 0);
    for operation in &report.failed_operations {
        if !inside(operation.intended_s) {
            continue;
        }
        match operation.outcome.as_str() {
            "unknown" => unknown += 1,
            _ => failed += 1,
        }
    }
    match (failed, unknown) {
        (0, 0) => "none".to_string(),
        (failed, 0) => format!("{failed} failed"),
        (0, unknown) => format!("{unknown} unknown"),
        (failed, unknown) => format!("{failed} failed, {unknown} unknown"),
    }
}

/// "fault ended → back in DNS · served again +0.50 s".
pub(crate) fn failback_detail(report: &DrillReport) -> String {
    let phases = &report.phases;
    let never_left = report
        .faults
        .first()
        .and_then(|first| crate::failback::last_fault_on(&report.faults, &first.target))
        .is_some_and(|last| last.end_s.is_some() && last.failback.is_none());
    match (phases.fault_ended_at_s, phases.back_in_dns_at_s) {
        (None, _) => "the fault lasted to the end: no way back measured".to_string(),
        (Some(_), None) if never_left => "never left DNS: nothing to come back from".to_string(),
        (Some(_), None) => "not back in DNS before the end of the drill".to_string(),
        (Some(_), Some(back)) => match phases.served_again_at_s {
            Some(served) if served >= back => format!(
                "fault ended → back in DNS · served again +{:.2} s",
                served - back
            ),
            // Clients whose resolvers still held the region's address (for
            // up to the TTL) reached it before DNS gave it back.
            Some(served) => format!(
                "fault ended → back in DNS · served {:.2} s before that, through answers \
                 cached before it left",
                back - served
            ),
            None => "fault ended → back in DNS · served nothing after".to_string(),
        },
    }
}

/// The colour of a milestone's bar: one slate ramp, so that phases never
/// read as regions.
pub(crate) fn milestone_colour(label: &str) -> &'static str {
    match label {
        "fault" => "#f87171",
        "decision" => "#1e293b",
        "drain flag" => "#334155",
        "DNS changed" => "#475569",
        "fault ended" => "#fca5a5",
        "back in DNS" => "#047857",
        "served again" => "#10b981",
        _ => "#64748b",
    }
}

/// The milestones of the way back, which follow the failover ones.
pub(crate) fn is_return_milestone(label: &str) -> bool {
    matches!(label, "fault ended" | "back in DNS" | "served again")
}
