//! The way back: when each fault's target returned to the clients' DNS
//! answers and served traffic again after the fault ended, and the
//! hypothesis checks on it (`must_return`, `max_failback_s`).
//!
//! A fault's failback is measured from its end to the first DNS answer
//! that contains the region again, before the next fault on the same
//! region began (a flapping region's early windows end with no return).

use crate::analysis::{dns_answers_include, DnsObservation};
use crate::load::{Operation, Outcome};
use crate::model::{Failback, FaultDns, FaultWindow, HypothesisCheck};
use crate::spec::Drill;

/// The failback of `faults[index]`: `None` while it lasts to the end, or
/// when its target never left DNS during it (nothing to come back from).
pub fn fault_failback(
    dns: &[DnsObservation],
    history: &[Operation],
    faults: &[FaultWindow],
    index: usize,
) -> Option<Failback> {
    let fault = &faults[index];
    let ended = fault.end_s?;
    // The window of the way back: until the next fault on this region.
    let until = faults
        .iter()
        .filter(|other| other.target == fault.target && other.start_s >= ended)
        .map(|other| other.start_s)
        .fold(f64::INFINITY, f64::min);
    // The way back starts once the region is out of DNS, which may be after
    // the fault ended (a short fault still drains the region).
    let out_from = match fault.dns {
        Some(FaultDns::Left { at_s, .. }) => at_s.max(ended),
        Some(FaultDns::AlreadyOut) => ended,
        _ if dns_answers_include(dns, &fault.target, ended) == Some(false) => ended,
        _ => return None,
    };
    if out_from >= until {
        return None;
    }
    let dns_back_at_s = dns
        .iter()
        .filter(|o| o.t >= out_from && o.t < until)
        .find(|o| o.regions.contains(&fault.target))
        .map(|o| o.t);
    // First attempts only: a retry goes to the next region of the client's
    // preference list whatever DNS says, so it does not show the region
    // taking traffic again.
    let served_again_at_s = history
        .iter()
        .filter(|op| op.attempts == 1)
        .filter(|op| op.outcome == Outcome::Ok && op.served_by.as_deref() == Some(&fault.target))
        .map(|op| op.intended_s)
        .filter(|&t| t >= out_from && t < until)
        .fold(None, |first: Option<f64>, t| {
            Some(first.map_or(t, |f| f.min(t)))
        });
    let after = |at: Option<f64>| at.map(|at| ((at - ended) * 1000.0).round() / 1000.0);
    Some(Failback {
        dns_back_at_s,
        dns_back_after_s: after(dns_back_at_s),
        served_again_at_s,
        served_again_after_s: after(served_again_at_s),
    })
}

/// The last fault window on `region`, if any.
pub fn last_fault_on<'a>(faults: &'a [FaultWindow], region: &str) -> Option<&'a FaultWindow> {
    faults
        .iter()
        .filter(|f| f.target == region)
        .max_by(|a, b| a.start_s.total_cmp(&b.start_s))
}

/// The region a `must_return` entry names: itself, or for `leader` the
/// region the drill's last fault on the leader hit (found when it started:
/// the window of that kind that started nearest its planned time).
fn resolve<'a>(drill: &Drill, faults: &'a [FaultWindow], region: &'a str) -> Option<&'a str> {
    if region != crate::spec::LEADER {
        return Some(region);
    }
    let planned = drill
        .method
        .iter()
        .rfind(|f| f.target == crate::spec::LEADER)?;
    faults
        .iter()
        .filter(|w| w.kind == planned.fault.as_str())
        .min_by(|a, b| {
            (a.start_s - planned.start_s)
                .abs()
                .total_cmp(&(b.start_s - planned.start_s).abs())
        })
        .map(|w| w.target.as_str())
}

