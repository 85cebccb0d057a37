//! Leaving fast without waiting for the leader: every replica, leader or not,
//! leaves out of its DNS answers a region that the quorum tally of the round
//! says is down, within the planner's safety rules.
//!
//! Why: the drain flag is written by the lease holder only. When the killed
//! region also hosts the leader, nobody writes the flag until the lease
//! expires and a new leader is elected (lease TTL plus a renewal), while
//! every surviving replica already sees the majority verdict. The tally is
//! computed from the shared votes, so every replica reaches the same answer
//! in the same round, and DNS stays alike across replicas.
//!
//! Returning stays slow: a region left out early comes back only when the
//! leader's hold-down clears its drain flag. Votes alone bring it back only
//! when no leader ever drained it (it recovered before anyone acted) and it
//! has been seen up for a whole base hold-down.
//!
//! Pure logic over `tokio::time::Instant`: [`dns_serving`] is one round's
//! rule, [`EarlyLeave`] remembers which regions it left out between rounds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::quorum::{QuorumVerdict, Tally};
use crate::safety::{self, HealthRanking};

/// The safety rules that bound an early leave (the planner's own numbers).
#[derive(Debug, Clone)]
pub struct EarlyLeaveRules {
    /// Never leave fewer regions serving in DNS.
    pub min_healthy_regions: usize,
    /// More regions down at once than this is the freeze case: leave none.
    pub max_simultaneous_failures: usize,
    /// A region left out early that no leader drained returns after it has
    /// been seen up this long (the base hold-down).
    pub return_after: Duration,
}

/// What one round knows besides the tally.
#[derive(Debug, Clone, Copy)]
pub struct RoundFacts<'a> {
    /// Every configured region, in configuration order.
    pub regions: &'a [String],
    /// Regions whose drain flag is set.
    pub drained: &'a BTreeSet<String>,
    /// Regions held in service by an active `undrain` override.
    pub undrained_by_operator: &'a BTreeSet<String>,
    /// Automation is frozen (manual freeze or the automatic freeze latch).
    pub frozen: bool,
    /// The regions by measured health, worst first: the order in which they
    /// leave when `min_healthy_regions` lets only some go.
    pub ranking: &'a HealthRanking,
}

/// Why a region that the tally sees down is still served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeptBecause {
    Frozen,
    TooManyFailures,
    UndrainOverride,
    MinHealthyRegions,
}

/// The DNS view of one round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsServing {
    /// Regions the DNS answers may send clients to.
    pub serving: BTreeSet<String>,
    /// Regions left out by the votes although their drain flag is clear.
    pub left_early: BTreeSet<String>,
    /// Regions wanted out but kept in by a safety rule.
    pub kept: BTreeMap<String, KeptBecause>,
}

/// One round's rule. `wanted_out` are the regions to leave out by votes
/// (down in the tally, or left out earlier and not yet back); the result
/// serves every region whose drain flag is clear, minus those of
/// `wanted_out` that the safety rules allow to leave.
pub fn dns_serving(
    facts: &RoundFacts<'_>,
    wanted_out: &BTreeSet<String>,
    tally: &Tally,
    rules: &EarlyLeaveRules,
) -> DnsServing {
    let flag_serving: BTreeSet<String> = facts
        .regions
        .iter()
        .filter(|r| !facts.drained.contains(*r))
        .cloned()
        .collect();
    let mut result = DnsServing {
        serving: flag_serving.clone(),
        ..DnsServing::default()
    };
    // Only regions still served by their flag can leave early; worst
    // measured health first, as the planner drains them.
    let candidates: Vec<&String> = facts
        .ranking
        .sort(wanted_out.iter().filter(|r| flag_serving.contains(*r)));
    if candidates.is_empty() {
        return result;
    }
    let down_now = flag_serving
        .iter()
        .filter(|r| tally.verdict(r) == QuorumVerdict::Down)
        .count();
    let everyone_kept = if facts.frozen {
        Some(KeptBecause::Frozen)
    } else if down_now > rules.max_simultaneous_failures {
        Some(KeptBecause::TooManyFailures)
    } else {
        None
    };
    for region in candidates {
        let kept = if let Some(why) = everyone_kept {
            Some(why)
        } else if facts.undrained_by_operator.contains(region) {
            Some(KeptBecause::UndrainOverride)
        } else if !min_healthy_allows(&result.serving, region, tally, rules) {
            Some(KeptBecause::MinHealthyRegions)
        } else {
            None
        };
        match kept {
            Some(why) => {
                result.kept.insert(region.clone(), why);
            }
            None => {
                result.serving.remove(region);
                result.left_early.insert(region.clone());
            }
        }
    }
    result
}

