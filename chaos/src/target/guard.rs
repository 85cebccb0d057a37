//! The blast-radius guard: before a drill on a target applies anything,
//! every fault must stay inside the target's `blast_radius.may_touch`, and
//! at every instant of the schedule at least `min_serving_regions` regions
//! must be left unfaulted. A drill that breaks either rule does not start.
//!
//! This is arithmetic on the drill file and the target file only: no
//! network, so `chaos drill --plan` and `chaos check` give the same
//! verdict as the drill itself, and the unit tests cover it whole.
//!
//! Choices (docs/drills.md, "Drilling a deployment"):
//! - A deployment-wide fault (`db-crash`, `route53-throttle`) touches every
//!   region, and while it lasts no region counts as serving.
//! - A `leader` fault (and `leader-kill`) is not resolved to a region at
//!   check time: the lease can move before the fault starts (another fault
//!   of the same drill moves it on purpose), so it may touch any region and
//!   is refused unless every region is in `may_touch`; while it lasts it
//!   counts as one more faulted region than the named ones (the worst case).
//! - Any fault on a region (latency, a prober partition, ...) counts that
//!   region as not serving while it lasts, and a fault without
//!   `duration_s` lasts to the end of the load.
//! - A fault that ends at the instant another starts counts as overlapping
//!   it: a region needs time to serve again after its fault is undone.

use std::collections::BTreeSet;
use std::fmt;

use super::BlastRadius;
use crate::spec::{Drill, Fault, FaultKind, LEADER};

/// The exit code of `chaos drill --target` (and `--plan`, `chaos check`)
/// when the blast-radius guard refuses the drill.
pub const BLAST_RADIUS_EXIT_CODE: i32 = 6;

/// Which regions a fault hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    Region(String),
    /// The region of the lease holder when the fault starts.
    Leader,
    /// The whole deployment (no region named).
    Everywhere,
}

impl Reach {
    pub fn of(fault: &Fault) -> Self {
        if fault.fault == FaultKind::LeaderKill || fault.target == LEADER {
            Reach::Leader
        } else if fault.fault.deployment_wide() || fault.target.is_empty() {
            // A hook (command, http) that names no region may touch any.
            Reach::Everywhere
        } else {
            Reach::Region(fault.target.clone())
        }
    }
}

impl fmt::Display for Reach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reach::Region(region) => f.write_str(region),
            Reach::Leader => f.write_str("the leader's region"),
            Reach::Everywhere => f.write_str("every region"),
        }
    }
}

/// One broken rule, naming the fault (`method[i]` and its kind), the
/// region and the rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub fault_index: usize,
    pub kind: FaultKind,
    pub reach: Reach,
    pub rule: Rule,
    /// What breaks the rule, in words.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    MayTouch,
    MinServingRegions,
}

impl Rule {
    pub fn field(self) -> &'static str {
        match self {
            Rule::MayTouch => "blast_radius.may_touch",
            Rule::MinServingRegions => "blast_radius.min_serving_regions",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "method[{}] ({} on {}) breaks {}: {}",
            self.fault_index,
            self.kind.as_str(),
            self.reach,
            self.rule.field(),
            self.detail
        )
    }
}

/// The guard's answer: the violations (none: allowed) and the fewest
/// regions left serving at any instant, with when.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub violations: Vec<Violation>,
    /// (regions serving at worst, seconds after load start); `None` for a
    /// drill without faults.
    pub fewest_serving: Option<(usize, f64)>,
    pub regions: usize,
    pub min_serving_regions: usize,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        self.violations.is_empty()
    }

    /// One line for people, then one per violation.
    pub fn render(&self) -> String {
        let worst = match self.fewest_serving {
            Some((serving, at)) => {
                format!(
                    "fewest regions serving: {serving} of {} at t={at:.1} s",
                    self.regions
                )
            }
            None => "no fault".to_owned(),
        };
        if self.allowed() {
            return format!(
                "blast radius: allowed ({worst}; at least {} must serve)\n",
                self.min_serving_regions
            );
        }
        let mut text = format!(
            "blast radius: REFUSED ({worst}; at least {} must serve)\n",
            self.min_serving_regions
        );
        for violation in &self.violations {
            text.push_str(&format!("  {violation}\n"));
        }
        text
    }
}

