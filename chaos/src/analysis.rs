//! Turns the history, the fault windows, the controllers' audit log and the
//! DNS observations into the report's figures and the hypothesis verdict.

use std::collections::{BTreeMap, BTreeSet};

use hdrhistogram::Histogram;

use crate::load::{Operation, Outcome};
use crate::model::{
    ControllerEvent, ErrorBudget, FaultWindow, HypothesisCheck, Phases, SecondBucket, Totals,
};
use crate::spec::Drill;

/// What the DNS watcher saw: at `t`, client region `client` was answered
/// with instances of `regions`.
#[derive(Debug, Clone)]
pub struct DnsObservation {
    pub t: f64,
    pub client: String,
    pub regions: BTreeSet<String>,
}

/// The time after `since` from which no client region's answer contains
/// `region` any more (until it comes back), or `None` if it never left.
pub fn dns_gone_at(dns: &[DnsObservation], region: &str, since: f64) -> Option<f64> {
    let clients: BTreeSet<&str> = dns.iter().map(|o| o.client.as_str()).collect();
    let mut still_answered: BTreeSet<&str> = BTreeSet::new();
    for observation in dns.iter().filter(|o| o.t >= since) {
        if observation.regions.contains(region) {
            still_answered.insert(observation.client.as_str());
        } else {
            still_answered.remove(observation.client.as_str());
            let seen_everyone = clients.iter().all(|c| {
                dns.iter()
                    .any(|o| o.client == *c && o.t >= since && o.t <= observation.t)
            });
            if still_answered.is_empty() && seen_everyone {
                return Some(observation.t);
            }
        }
    }
    None
}

/// Per-second buckets per client region.
pub fn timeline(
    history: &[Operation],
    client_regions: &[String],
    seconds: u32,
) -> Vec<SecondBucket> {
    let mut buckets: BTreeMap<(u32, String), (SecondBucket, Histogram<u64>)> = BTreeMap::new();
    for second in 0..seconds {
        for region in client_regions {
            buckets.insert(
                (second, region.clone()),
                (
                    SecondBucket {
                        second,
                        client_region: region.clone(),
                        requests: 0,
                        ok: 0,
                        failed: 0,
                        unknown: 0,
                        p50_ms: None,
                        p99_ms: None,
                        served_by: BTreeMap::new(),
                    },
                    Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds"),
                ),
            );
        }
    }
    for operation in history {
        let second = operation.intended_s.floor() as u32;
        let Some((bucket, histogram)) = buckets.get_mut(&(second, operation.client_region.clone()))
        else {
            continue;
        };
        bucket.requests += 1;
        match operation.outcome {
            Outcome::Ok => bucket.ok += 1,
            Outcome::Fail => bucket.failed += 1,
            Outcome::Unknown => bucket.unknown += 1,
        }
        if let Some(region) = &operation.served_by {
            *bucket.served_by.entry(region.clone()).or_default() += 1;
        }
        let _ = histogram.record((operation.latency_ms * 1000.0).max(1.0) as u64);
    }
    buckets
        .into_values()
        .map(|(mut bucket, histogram)| {
            if !histogram.is_empty() {
                bucket.p50_ms = Some(histogram.value_at_quantile(0.50) as f64 / 1000.0);
                bucket.p99_ms = Some(histogram.value_at_quantile(0.99) as f64 / 1000.0);
            }
            bucket
        })
        .collect()
}

/// Counts of the history (the write checks are filled by `verify`).
pub fn totals(history: &[Operation]) -> Totals {
    let mut totals = Totals::default();
    for operation in history {
        totals.requests += 1;
        match operation.outcome {
            Outcome::Ok => {
                totals.ok += 1;
                if operation.attempts > 1 {
                    totals.retried_ok += 1;
                }
            }
            Outcome::Fail => totals.failed += 1,
            Outcome::Unknown => totals.unknown += 1,
        }
    }
    totals
}

/// Fault, decision, drain flag, DNS change and recovery times.
pub fn phases(
    drill: &Drill,
    faults: &[FaultWindow],
    events: &[ControllerEvent],
    dns: &[DnsObservation],
    timeline: &[SecondBucket],
) -> Phases {
    let mut phases = Phases::default();
    let Some(fault) = faults.first() else {
        return phases;
    };
    phases.fault_at_s = Some(fault.start_s);
    let target = &fault.target;
    let after = |event: &&ControllerEvent| {
        event.at_s >= fault.start_s && event.region.as_deref() == Some(target)
    };
    phases.detected_at_s = events
        .iter()
        .filter(after)
        .find(|e| e.kind == "decision" && e.detail.starts_with("drain ("))
        .map(|e| e.at_s);
    phases.drained_at_s = events
        .iter()
        .filter(after)
        .find(|e| e.kind == "drain_flag")
        .map(|e| e.at_s);
    phases.dns_changed_at_s = dns_gone_at(dns, target, fault.start_s);
    // Recovered: the end of the last bad second after the fault.
    let threshold = drill.hypothesis.bad_second_below;
    let last_bad = timeline
        .iter()
        .filter(|b| f64::from(b.second) + 1.0 > fault.start_s && b.requests > 0)
        .filter(|b| (b.ok as f64) / (b.requests as f64) < threshold)
        .map(|b| f64::from(b.second) + 1.0)
        .fold(None, |acc: Option<f64>, s| {
            Some(acc.map_or(s, |a| a.max(s)))
        });
    // Recovered: clients are back above the threshold and DNS no longer
    // sends anyone to the faulted region.
    let recovered = [last_bad, phases.dns_changed_at_s, phases.drained_at_s]
        .into_iter()
        .flatten()
        .fold(fault.start_s, f64::max);
    phases.recovered_at_s = Some(recovered);
    let since = |at: Option<f64>| at.map(|at| ((at - fault.start_s) * 1000.0).round() / 1000.0);
    phases.detect_s = since(phases.detected_at_s);
    phases.drain_s = since(phases.drained_at_s);
    phases.dns_s = since(phases.dns_changed_at_s);
    phases.recover_s = since(phases.recovered_at_s);
    phases
}