/// Whether `region` may leave DNS while `min_healthy_regions` others that
/// serve and are seen up remain (a region without quorum does not count).
fn min_healthy_allows(
    serving: &BTreeSet<String>,
    region: &str,
    tally: &Tally,
    rules: &EarlyLeaveRules,
) -> bool {
    let remaining: Vec<&str> = serving
        .iter()
        .filter(|r| r.as_str() != region && safety::counts_as_healthy(tally, r))
        .map(String::as_str)
        .collect();
    safety::min_healthy_check(&remaining, rules.min_healthy_regions).passed
}

/// Remembers the regions this replica left out early, so that they stay out
/// until the drain flag takes over (or, when no leader ever drained them,
/// until they have been up for [`EarlyLeaveRules::return_after`]).
#[derive(Debug, Clone)]
pub struct EarlyLeave {
    rules: EarlyLeaveRules,
    /// Left out early, with since when the tally has not said down (None
    /// while it still says down).
    out: BTreeMap<String, Option<Instant>>,
}

impl EarlyLeave {
    pub fn new(rules: EarlyLeaveRules) -> Self {
        Self {
            rules,
            out: BTreeMap::new(),
        }
    }

    /// The regions currently left out early.
    pub fn left_out(&self) -> BTreeSet<String> {
        self.out.keys().cloned().collect()
    }

    /// One round: updates the memory and returns the DNS view.
    pub fn round(&mut self, facts: &RoundFacts<'_>, tally: &Tally, now: Instant) -> DnsServing {
        let return_after = self.rules.return_after;
        self.out.retain(|region, up_since| {
            if facts.drained.contains(region) {
                // The leader drained it: the flag (and its hold-down) rules now.
                return false;
            }
            if tally.verdict(region) == QuorumVerdict::Down {
                *up_since = None;
                return true;
            }
            let since = *up_since.get_or_insert(now);
            now.saturating_duration_since(since) < return_after
        });
        let wanted_out: BTreeSet<String> = facts
            .regions
            .iter()
            .filter(|r| tally.verdict(r) == QuorumVerdict::Down || self.out.contains_key(*r))
            .cloned()
            .collect();
        let view = dns_serving(facts, &wanted_out, tally, &self.rules);
        // A region a safety rule keeps in is forgotten: it leaves again only
        // when the tally says so again.
        self.out
            .retain(|region, _| view.left_early.contains(region));
        for region in &view.left_early {
            self.out.entry(region.clone()).or_insert(None);
        }
        view
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::{tally, Vote};
    use crate::verdict::Verdict;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("r{i}")).collect()
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// Every vantage point sees `down` down and the rest up.
    fn tally_with_down(regions: &[String], down: &[&str]) -> Tally {
        let mut votes = vec![];
        for vantage in regions {
            for region in regions {
                let verdict = if down.contains(&region.as_str()) {
                    Verdict::Down
                } else {
                    Verdict::Up
                };
                votes.push(Vote {
                    vantage: vantage.clone(),
                    region: region.clone(),
                    verdict,
                    rtt_ms: None,
                    age_ms: 0.0,
                    healthy_ms: 0.0,
                });
            }
        }
        tally(regions, &votes)
    }

    fn rules(min_healthy: usize, max_failures: usize) -> EarlyLeaveRules {
        EarlyLeaveRules {
            min_healthy_regions: min_healthy,
            max_simultaneous_failures: max_failures,
            return_after: Duration::from_secs(10),
        }
    }

    struct Facts {
        regions: Vec<String>,
        drained: BTreeSet<String>,
        undrained: BTreeSet<String>,
        frozen: bool,
        ranking: HealthRanking,
    }

    impl Facts {
        fn new(n: usize) -> Self {
            let regions = names(n);
            Self {
                ranking: HealthRanking::configuration_order(&regions),
                regions,
                drained: BTreeSet::new(),
                undrained: BTreeSet::new(),
                frozen: false,
            }
        }

