//! Turns the history, the fault windows, the controllers' audit log and the
//! DNS observations into the report's figures and the hypothesis verdict.

use std::collections::{BTreeMap, BTreeSet};

use hdrhistogram::Histogram;

use crate::load::{Operation, Outcome};
use crate::model::{
    ControllerEvent, ErrorBudget, FaultDns, FaultWindow, HypothesisCheck, Phases, SecondBucket,
    Totals,
};
use crate::spec::Drill;

/// What the DNS watcher saw: at `t`, client region `client` was answered
/// with instances of `regions`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DnsObservation {
    pub t: f64,
    pub client: String,
    pub regions: BTreeSet<String>,
}

/// Whether `region` is in some client region's DNS answer at `at`: each
/// client region's latest answer at or before `at`, or its first answer
/// after `at` if it had none by then. `None` without any observation.
pub fn dns_answers_include(dns: &[DnsObservation], region: &str, at: f64) -> Option<bool> {
    let clients: BTreeSet<&str> = dns.iter().map(|o| o.client.as_str()).collect();
    if clients.is_empty() {
        return None;
    }
    Some(clients.into_iter().any(|client| {
        let answers = || dns.iter().filter(move |o| o.client == client);
        let answer = answers()
            .filter(|o| o.t <= at)
            .max_by(|a, b| a.t.total_cmp(&b.t))
            .or_else(|| {
                answers()
                    .filter(|o| o.t > at)
                    .min_by(|a, b| a.t.total_cmp(&b.t))
            });
        answer.is_some_and(|o| o.regions.contains(region))
    }))
}

/// What the clients' DNS answers did about `region` from `since` (a
/// fault's start) on: it left them (a DNS change), it was already out of
/// every answer when the fault began (no change: drained by an earlier
/// fault and not restored), or it stayed. `None` without observations.
pub fn fault_dns(dns: &[DnsObservation], region: &str, since: f64) -> Option<FaultDns> {
    if !dns_answers_include(dns, region, since)? {
        return Some(FaultDns::AlreadyOut);
    }
    Some(match gone_from_every_answer(dns, region, since) {
        Some(at_s) => FaultDns::Left {
            at_s,
            after_s: ((at_s - since) * 1000.0).round() / 1000.0,
        },
        None => FaultDns::Stayed,
    })
}

/// The time after `since` from which no client region's answer contains
/// `region` any more (until it comes back): the DNS change of a fault that
/// started at `since`. `None` if it never left, and also if it was already
/// out of every answer at `since` (nothing changed then).
pub fn dns_gone_at(dns: &[DnsObservation], region: &str, since: f64) -> Option<f64> {
    match fault_dns(dns, region, since)? {
        FaultDns::Left { at_s, .. } => Some(at_s),
        FaultDns::AlreadyOut | FaultDns::Stayed => None,
    }
}

/// The first observation at or after `since` (in the watcher's order, which
/// is time order) from which no client region's answer contains `region`,
/// once every client region was heard from since `since`. Callers check
/// first that `region` was there at `since`: otherwise this is merely the
/// first full round of answers.
fn gone_from_every_answer(dns: &[DnsObservation], region: &str, since: f64) -> Option<f64> {
    let clients: BTreeSet<&str> = dns.iter().map(|o| o.client.as_str()).collect();
    let mut heard: BTreeSet<&str> = BTreeSet::new();
    let mut still_answered: BTreeSet<&str> = BTreeSet::new();
    for observation in dns.iter().filter(|o| o.t >= since) {
        let client = observation.client.as_str();
        heard.insert(client);
        if observation.regions.contains(region) {
            still_answered.insert(client);
        } else {
            still_answered.remove(client);
            if still_answered.is_empty() && heard.len() == clients.len() {
                return Some(observation.t);
            }
        }
    }
    None
}

/// A false failover without a drain flag: each region that must never be
/// drained must also never leave every client region's DNS answers (the
/// controllers' quorum or early leave can drop a region from their
/// answers before, or without, any drain). Checked from the first time
/// every client region was answered with it.
pub fn never_out_of_dns_checks(drill: &Drill, dns: &[DnsObservation]) -> Vec<HypothesisCheck> {
    drill
        .hypothesis
        .never_drained
        .iter()
        .filter_map(|region| {
            let first_in = dns
                .iter()
                .filter(|o| o.regions.contains(region))
                .map(|o| o.t)
                .reduce(f64::min)?;
            let left = gone_from_every_answer(dns, region, first_in);
            Some(HypothesisCheck {
                name: format!("{region} never out of DNS"),
                expected: "in some client region's answers throughout".into(),
                observed: match left {
                    Some(at) => format!("out of every answer at {at:.1} s"),
                    None => "in the answers throughout".into(),
                },
                passed: left.is_none(),
            })
        })
        .collect()
}