/// The share of the error budget spent so far at the drill's rate.
pub fn error_budget(totals: &Totals, duration_s: f64) -> ErrorBudget {
    let rate = if duration_s > 0.0 {
        totals.requests as f64 / duration_s
    } else {
        0.0
    };
    ErrorBudget::compute(0.9999, 30.0, rate, totals.failed + totals.unknown)
}

/// Every hypothesis check of the drill.
pub fn checks(
    drill: &Drill,
    history: &[Operation],
    timeline: &[SecondBucket],
    totals: &Totals,
    drained_regions: &BTreeSet<String>,
) -> Vec<HypothesisCheck> {
    let h = &drill.hypothesis;
    let mut checks = Vec::new();
    for client in drill.client_regions() {
        let operations: Vec<&Operation> = history
            .iter()
            .filter(|op| op.client_region == client)
            .collect();
        let ok = operations
            .iter()
            .filter(|op| op.outcome == Outcome::Ok)
            .count();
        let ratio = if operations.is_empty() {
            0.0
        } else {
            ok as f64 / operations.len() as f64
        };
        checks.push(HypothesisCheck {
            name: format!("success ratio, {client} clients"),
            expected: format!(">= {:.3}%", h.min_success_ratio * 100.0),
            observed: format!("{:.3}% ({ok}/{})", ratio * 100.0, operations.len()),
            passed: !operations.is_empty() && ratio >= h.min_success_ratio,
        });
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("bounds");
        for op in operations.iter().filter(|op| op.outcome == Outcome::Ok) {
            let _ = histogram.record((op.latency_ms * 1000.0).max(1.0) as u64);
        }
        let p99 = histogram.value_at_quantile(0.99) as f64 / 1000.0;
        checks.push(HypothesisCheck {
            name: format!("p99 latency, {client} clients"),
            expected: format!("<= {} ms", h.max_p99_ms),
            observed: format!("{p99:.1} ms"),
            passed: p99 <= h.max_p99_ms,
        });
        let bad_seconds = timeline
            .iter()
            .filter(|b| b.client_region == client && b.requests > 0)
            .filter(|b| (b.ok as f64) / (b.requests as f64) < h.bad_second_below)
            .count();
        checks.push(HypothesisCheck {
            name: format!(
                "seconds below {:.1}% success, {client} clients",
                h.bad_second_below * 100.0
            ),
            expected: format!("<= {}", h.max_bad_seconds),
            observed: bad_seconds.to_string(),
            passed: bad_seconds <= h.max_bad_seconds as usize,
        });
    }
    checks.push(HypothesisCheck {
        name: "acknowledged writes lost".into(),
        expected: format!("<= {}", h.max_lost_writes),
        observed: format!("{} of {}", totals.writes_lost, totals.writes_acknowledged),
        passed: totals.writes_lost <= h.max_lost_writes,
    });
    checks.push(HypothesisCheck {
        name: "writes applied twice or failed writes present".into(),
        expected: "0".into(),
        observed: (totals.writes_duplicated + totals.failed_writes_present).to_string(),
        passed: totals.writes_duplicated == 0 && totals.failed_writes_present == 0,
    });
    checks.push(HypothesisCheck {
        name: "money conserved, no negative balance".into(),
        expected: format!("total {}, min >= 0", totals.total_balance_before),
        observed: format!(
            "total {}, min {}",
            totals.total_balance_after, totals.min_balance_after
        ),
        passed: totals.total_balance_after == totals.total_balance_before
            && totals.min_balance_after >= 0,
    });
    for region in &h.never_drained {
        checks.push(HypothesisCheck {
            name: format!("{region} never drained"),
            expected: "not drained".into(),
            observed: if drained_regions.contains(region) {
                "drained".into()
            } else {
                "not drained".into()
            },
            passed: !drained_regions.contains(region),
        });
    }
    for region in &h.must_drain {
        checks.push(HypothesisCheck {
            name: format!("{region} drained"),
            expected: "drained".into(),
            observed: if drained_regions.contains(region) {
                "drained".into()
            } else {
                "not drained".into()
            },
            passed: drained_regions.contains(region),
        });
    }
    checks
}
