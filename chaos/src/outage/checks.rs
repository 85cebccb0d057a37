//! The hypothesis checks of the drills that travel a whole outage: service
//! back within a bound after the last fault, commits really cut, a replica
//! cut off from the database no longer answering from its stale view, and
//! the Route53 records converging through throttling.

use crate::model::{ControllerEvent, FaultWindow, HypothesisCheck, SecondBucket};
use crate::spec::{Drill, FaultKind};

use super::watch::{DnsAnswer, Watched};
use super::Counted;

/// Everything the checks judge by.
pub struct Inputs<'a> {
    pub drill: &'a Drill,
    pub faults: &'a [FaultWindow],
    pub timeline: &'a [SecondBucket],
    pub events: &'a [ControllerEvent],
    pub watched: &'a Watched,
    pub counted: &'a Counted,
}

/// The checks the drill's hypothesis asks for.
pub fn checks(inputs: &Inputs) -> Vec<HypothesisCheck> {
    let h = &inputs.drill.hypothesis;
    let mut checks = Vec::new();
    if let Some(bound) = h.max_recovery_s {
        checks.extend(recovery(inputs, bound));
    }
    if let Some(minimum) = h.min_commit_resets {
        checks.push(HypothesisCheck {
            name: "commits whose answer was cut reached the service as unknown outcomes".into(),
            expected: format!(">= {minimum}"),
            observed: format!(
                "{} resolved by the service through the idempotency key",
                inputs.counted.commits_unknown
            ),
            passed: inputs.counted.commits_unknown >= minimum,
        });
    }
    if let Some(bound) = h.max_stale_answer_s {
        checks.extend(stale_answers(inputs, bound));
    }
    if h.route53_converged {
        checks.extend(route53(inputs));
    }
    checks
}

/// Every client region is back above the bad-second threshold within
/// `bound` seconds of the last fault's end and stays there.
fn recovery(inputs: &Inputs, bound: f64) -> Vec<HypothesisCheck> {
    let Some(ended) = inputs
        .faults
        .iter()
        .filter_map(|f| f.end_s)
        .max_by(f64::total_cmp)
    else {
        return Vec::new();
    };
    let threshold = inputs.drill.hypothesis.bad_second_below;
    inputs
        .drill
        .client_regions()
        .into_iter()
        .map(|client| {
            // The end of the last bad second after the faults ended.
            let recovered = inputs
                .timeline
                .iter()
                .filter(|b| b.client_region == client && b.requests > 0)
                .filter(|b| f64::from(b.second) + 1.0 > ended)
                .filter(|b| (b.ok as f64) / (b.requests as f64) < threshold)
                .map(|b| f64::from(b.second) + 1.0)
                .fold(ended, f64::max);
            let after = recovered - ended;
            HypothesisCheck {
                name: format!("service back after the last fault ended ({client} clients)"),
                expected: format!("<= {bound} s"),
                observed: format!("{after:.1} s"),
                passed: after <= bound,
            }
        })
        .collect()
}

/// For each `controller-db-cut` window: the replica's last authoritative
/// answer during the cut came within `bound` of its start; once the bound
/// passed it declined (SERVFAIL/REFUSED) and reported not ready; after the
/// cut it answered and was ready again, by itself.
fn stale_answers(inputs: &Inputs, bound: f64) -> Vec<HypothesisCheck> {
    let end_of_load = f64::from(inputs.drill.load.duration_s);
    inputs
        .faults
        .iter()
        .filter(|f| f.kind == FaultKind::ControllerDbCut.as_str())
        .map(|window| {
            let end = window.end_s.unwrap_or(end_of_load);
            let seen: Vec<_> = inputs
                .watched
                .replicas
                .iter()
                .filter(|s| s.region == window.target)
                .collect();
            let during: Vec<_> = seen
                .iter()
                .filter(|s| s.t >= window.start_s && s.t <= end)
                .collect();
            let last_answer = during
                .iter()
                .filter(|s| s.dns == DnsAnswer::Authoritative)
                .map(|s| s.t - window.start_s)
                .fold(0.0, f64::max);
            let past_bound: Vec<_> = during
                .iter()
                .filter(|s| s.t > window.start_s + bound)
                .collect();
            let declined = past_bound
                .iter()
                .filter(|s| matches!(s.dns, DnsAnswer::Refused { .. }))
                .count();
            let unready = past_bound.iter().filter(|s| s.ready == Some(false)).count();
            let back = seen
                .iter()
                .filter(|s| s.t > end && s.dns == DnsAnswer::Authoritative && s.ready == Some(true))
                .map(|s| s.t - end)
                .next();
            // A cut shorter than the bound never reaches it: nothing to decline.
            let must_decline = end - window.start_s > bound + 1.0;
            let passed = !during.is_empty()
                && last_answer <= bound
                && (!must_decline || (declined > 0 && unready > 0))
                && back.is_some();
            HypothesisCheck {
                name: format!(
                    "{} controller cut off from the database at {:.1} s: no answer from a stale view",
                    window.target, window.start_s
                ),
                expected: format!(
                    "last authoritative answer <= {bound} s into the cut; then SERVFAIL/REFUSED \
                     and not ready; answering and ready again after the cut"
                ),
                observed: format!(
                    "last authoritative answer {last_answer:.1} s into the cut ({} looks); \
                     {declined} declined and {unready} not ready past the bound; {}",
                    during.len(),
                    match back {
                        Some(after) => format!("answering and ready {after:.1} s after the cut"),
                        None => "not answering and ready after the cut".into(),
                    }
                ),
                passed,
            }
        })
        .collect()
}

