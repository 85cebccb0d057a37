//! Recovery objectives, as AWS Resilience Hub states them: the drill
//! file's `objectives` section (`rto_s`, `rpo_writes`), what the drill
//! measures against it, and the checks that put it into the verdict.
//!
//! What is measured, with the clock starting at fault injection:
//! - **RTO**, per fault window: from the fault's start (the moment it was
//!   injected) until clients are served again after the retry, that is the
//!   first second boundary from which every client region's after-retry
//!   success ratio stays at or above `hypothesis.bad_second_below` (the
//!   timeline's per-second buckets, by intended start) until the next fault
//!   begins or the load ends. A fault that hurt no second has an RTO of 0.
//!   The window runs past the fault's own end on purpose: a fault whose
//!   clients still fail after it was rolled back (a database restarting)
//!   has not recovered when it ends. The drill's RTO is its worst fault's;
//!   a fault after which that moment never came is "not recovered", which
//!   fails any RTO objective.
//! - **Time to failback**, beside it: the existing failback measure, each
//!   fault's end to its region back in the clients' DNS answers
//!   ([`crate::failback`]); the drill's is [`Phases::failback_s`].
//! - **RPO**: acknowledged writes missing from the ledger after the drill
//!   (the verifier's [`Totals::writes_lost`]).
//!
//! A drill without objectives still gets the measurements, shown with "no
//! objective"; an objective it states is a check of the hypothesis, so a
//! missed one fails the drill.

use serde::{Deserialize, Serialize};

use crate::model::{
    FaultRecovery, FaultWindow, HypothesisCheck, Objectives, Phases, RpoMeasure, RtoMeasure,
    SecondBucket, Totals,
};
use crate::spec::Drill;

/// The drill file's `objectives:` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecoveryObjectives {
    /// Recovery time objective: seconds from fault injection to clients
    /// served again after the retry, for every fault of the drill.
    #[serde(default)]
    pub rto_s: Option<f64>,
    /// Recovery point objective: acknowledged writes that may be lost
    /// (normally 0). Signed here so that a negative count gets a message
    /// of its own rather than the parser's.
    #[serde(default)]
    pub rpo_writes: Option<i64>,
}

/// The drill file's objectives, checked: each error names the field.
pub fn validate(drill: &Drill) -> Result<(), String> {
    let Some(objectives) = &drill.objectives else {
        return Ok(());
    };
    if objectives.rto_s.is_none() && objectives.rpo_writes.is_none() {
        return Err(
            "field `objectives`: states no objective (give rto_s, rpo_writes or both)".into(),
        );
    }
    if let Some(rto) = objectives.rto_s {
        if !rto.is_finite() {
            return Err(format!(
                "field `objectives.rto_s`: must be a finite number of seconds, got {rto}"
            ));
        }
        if rto < 0.0 {
            return Err(format!(
                "field `objectives.rto_s`: must be 0 or more seconds, got {rto}"
            ));
        }
        if drill.method.is_empty() {
            return Err(
                "field `objectives.rto_s`: the drill injects no fault to recover from".into(),
            );
        }
    }
    if let Some(writes) = objectives.rpo_writes {
        if writes < 0 {
            return Err(format!(
                "field `objectives.rpo_writes`: must be 0 or more acknowledged writes, got {writes}"
            ));
        }
    }
    Ok(())
}

/// Everything the measurement reads, all of it in the report.
pub struct Inputs<'a> {
    pub objectives: Option<&'a RecoveryObjectives>,
    /// The fault windows, with their failback already measured.
    pub faults: &'a [FaultWindow],
    pub timeline: &'a [SecondBucket],
    /// `hypothesis.bad_second_below`.
    pub served_at_or_above: f64,
    /// The end of the load (shorter than the drill's when it was aborted).
    pub load_end_s: f64,
    pub phases: &'a Phases,
    pub totals: &'a Totals,
}