        fn get(&self) -> RoundFacts<'_> {
            RoundFacts {
                regions: &self.regions,
                drained: &self.drained,
                undrained_by_operator: &self.undrained,
                frozen: self.frozen,
                ranking: &self.ranking,
            }
        }
    }

    #[test]
    fn a_region_the_majority_sees_down_leaves_before_its_flag() {
        let facts = Facts::new(3);
        let t = tally_with_down(&facts.regions, &["r2"]);
        let view = dns_serving(&facts.get(), &set(&["r2"]), &t, &rules(1, 1));
        assert_eq!(view.serving, set(&["r1", "r3"]));
        assert_eq!(view.left_early, set(&["r2"]));
    }

    #[test]
    fn too_many_failures_at_once_leave_none() {
        let facts = Facts::new(5);
        let t = tally_with_down(&facts.regions, &["r1", "r2"]);
        let view = dns_serving(&facts.get(), &set(&["r1", "r2"]), &t, &rules(1, 1));
        assert_eq!(view.serving.len(), 5);
        assert_eq!(view.kept["r1"], KeptBecause::TooManyFailures);
    }

    #[test]
    fn frozen_leaves_none() {
        let mut facts = Facts::new(3);
        facts.frozen = true;
        let t = tally_with_down(&facts.regions, &["r2"]);
        let view = dns_serving(&facts.get(), &set(&["r2"]), &t, &rules(1, 1));
        assert_eq!(view.serving.len(), 3);
        assert_eq!(view.kept["r2"], KeptBecause::Frozen);
    }

    #[test]
    fn an_undrain_override_holds_the_region_in() {
        let mut facts = Facts::new(3);
        facts.undrained = set(&["r2"]);
        let t = tally_with_down(&facts.regions, &["r2"]);
        let view = dns_serving(&facts.get(), &set(&["r2"]), &t, &rules(1, 1));
        assert!(view.serving.contains("r2"));
        assert_eq!(view.kept["r2"], KeptBecause::UndrainOverride);
    }

    #[test]
    fn never_below_min_healthy() {
        // r1 is drained by its flag; r2 is down: min 2 keeps r2 in.
        let mut facts = Facts::new(3);
        facts.drained = set(&["r1"]);
        let t = tally_with_down(&facts.regions, &["r2"]);
        let view = dns_serving(&facts.get(), &set(&["r2"]), &t, &rules(2, 2));
        assert_eq!(view.serving, set(&["r2", "r3"]));
        assert_eq!(view.kept["r2"], KeptBecause::MinHealthyRegions);
        // Two down, one up, minimum two: a region seen down is not healthy,
        // so neither may leave.
        let facts = Facts::new(3);
        let t = tally_with_down(&facts.regions, &["r2", "r3"]);
        let view = dns_serving(&facts.get(), &set(&["r2", "r3"]), &t, &rules(2, 2));
        assert_eq!(view.serving, set(&["r1", "r2", "r3"]));
        // Minimum one: both leave, r1 serves.
        let view = dns_serving(&facts.get(), &set(&["r2", "r3"]), &t, &rules(1, 2));
        assert_eq!(view.serving, set(&["r1"]));
    }

    /// Votes as given: (vantage, region, verdict, rtt).
    fn votes(list: &[(&str, &str, Verdict, f64)]) -> Vec<Vote> {
        list.iter()
            .map(|(vantage, region, verdict, rtt)| Vote {
                vantage: vantage.to_string(),
                region: region.to_string(),
                verdict: *verdict,
                rtt_ms: Some(*rtt),
                age_ms: 0.0,
                healthy_ms: 0.0,
            })
            .collect()
    }

    #[test]
    fn the_worst_regions_leave_first_not_the_first_by_name() {
        use Verdict::*;
        // r1 and r2 were left out earlier and are seen up again (still held
        // out); r3 is down. Room for all but one: the healthiest, r1, must be
        // the one that serves, whatever the names.
        let mut facts = Facts::new(3);
        let round = votes(&[
            ("r1", "r1", Up, 10.0),
            ("r2", "r1", Up, 10.0),
            ("r3", "r1", Up, 10.0),
            ("r1", "r2", Up, 40.0),
            ("r2", "r2", Up, 40.0),
            ("r3", "r2", Down, 40.0),
            ("r1", "r3", Down, 5.0),
            ("r2", "r3", Down, 5.0),
            ("r3", "r3", Up, 5.0),
        ]);
        let t = tally(&facts.regions, &round);
        facts.ranking = HealthRanking::measure(&facts.regions, &t, &round);
        let view = dns_serving(&facts.get(), &set(&["r1", "r2", "r3"]), &t, &rules(1, 1));
        assert_eq!(view.serving, set(&["r1"]), "{view:?}");
        assert_eq!(view.kept["r1"], KeptBecause::MinHealthyRegions);
    }

    /// A tally as given, whatever votes would make it: (region, up, down,
    /// verdict).
    fn tally_as(rows: &[(&str, usize, usize, QuorumVerdict)]) -> Tally {
        let regions = rows
            .iter()
            .map(|(region, up, down, verdict)| {
                let region_tally = crate::quorum::RegionTally {
                    up: *up,
                    down: *down,
                    verdict: *verdict,
                    disagreement: *up > 0 && *down > 0,
                    votes: BTreeMap::new(),
                    healthy_ms: 0.0,
                };
                (region.to_string(), region_tally)
            })
            .collect();
        Tally {
            regions,
            ..Tally::default()
        }
    }

    #[test]
    fn a_region_without_quorum_lets_no_other_leave() {
        use QuorumVerdict::*;
        // r2 is seen down; r1 and r3 have no quorum (too few vantage points
        // heard): they are unknown, not up, so r2 stays.
        let facts = Facts::new(3);
        let t = tally_as(&[
            ("r1", 1, 0, NoQuorum),
            ("r2", 0, 2, Down),
            ("r3", 1, 0, NoQuorum),
        ]);
        let view = dns_serving(&facts.get(), &set(&["r2"]), &t, &rules(1, 1));
        assert_eq!(view.serving, set(&["r1", "r2", "r3"]));
        assert_eq!(view.kept["r2"], KeptBecause::MinHealthyRegions);
    }

    #[test]
    fn a_drained_flag_always_wins() {
        let mut facts = Facts::new(3);
        facts.drained = set(&["r3"]);
        let t = tally_with_down(&facts.regions, &[]);
        let view = dns_serving(&facts.get(), &BTreeSet::new(), &t, &rules(1, 1));
        assert_eq!(view.serving, set(&["r1", "r2"]));
        assert!(view.left_early.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn return_waits_for_the_flag_not_the_votes() {
        let mut facts = Facts::new(3);
        let mut early = EarlyLeave::new(rules(1, 1));
        let start = Instant::now();
        let down = tally_with_down(&facts.regions, &["r2"]);
        let up = tally_with_down(&facts.regions, &[]);
        assert!(!early
            .round(&facts.get(), &down, start)
            .serving
            .contains("r2"));
        // Seen up again, flag still clear: stays out for the hold-down.
        let t1 = start + Duration::from_secs(1);
        assert!(!early.round(&facts.get(), &up, t1).serving.contains("r2"));
        // The leader drains it meanwhile: the flag keeps it out.
        facts.drained = set(&["r2"]);
        let t2 = t1 + Duration::from_secs(30);
        assert!(!early.round(&facts.get(), &up, t2).serving.contains("r2"));
        // The leader's hold-down clears the flag: back in.
        facts.drained.clear();
        let t3 = t2 + Duration::from_millis(1);
        assert!(early.round(&facts.get(), &up, t3).serving.contains("r2"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_region_no_leader_drained_returns_after_the_hold_down() {
        let facts = Facts::new(3);
        let mut early = EarlyLeave::new(rules(1, 1));
        let start = Instant::now();
        let down = tally_with_down(&facts.regions, &["r2"]);
        let up = tally_with_down(&facts.regions, &[]);
        early.round(&facts.get(), &down, start);
        let up_at = start + Duration::from_secs(1);
        assert!(!early.round(&facts.get(), &up, up_at).serving.contains("r2"));
        // Down again restarts the clock.
        early.round(&facts.get(), &down, up_at + Duration::from_secs(5));
        let again = up_at + Duration::from_secs(6);
        assert!(!early.round(&facts.get(), &up, again).serving.contains("r2"));
        let later = again + Duration::from_millis(9_999);
        assert!(!early.round(&facts.get(), &up, later).serving.contains("r2"));
        let after = again + Duration::from_secs(10);
        assert!(early.round(&facts.get(), &up, after).serving.contains("r2"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_freeze_puts_an_early_left_region_back() {
        let mut facts = Facts::new(3);
        let mut early = EarlyLeave::new(rules(1, 1));
        let now = Instant::now();
        let down = tally_with_down(&facts.regions, &["r2"]);
        assert!(!early.round(&facts.get(), &down, now).serving.contains("r2"));
        facts.frozen = true;
        assert!(early.round(&facts.get(), &down, now).serving.contains("r2"));
        // Unfrozen and still down: out again.
        facts.frozen = false;
        assert!(!early.round(&facts.get(), &down, now).serving.contains("r2"));
    }
}