/// Checks `drill`'s method against the blast radius of a target whose
/// regions are `regions`.
pub fn check(drill: &Drill, regions: &[String], blast: &BlastRadius) -> Verdict {
    let mut violations = Vec::new();
    let may_touch: BTreeSet<&str> = blast.may_touch.iter().map(String::as_str).collect();
    let untouchable: Vec<&str> = regions
        .iter()
        .map(String::as_str)
        .filter(|r| !may_touch.contains(r))
        .collect();
    for (index, fault) in drill.method.iter().enumerate() {
        let reach = Reach::of(fault);
        let detail = match &reach {
            Reach::Region(region) if !may_touch.contains(region.as_str()) => {
                format!(
                    "{region} is not in may_touch [{}]",
                    blast.may_touch.join(", ")
                )
            }
            Reach::Region(_) => continue,
            _ if untouchable.is_empty() => continue,
            Reach::Leader => format!(
                "the lease holder may be in any region, and [{}] may not be touched",
                untouchable.join(", ")
            ),
            Reach::Everywhere => format!(
                "it touches every region, and [{}] may not be touched",
                untouchable.join(", ")
            ),
        };
        violations.push(Violation {
            fault_index: index,
            kind: fault.fault,
            reach,
            rule: Rule::MayTouch,
            detail,
        });
    }
    let end = f64::from(drill.load.duration_s);
    let mut fewest_serving: Option<(usize, f64)> = None;
    // Serving only falls when a fault starts, so the starts are the
    // instants to check.
    for (index, fault) in drill.method.iter().enumerate() {
        let at = fault.start_s;
        let active: Vec<(usize, &Fault)> = drill
            .method
            .iter()
            .enumerate()
            .filter(|(_, other)| other.start_s <= at && at <= end_of(other, end))
            .collect();
        let serving = serving_regions(regions, active.iter().map(|(_, f)| *f));
        if fewest_serving.is_none_or(|(fewest, _)| serving < fewest) {
            fewest_serving = Some((serving, at));
        }
        if serving >= blast.min_serving_regions {
            continue;
        }
        let others: Vec<String> = active
            .iter()
            .filter(|(other, _)| *other != index)
            .map(|(other, f)| format!("method[{other}] {} on {}", f.fault.as_str(), Reach::of(f)))
            .collect();
        let with = if others.is_empty() {
            String::new()
        } else {
            format!(" with {} still applied", others.join(", "))
        };
        violations.push(Violation {
            fault_index: index,
            kind: fault.fault,
            reach: Reach::of(fault),
            rule: Rule::MinServingRegions,
            detail: format!(
                "at t={at:.1} s{with}, {serving} of {} regions would serve, fewer than {}",
                regions.len(),
                blast.min_serving_regions
            ),
        });
    }
    Verdict {
        violations,
        fewest_serving,
        regions: regions.len(),
        min_serving_regions: blast.min_serving_regions,
    }
}

/// When a fault ends: its start plus duration, or the end of the load.
pub fn end_of(fault: &Fault, load_end_s: f64) -> f64 {
    fault
        .duration_s
        .map_or(load_end_s, |duration| fault.start_s + duration)
}

/// Regions not hit by any of `active`, a leader fault counting as one
/// region more than the named ones.
fn serving_regions<'a>(regions: &[String], active: impl Iterator<Item = &'a Fault>) -> usize {
    let mut named: BTreeSet<&str> = BTreeSet::new();
    let mut leaders = 0;
    for fault in active {
        match Reach::of(fault) {
            Reach::Everywhere => return 0,
            Reach::Leader => leaders += 1,
            Reach::Region(_) => {
                named.insert(fault.target.as_str());
            }
        }
    }
    let named = regions
        .iter()
        .filter(|r| named.contains(r.as_str()))
        .count();
    regions.len().saturating_sub(named + leaders)
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