/// Measures RTO, failback and RPO and judges them against the objectives.
pub fn measure(inputs: &Inputs) -> Objectives {
    let faults: Vec<FaultRecovery> = (0..inputs.faults.len())
        .map(|index| fault_recovery(inputs, index))
        .collect();
    // The worst fault: one that never recovered, else the slowest; the
    // first of equals.
    let key = |f: &FaultRecovery| f.rto_s.unwrap_or(f64::INFINITY);
    let worst_fault = (0..faults.len()).fold(None, |worst: Option<usize>, index| match worst {
        Some(w) if key(&faults[w]) >= key(&faults[index]) => Some(w),
        _ => Some(index),
    });
    let recovered = !faults.is_empty() && faults.iter().all(|f| f.rto_s.is_some());
    let measured_s = if recovered {
        worst_fault.and_then(|index| faults[index].rto_s)
    } else {
        None
    };
    let rto_objective = inputs.objectives.and_then(|o| o.rto_s);
    let rpo_objective = inputs
        .objectives
        .and_then(|o| o.rpo_writes)
        .map(|writes| writes.max(0) as u64);
    let lost = inputs.totals.writes_lost;
    Objectives {
        served_at_or_above: inputs.served_at_or_above,
        rto: RtoMeasure {
            objective_s: rto_objective,
            measured_s,
            recovered,
            worst_fault,
            failback_s: inputs.phases.failback_s,
            passed: rto_objective
                .map(|objective| measured_s.is_some_and(|measured| measured <= objective)),
        },
        rpo: RpoMeasure {
            objective_writes: rpo_objective,
            measured_writes: lost,
            acknowledged_writes: inputs.totals.writes_acknowledged,
            passed: rpo_objective.map(|objective| lost <= objective),
        },
        faults,
    }
}

/// Faults injected less than this apart share one recovery window (the
/// timeline's resolution).
const TOGETHER_WITHIN_S: f64 = 1.0;

/// The recovery of `faults[index]`: the end of the last second at or after
/// its start, before the next fault began or the load ended, in which some
/// client region's after-retry success ratio was below the threshold.
pub fn fault_recovery(inputs: &Inputs, index: usize) -> FaultRecovery {
    let fault = &inputs.faults[index];
    let start = fault.start_s;
    // Faults injected together share one window; a later one closes it.
    // "Together" is within one timeline second: the faults of one step are
    // injected one after the other, microseconds apart, and the buckets
    // cannot tell such faults apart anyway.
    let until_s = inputs
        .faults
        .iter()
        .map(|other| other.start_s)
        .filter(|&other| other >= start + TOGETHER_WITHIN_S)
        .fold(inputs.load_end_s, f64::min);
    let threshold = inputs.served_at_or_above;
    let served_from = inputs
        .timeline
        .iter()
        .filter(|b| b.requests > 0)
        .filter(|b| f64::from(b.second) + 1.0 > start && f64::from(b.second) < until_s)
        .filter(|b| (b.ok as f64) / (b.requests as f64) < threshold)
        .map(|b| f64::from(b.second) + 1.0)
        .fold(start, f64::max);
    // Still failing when the window closed: never served again in it.
    let served_again_at_s = (served_from == start || served_from < until_s).then_some(served_from);
    let rto_s = served_again_at_s.map(|at| ((at - start) * 1000.0).round() / 1000.0);
    FaultRecovery {
        kind: fault.kind.clone(),
        target: fault.target.clone(),
        start_s: start,
        until_s,
        served_again_at_s,
        rto_s,
        failback_s: fault.failback.and_then(|f| f.dns_back_after_s),
    }
}

/// One check per objective the drill states: a missed objective fails the
/// drill. None for a drill without objectives.
pub fn checks(objectives: &Objectives) -> Vec<HypothesisCheck> {
    let mut checks = Vec::new();
    let rto = &objectives.rto;
    if let (Some(objective), Some(passed)) = (rto.objective_s, rto.passed) {
        checks.push(HypothesisCheck {
            name: "RTO: fault injection to clients served again after the retry".into(),
            expected: format!("<= {objective} s"),
            observed: rto_observed(objectives),
            passed,
        });
    }
    let rpo = &objectives.rpo;
    if let (Some(objective), Some(passed)) = (rpo.objective_writes, rpo.passed) {
        checks.push(HypothesisCheck {
            name: "RPO: acknowledged writes lost".into(),
            expected: format!("<= {objective}"),
            observed: format!(
                "{} of {} acknowledged",
                rpo.measured_writes, rpo.acknowledged_writes
            ),
            passed,
        });
    }
    checks
}

/// The measured RTO in words: the figure and the fault it comes from, or
/// the fault that never recovered.
pub fn rto_observed(objectives: &Objectives) -> String {
    let faults = &objectives.faults;
    let Some(worst) = objectives.rto.worst_fault.and_then(|i| faults.get(i)) else {
        return "no fault was injected".into();
    };
    let of = match faults.len() {
        1 => String::new(),
        n => format!("worst of {n} faults: "),
    };
    let fault = format!(
        "{of}{} {} at {:.1} s",
        worst.kind, worst.target, worst.start_s
    );
    match worst.rto_s {
        Some(rto) => format!("{rto:.2} s ({fault})"),
        None => format!(
            "not recovered ({fault}: below {:.1}% until {:.1} s)",
            objectives.served_at_or_above * 100.0,
            worst.until_s
        ),
    }
}

#[cfg(test)]
mod tests;