/// In Route53 mode: each region that must drain left the records during
/// its outage (after any throttling) and is back at the end; every region's
/// record is there at the end; while the API throttled, the data-plane gate
/// (the drain flag) still took the region out, and the controllers retried.
fn route53(inputs: &Inputs) -> Vec<HypothesisCheck> {
    let records = &inputs.watched.records;
    let throttle = inputs
        .faults
        .iter()
        .find(|f| f.kind == FaultKind::Route53Throttle.as_str());
    let mut checks = Vec::new();
    for region in &inputs.drill.hypothesis.must_drain {
        let Some(fault) = inputs.faults.iter().find(|f| &f.target == region) else {
            continue;
        };
        let removed = records
            .iter()
            .find(|r| r.t >= fault.start_s && !r.regions.contains(region))
            .map(|r| r.t);
        let restored = removed.and_then(|removed| {
            records
                .iter()
                .find(|r| r.t > removed && r.regions.contains(region))
                .map(|r| r.t)
        });
        let ended = fault.end_s.unwrap_or(f64::INFINITY);
        let mut observed = vec![
            match removed {
                Some(at) => format!("record removed {:.1} s after the fault", at - fault.start_s),
                None => "record never removed".into(),
            },
            match restored {
                Some(at) => format!("restored {:.1} s after the fault ended", at - ended),
                None => "never restored".into(),
            },
        ];
        let mut passed = removed.is_some() && restored.is_some_and(|at| at > ended);
        let (gate_passed, gate_observed) = gate(inputs, region, fault.start_s);
        observed.push(gate_observed);
        passed &= gate_passed;
        if let Some(throttle) = throttle {
            let throttle_end = throttle.end_s.unwrap_or(f64::INFINITY);
            let flag = inputs
                .events
                .iter()
                .find(|e| {
                    e.kind == "drain_flag"
                        && e.region.as_deref() == Some(region)
                        && e.at_s >= fault.start_s
                })
                .map(|e| e.at_s);
            observed.push(match flag {
                Some(at) => format!(
                    "drain flag {:.1} s after the fault, {:.1} s before throttling ended",
                    at - fault.start_s,
                    throttle_end - at
                ),
                None => "no drain flag".into(),
            });
            observed.push(format!(
                "{} calls throttled",
                inputs.counted.route53_calls_throttled
            ));
            passed &= flag.is_some_and(|at| at < throttle_end)
                && inputs.counted.route53_calls_throttled > 0;
        }
        checks.push(HypothesisCheck {
            name: format!("Route53 record of {region} removed and restored"),
            expected: if throttle.is_some() {
                "drained by the flag while the API throttled; record removed, then restored after \
                 the fault ended; /healthz/region 503 while drained, 200 after"
                    .into()
            } else {
                "record removed, then restored after the fault ended; /healthz/region 503 while \
                 drained, 200 after"
                    .into()
            },
            observed: observed.join("; "),
            passed,
        });
    }
    let last = records.last();
    let missing: Vec<&String> = inputs
        .drill
        .topology
        .regions
        .iter()
        .filter(|r| !last.is_some_and(|l| l.regions.contains(*r)))
        .collect();
    checks.push(HypothesisCheck {
        name: "every region's Route53 record present at the end".into(),
        expected: "none missing".into(),
        observed: match last {
            None => "the records were never read".into(),
            Some(_) if missing.is_empty() => "none missing".into(),
            Some(_) => format!("missing: {missing:?}"),
        },
        passed: last.is_some() && missing.is_empty(),
    });
    checks
}