/// The DNS changes as the clients saw them, one per fault window whose
/// target was in the answers when it began and then left every client
/// region's answers, each with its return to the answers if it came back.
/// A window whose target was already out of DNS at its start gets none.
pub fn dns_events(dns: &[DnsObservation], faults: &[FaultWindow]) -> Vec<ControllerEvent> {
    let mut events: Vec<ControllerEvent> = Vec::new();
    for fault in faults {
        let Some(FaultDns::Left { at_s: gone, .. }) = fault_dns(dns, &fault.target, fault.start_s)
        else {
            continue;
        };
        // Two faults on one region that start together see one change.
        let region = Some(fault.target.clone());
        if events.iter().any(|e| e.at_s == gone && e.region == region) {
            continue;
        }
        events.push(ControllerEvent {
            at_s: gone,
            kind: "dns_change".to_owned(),
            region: region.clone(),
            detail: format!(
                "{} gone from the DNS answers of every client region",
                fault.target
            ),
        });
        if let Some(back) = dns
            .iter()
            .find(|o| o.t > gone && o.regions.contains(&fault.target))
        {
            events.push(ControllerEvent {
                at_s: back.t,
                kind: "dns_change".to_owned(),
                region,
                detail: format!(
                    "{} back in the DNS answers ({} clients)",
                    fault.target, back.client
                ),
            });
        }
    }
    events
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
    // The way back: from the end of the last fault on the target.
    if let Some(last) = crate::failback::last_fault_on(faults, target) {
        phases.fault_ended_at_s = last.end_s;
        phases.back_in_dns_at_s = last.failback.and_then(|f| f.dns_back_at_s);
        phases.served_again_at_s = last.failback.and_then(|f| f.served_again_at_s);
        phases.failback_s = last.failback.and_then(|f| f.dns_back_after_s);
        phases.served_again_s = last.failback.and_then(|f| f.served_again_after_s);
    }
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
    checks.extend(crate::verify::checks::ledger_checks(
        totals,
        h.max_lost_writes,
    ));
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

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENTS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];
    const TARGET: &str = "eu-west-1";

    /// What the DNS watcher records: every client region asked every 100 ms
    /// from 0 to `until_s`; `answered(t, client index)` says whether the
    /// answer contained the target (the other regions always answer).
    fn watch(until_s: f64, answered: impl Fn(f64, usize) -> bool) -> Vec<DnsObservation> {
        let mut observations = Vec::new();
        let mut tick = 0u32;
        while f64::from(tick) / 10.0 <= until_s {
            let t = f64::from(tick) / 10.0;
            for (index, client) in CLIENTS.iter().enumerate() {
                let mut regions: BTreeSet<String> =
                    ["us-east-1", "ap-southeast-1"].map(String::from).into();
                if answered(t, index) {
                    regions.insert(TARGET.to_owned());
                }
                observations.push(DnsObservation {
                    t,
                    client: client.to_string(),
                    regions,
                });
            }
            tick += 1;
        }
        observations
    }

    fn kill(start_s: f64, end_s: f64) -> FaultWindow {
        FaultWindow {
            kind: "region-kill".to_owned(),
            target: TARGET.to_owned(),
            start_s,
            end_s: Some(end_s),
            dns: None,
            failback: None,
            reach_after_leaving: None,
            hooks: Vec::new(),
        }
    }

    /// The flapping-region drill: killed at 5, 15 and 25 s for 5 s each;
    /// the clients lose the region 0.6 to 0.8 s after the first kill and it
    /// is never put back while it flaps.
    fn flapping() -> (Vec<DnsObservation>, Vec<FaultWindow>) {
        let dns = watch(35.0, |t, client| t < 5.6 + 0.1 * client as f64);
        let faults = vec![kill(5.0, 10.0), kill(15.0, 20.0), kill(25.0, 30.0)];
        (dns, faults)
    }

    fn region_kill_drill() -> Drill {
        Drill::parse(include_str!("../../drills/kill-and-return.yaml")).unwrap()
    }

    #[test]
    fn a_region_already_out_of_dns_gets_no_dns_change_when_it_is_killed_again() {
        let (dns, faults) = flapping();
        let outcomes: Vec<Option<FaultDns>> = faults
            .iter()
            .map(|f| fault_dns(&dns, &f.target, f.start_s))
            .collect();
        assert_eq!(
            outcomes,
            [
                Some(FaultDns::Left {
                    at_s: 5.8,
                    after_s: 0.8
                }),
                Some(FaultDns::AlreadyOut),
                Some(FaultDns::AlreadyOut),
            ]
        );
        assert_eq!(dns_gone_at(&dns, TARGET, 15.0), None);
        assert_eq!(dns_gone_at(&dns, TARGET, 25.0), None);

        let events = dns_events(&dns, &faults);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].kind, "dns_change");
        assert_eq!(events[0].at_s, 5.8);
        assert_eq!(events[0].region.as_deref(), Some(TARGET));

        // The failover time is the first kill's, never a later window's.
        let phases = phases(&region_kill_drill(), &faults, &events, &dns, &[]);
        assert_eq!(phases.dns_changed_at_s, Some(5.8));
        assert_eq!(phases.dns_s, Some(0.8));
    }

    #[test]
    fn a_region_restored_after_flapping_comes_back_once() {
        let dns = watch(40.0, |t, client| t < 5.6 + 0.1 * client as f64 || t >= 36.0);
        let faults = vec![kill(5.0, 10.0), kill(15.0, 20.0), kill(25.0, 30.0)];
        let events = dns_events(&dns, &faults);
        let times: Vec<f64> = events.iter().map(|e| e.at_s).collect();
        assert_eq!(times, [5.8, 36.0], "{events:?}");
        assert!(events[1].detail.contains("back in the DNS answers"));
    }

    #[test]
    fn a_region_back_in_dns_between_kills_changes_again() {
        // Restored at 12 s, so the second kill takes it out again.
        let dns = watch(30.0, |t, _| t < 5.8 || (12.0..15.7).contains(&t));
        let faults = vec![kill(5.0, 10.0), kill(15.0, 20.0)];
        let gone: Vec<f64> = dns_events(&dns, &faults)
            .iter()
            .filter(|e| e.detail.contains("gone"))
            .map(|e| e.at_s)
            .collect();
        assert_eq!(gone, [5.8, 15.7]);
        assert_eq!(
            fault_dns(&dns, TARGET, 15.0),
            Some(FaultDns::Left {
                at_s: 15.7,
                after_s: 0.7
            })
        );
    }

    #[test]
    fn a_single_kill_still_yields_its_dns_change_and_failover_time() {
        let dns = watch(30.0, |t, client| {
            t < 10.6 + 0.1 * client as f64 || t >= 27.0
        });
        let faults = vec![kill(10.0, 25.0)];
        assert_eq!(
            fault_dns(&dns, TARGET, 10.0),
            Some(FaultDns::Left {
                at_s: 10.8,
                after_s: 0.8
            })
        );
        let events = dns_events(&dns, &faults);
        let times: Vec<f64> = events.iter().map(|e| e.at_s).collect();
        assert_eq!(times, [10.8, 27.0], "{events:?}");
        assert!(events[0].detail.contains("gone from the DNS answers"));
        let phases = phases(&region_kill_drill(), &faults, &events, &dns, &[]);
        assert_eq!(phases.fault_at_s, Some(10.0));
        assert_eq!(phases.dns_changed_at_s, Some(10.8));
        assert_eq!(phases.dns_s, Some(0.8));
    }

    #[test]
    fn a_first_fault_on_a_region_already_out_of_dns_has_no_failover_time() {
        // Still drained from an earlier run, e.g. on an attached deployment.
        let dns = watch(30.0, |_, _| false);
        let faults = vec![kill(10.0, 25.0)];
        assert_eq!(fault_dns(&dns, TARGET, 10.0), Some(FaultDns::AlreadyOut));
        assert!(dns_events(&dns, &faults).is_empty());
        let phases = phases(&region_kill_drill(), &faults, &[], &dns, &[]);
        assert_eq!(phases.dns_changed_at_s, None);
        assert_eq!(phases.dns_s, None);
    }

    #[test]
    fn one_client_still_answered_at_the_start_counts_as_in_dns() {
        // Two client regions lost it before the fault, one still had it.
        let dns = watch(20.0, |t, client| client == 2 && t < 10.5);
        assert_eq!(
            fault_dns(&dns, TARGET, 10.0),
            Some(FaultDns::Left {
                at_s: 10.5,
                after_s: 0.5
            })
        );
    }

    #[test]
    fn a_region_that_never_leaves_stays_and_no_observation_is_unknown() {
        let dns = watch(20.0, |_, _| true);
        assert_eq!(fault_dns(&dns, TARGET, 10.0), Some(FaultDns::Stayed));
        assert!(dns_events(&dns, &[kill(10.0, 15.0)]).is_empty());
        assert_eq!(fault_dns(&[], TARGET, 10.0), None);
        assert_eq!(dns_gone_at(&[], TARGET, 10.0), None);
    }

    /// A region no fault touched that leaves every client region's DNS
    /// answers fails the drill, drained or not.
    #[test]
    fn a_healthy_region_out_of_dns_fails_the_drill() {
        let mut drill =
            crate::spec::Drill::parse(include_str!("../../drills/kill-and-return.yaml")).unwrap();
        drill.hypothesis.never_drained = vec![TARGET.to_owned()];
        let stayed = watch(30.0, |_, _| true);
        let check = &never_out_of_dns_checks(&drill, &stayed)[0];
        assert!(check.passed, "{check:?}");
        let dropped = watch(30.0, |t, _| !(12.0..14.0).contains(&t));
        let check = &never_out_of_dns_checks(&drill, &dropped)[0];
        assert!(!check.passed);
        assert_eq!(check.observed, "out of every answer at 12.0 s");
        // Dropped by one client region only: still in the others' answers.
        let one = watch(30.0, |t, client| client != 0 || !(12.0..14.0).contains(&t));
        assert!(never_out_of_dns_checks(&drill, &one)[0].passed);
    }
}
