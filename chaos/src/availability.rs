//! The availability verdict of a long drill (the game day): availability
//! after the retries over every client, judged by its lower confidence
//! bound so that a drill too short to vouch for the objective cannot pass
//! it; first-attempt availability beside it (what clients without retries
//! would have seen); and bad minutes, as an SLO dashboard counts them.

use std::collections::BTreeMap;

use crate::load::{Operation, Outcome};
use crate::model::HypothesisCheck;
use crate::report::confidence::{lower_bound, CONFIDENCE};
use crate::spec::Drill;

/// The checks of `drill.hypothesis.min_availability` and
/// `max_bad_minutes`; none when the drill sets neither.
pub fn checks(drill: &Drill, history: &[Operation]) -> Vec<HypothesisCheck> {
    let h = &drill.hypothesis;
    let mut checks = Vec::new();
    let requests = history.len() as u64;
    let failures = history
        .iter()
        .filter(|op| op.outcome != Outcome::Ok)
        .count() as u64;
    if let Some(objective) = h.min_availability {
        let observed = ratio(requests - failures, requests);
        let lower = lower_bound(requests, failures, 1.0 - CONFIDENCE);
        checks.push(HypothesisCheck {
            name: format!(
                "availability after the retries, {:.0}% lower confidence bound",
                CONFIDENCE * 100.0
            ),
            expected: format!(">= {}", percent(objective)),
            observed: format!(
                "{} observed, at least {} with {:.0}% confidence ({failures} failed or unknown of {requests})",
                percent(observed),
                percent(lower),
                CONFIDENCE * 100.0
            ),
            passed: requests > 0 && lower >= objective,
        });
        let first_attempt_ok = history
            .iter()
            .filter(|op| op.outcome == Outcome::Ok && op.attempts == 1)
            .count() as u64;
        checks.push(HypothesisCheck {
            name: "first-attempt availability (no retry)".into(),
            expected: "reported".into(),
            observed: format!(
                "{} ({first_attempt_ok} of {requests})",
                percent(ratio(first_attempt_ok, requests))
            ),
            passed: true,
        });
    }
    if let Some(limit) = h.max_bad_minutes {
        let bad = bad_minutes(history, h.bad_minute_below);
        checks.push(HypothesisCheck {
            name: format!("minutes below {} success", percent(h.bad_minute_below)),
            expected: format!("<= {limit}"),
            observed: if bad.is_empty() {
                "0".into()
            } else {
                let list: Vec<String> = bad.iter().map(|m| format!("minute {}", m + 1)).collect();
                format!("{} ({})", bad.len(), list.join(", "))
            },
            passed: bad.len() <= limit as usize,
        });
    }
    checks
}

/// The minutes (from 0) whose operations, all clients together, succeeded
/// less often than `below`.
pub fn bad_minutes(history: &[Operation], below: f64) -> Vec<u32> {
    let mut minutes: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for op in history {
        let entry = minutes.entry((op.intended_s / 60.0) as u32).or_default();
        entry.1 += 1;
        if op.outcome == Outcome::Ok {
            entry.0 += 1;
        }
    }
    minutes
        .into_iter()
        .filter(|(_, (ok, all))| ratio(*ok, *all) < below)
        .map(|(minute, _)| minute)
        .collect()
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// A percentage with enough digits for four nines, never rounded up to
/// 100% while something failed.
fn percent(ratio: f64) -> String {
    let value = (ratio * 100.0 * 1000.0).floor() / 1000.0;
    format!("{value:.3}%")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Connection;

    fn op(t: f64, outcome: Outcome, attempts: u8) -> Operation {
        Operation {
            client_region: "us-east-1".into(),
            kind: "read".into(),
            key: None,
            intended_s: t,
            latency_ms: 10.0,
            outcome,
            served_by: None,
            connection: Connection::Pooled,
            attempts,
            first_error: None,
            transfer: None,
            account: None,
            transfer_id: None,
            balance: None,
        }
    }

    fn drill(min_availability: f64, max_bad_minutes: u32) -> Drill {
        let mut drill =
            Drill::parse(include_str!("../../drills/kill-and-return.yaml")).expect("drill");
        drill.hypothesis.min_availability = Some(min_availability);
        drill.hypothesis.max_bad_minutes = Some(max_bad_minutes);
        drill
    }

    /// Four nines need the requests to vouch for them: 1,000 requests
    /// without a failure bound availability at about 99.7%, 40,000 at
    /// 99.9925%; five failures in a minute of 4,000 make it bad.
    #[test]
    fn availability_is_judged_by_its_lower_bound_and_minutes_are_counted() {
        let few: Vec<Operation> = (0..1000)
            .map(|i| op(i as f64 * 0.06, Outcome::Ok, 1))
            .collect();
        let result = checks(&drill(0.9999, 0), &few);
        assert!(!result[0].passed, "{:?}", result[0]);
        assert!(
            result[0].observed.contains("100.000% observed"),
            "{:?}",
            result[0]
        );

        let mut many: Vec<Operation> = (0..40_000)
            .map(|i| op(i as f64 * 0.015, Outcome::Ok, 1))
            .collect();
        many[5].attempts = 2;
        let result = checks(&drill(0.9999, 0), &many);
        assert!(result[0].passed, "{:?}", result[0]);
        assert_eq!(result[1].observed, "99.997% (39999 of 40000)");
        assert!(result[2].passed);

        // Minute 1 holds 4,000 requests: 5 failures leave it at 99.875%.
        for op in &mut many[10..14] {
            op.outcome = Outcome::Fail;
        }
        many[20].outcome = Outcome::Unknown;
        let result = checks(&drill(0.9999, 0), &many);
        assert!(!result[2].passed, "{:?}", result[2]);
        assert_eq!(result[2].observed, "1 (minute 1)");
        assert_eq!(bad_minutes(&many, 0.999), vec![0]);
    }
}