/// The data-plane gate of `region`: from its drain flag (after `since`) to
/// its restore, no instance admitted traffic on `/healthz/region` and some
/// refused it (the region was back, and kept out by the gate alone until
/// the controller restored it); after the restore, it admitted again.
fn gate(inputs: &Inputs, region: &str, since: f64) -> (bool, String) {
    let event = |kind: &str, after: f64| {
        inputs
            .events
            .iter()
            .find(|e| e.kind == kind && e.region.as_deref() == Some(region) && e.at_s >= after)
            .map(|e| e.at_s)
    };
    let Some(drained) = event("drain_flag", since) else {
        return (false, "gate: never drained".into());
    };
    let restored = event("restore", drained).unwrap_or(f64::INFINITY);
    let looks: Vec<_> = inputs
        .watched
        .gates
        .iter()
        .filter(|g| g.region == region)
        .collect();
    // The gate follows the flag within the service's refresh (500 ms, its
    // production setting) and one read over the WAN. The audit row that
    // dates the flag's change is written after the write has committed and
    // been read back (one to two round trips of the leader's database path,
    // up to 220 ms each), so the gate may admit up to that long before the
    // restore's audit time: the same margin at both ends.
    const MARGIN_S: f64 = 0.8;
    let between = |from: f64, to: f64| looks.iter().filter(move |g| g.t > from && g.t < to);
    let admitted_while_drained = between(drained + MARGIN_S, restored - MARGIN_S)
        .filter(|g| g.admitted == Some(true))
        .count();
    let refused_while_drained = between(drained + MARGIN_S, restored - MARGIN_S)
        .filter(|g| g.admitted == Some(false))
        .count();
    let admitted_after = between(restored + 1.0, f64::INFINITY)
        .filter(|g| g.admitted == Some(true))
        .count();
    let passed = admitted_while_drained == 0 && refused_while_drained > 0 && admitted_after > 0;
    (
        passed,
        format!(
            "gate while drained: {refused_while_drained} looks 503, {admitted_while_drained} \
             admitted; {admitted_after} admitted after the restore"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outage::watch::GateSeen;

    fn judge(looks: &[(f64, Option<bool>)]) -> (bool, String) {
        let drill = Drill::parse(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../drills/route53-throttling.yaml"
            ))
            .unwrap(),
        )
        .unwrap();
        let event = |at_s: f64, kind: &str| ControllerEvent {
            at_s,
            kind: kind.into(),
            region: Some("eu-west-1".into()),
            detail: String::new(),
        };
        // Drained at 13 s, restored (audit time) at 40 s.
        let events = [event(13.0, "drain_flag"), event(40.0, "restore")];
        let watched = Watched {
            gates: looks
                .iter()
                .map(|&(t, admitted)| GateSeen {
                    t,
                    region: "eu-west-1".into(),
                    admitted,
                })
                .collect(),
            ..Watched::default()
        };
        let inputs = Inputs {
            drill: &drill,
            faults: &[],
            timeline: &[],
            events: &events,
            watched: &watched,
            counted: &Counted::default(),
        };
        gate(&inputs, "eu-west-1", 10.0)
    }

    #[test]
    fn the_gate_must_refuse_between_the_drain_and_the_restore_and_admit_after() {
        let refused = |t: f64| (t, Some(false));
        let admitted = |t: f64| (t, Some(true));
        // Admitted just after the flag (the refresh), down, refused, admitted
        // just before the restore's audit row (written after the write was
        // read back), admitted after.
        let fine = [
            admitted(13.2),
            (20.0, None),
            refused(30.0),
            admitted(39.7),
            admitted(42.0),
        ];
        assert!(judge(&fine).0, "{}", judge(&fine).1);
        // Admitted well inside the drain: the gate let traffic in.
        let leaked = [refused(20.0), admitted(30.0), admitted(42.0)];
        let (passed, observed) = judge(&leaked);
        assert!(!passed);
        assert!(observed.contains("1 admitted"), "{observed}");
        // Never refused, or never admitted after the restore.
        assert!(!judge(&[(20.0, None), admitted(42.0)]).0);
        assert!(!judge(&[refused(20.0), refused(42.0)]).0);
    }
}