/// One check per `must_return` region: back in DNS after its last fault
/// ended, within `max_failback_s` when the drill sets it.
pub fn checks(drill: &Drill, faults: &[FaultWindow]) -> Vec<HypothesisCheck> {
    let limit = drill.hypothesis.max_failback_s;
    drill
        .hypothesis
        .must_return
        .iter()
        .map(|named| {
            let resolved = resolve(drill, faults, named);
            let region = match resolved {
                Some(region) if region != named => format!("{named} ({region})"),
                _ => named.clone(),
            };
            let failback = resolved
                .and_then(|region| last_fault_on(faults, region))
                .and_then(|f| f.failback);
            let back = failback.and_then(|f| f.dns_back_after_s);
            let observed = match (back, failback.and_then(|f| f.served_again_after_s)) {
                (Some(back), Some(served)) => {
                    format!("back in DNS after {back:.2} s, served again after {served:.2} s")
                }
                (Some(back), None) => {
                    format!("back in DNS after {back:.2} s, served nothing before the end")
                }
                (None, _) => "not back in DNS before the end of the drill".to_owned(),
            };
            HypothesisCheck {
                name: format!("{region} back after its last fault"),
                expected: match limit {
                    Some(limit) => format!("back in DNS <= {limit} s after the fault ended"),
                    None => "back in DNS before the end".to_owned(),
                },
                observed,
                passed: back.is_some_and(|back| limit.is_none_or(|limit| back <= limit)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const TARGET: &str = "eu-west-1";

    /// One client region asking every 100 ms; `answered(t)` says whether
    /// the answer contained the target.
    fn watch(until_s: f64, answered: impl Fn(f64) -> bool) -> Vec<DnsObservation> {
        (0..=(until_s * 10.0) as u32)
            .map(|tick| {
                let t = f64::from(tick) / 10.0;
                let mut regions: BTreeSet<String> = ["us-east-1".to_owned()].into();
                if answered(t) {
                    regions.insert(TARGET.to_owned());
                }
                DnsObservation {
                    t,
                    client: "eu-west-1".to_owned(),
                    regions,
                }
            })
            .collect()
    }

    fn served(t: f64) -> Operation {
        Operation {
            client_region: "eu-west-1".to_owned(),
            kind: "read".to_owned(),
            key: None,
            intended_s: t,
            latency_ms: 1.0,
            outcome: Outcome::Ok,
            served_by: Some(TARGET.to_owned()),
            connection: crate::load::Connection::Pooled,
            attempts: 1,
            first_error: None,
            transfer: None,
            account: None,
            transfer_id: None,
            balance: None,
        }
    }

    fn kill(start_s: f64, end_s: f64, dns: &[DnsObservation]) -> FaultWindow {
        FaultWindow {
            kind: "region-kill".to_owned(),
            target: TARGET.to_owned(),
            start_s,
            end_s: Some(end_s),
            dns: crate::analysis::fault_dns(dns, TARGET, start_s),
            failback: None,
            reach_after_leaving: None,
            hooks: Vec::new(),
        }
    }

    #[test]
    fn the_return_is_measured_from_the_end_of_the_fault() {
        // Out 10.8-32.4 s; killed 10-20 s; served again from 32.5 s. The
        // retry at 24 s reached it through the client's preference list,
        // not through DNS: it does not count.
        let dns = watch(40.0, |t| !(10.8..32.4).contains(&t));
        let mut history: Vec<Operation> = [5.0, 24.0, 32.5, 33.0].into_iter().map(served).collect();
        history[1].attempts = 2;
        let faults = vec![kill(10.0, 20.0, &dns)];
        let failback = fault_failback(&dns, &history, &faults, 0).unwrap();
        assert_eq!(failback.dns_back_at_s, Some(32.4));
        assert_eq!(failback.dns_back_after_s, Some(12.4));
        assert_eq!(failback.served_again_after_s, Some(12.5));
    }

    #[test]
    fn a_short_fault_that_drains_after_it_ended_measures_from_its_end_to_the_return() {
        // Killed 10-12 s, out of DNS from 13.5 s, back at 25 s: the return
        // is 13 s after the end, not the 12.1 s answer still holding it.
        let dns = watch(40.0, |t| !(13.5..25.0).contains(&t));
        let history: Vec<Operation> = [12.1, 26.0].into_iter().map(served).collect();
        let faults = vec![kill(10.0, 12.0, &dns)];
        let failback = fault_failback(&dns, &history, &faults, 0).unwrap();
        assert_eq!(failback.dns_back_after_s, Some(13.0));
        assert_eq!(failback.served_again_after_s, Some(14.0));
    }

    #[test]
    fn a_flapping_region_returns_only_after_its_last_fault() {
        let dns = watch(50.0, |t| !(5.7..42.0).contains(&t));
        let faults: Vec<FaultWindow> = [(5.0, 10.0), (15.0, 20.0), (25.0, 30.0)]
            .into_iter()
            .map(|(start, end)| kill(start, end, &dns))
            .collect();
        let first = fault_failback(&dns, &[], &faults, 0).unwrap();
        assert_eq!(first.dns_back_at_s, None, "not back before the next kill");
        let last = fault_failback(&dns, &[], &faults, 2).unwrap();
        assert_eq!(last.dns_back_after_s, Some(12.0));
    }

    #[test]
    fn a_region_that_never_left_dns_has_no_failback_and_an_unended_fault_neither() {
        let dns = watch(40.0, |_| true);
        let faults = vec![kill(10.0, 20.0, &dns)];
        assert_eq!(fault_failback(&dns, &[], &faults, 0), None);
        let gone = watch(40.0, |t| t < 10.5);
        let mut unended = kill(10.0, 20.0, &gone);
        unended.end_s = None;
        assert_eq!(fault_failback(&gone, &[], &[unended], 0), None);
    }

    #[test]
    fn must_return_fails_without_a_return_or_beyond_the_limit() {
        let mut drill = Drill::parse(include_str!("../../drills/kill-and-return.yaml")).unwrap();
        drill.hypothesis.must_return = vec![TARGET.to_owned()];
        drill.hypothesis.max_failback_s = Some(15.0);
        let dns = watch(40.0, |t| !(10.8..32.4).contains(&t));
        let mut faults = vec![kill(10.0, 20.0, &dns)];
        faults[0].failback = fault_failback(&dns, &[], &faults, 0);
        assert!(checks(&drill, &faults)[0].passed);
        drill.hypothesis.max_failback_s = Some(10.0);
        assert!(!checks(&drill, &faults)[0].passed);
        let never = watch(40.0, |t| t < 10.8);
        let mut faults = vec![kill(10.0, 20.0, &never)];
        faults[0].failback = fault_failback(&never, &[], &faults, 0);
        let check = &checks(&drill, &faults)[0];
        assert!(!check.passed);
        assert!(check.observed.contains("not back"), "{}", check.observed);
    }

    /// `must_return: [leader]` follows the region the fault on the leader
    /// hit, whichever it was.
    #[test]
    fn the_leader_must_return_wherever_it_was() {
        let mut drill = Drill::parse(include_str!("../../drills/leader-region-kill.yaml")).unwrap();
        drill.hypothesis.must_return = vec![crate::spec::LEADER.to_owned()];
        drill.hypothesis.max_failback_s = Some(15.0);
        let dns = watch(40.0, |t| !(10.8..32.4).contains(&t));
        let mut faults = vec![kill(10.0, 20.0, &dns)];
        faults[0].failback = fault_failback(&dns, &[], &faults, 0);
        let check = &checks(&drill, &faults)[0];
        assert_eq!(
            check.name,
            format!("leader ({TARGET}) back after its last fault")
        );
        assert!(check.passed, "{check:?}");
        let never = watch(40.0, |t| t < 10.8);
        let mut faults = vec![kill(10.0, 20.0, &never)];
        faults[0].failback = fault_failback(&never, &[], &faults, 0);
        assert!(!checks(&drill, &faults)[0].passed);
    }
}
