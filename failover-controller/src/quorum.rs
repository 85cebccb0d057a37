//! Tallying the vantage points' votes into one verdict per region.
//!
//! The rules (ARCHITECTURE.md, "Tally rules"):
//! - The vantage points are the configured regions: one replica runs in
//!   each. A vote from any other vantage point (a replica with a stale or
//!   foreign configuration, a leftover row) is ignored and reported.
//! - Only votes heard recently count (the caller filters by freshness).
//! - A vantage point that votes every configured region down is discarded,
//!   because it is the one that is cut off.
//! - A region is down when more than half of the *configured* vantage
//!   points vote it down, and up when more than half vote it up. Silent,
//!   stale and discarded vantage points still count in the "half": they can
//!   never help make a majority, so one vantage point alone never decides
//!   anything when two or more are configured, and with three configured two
//!   must agree. Neither majority is "no quorum", which keeps the current
//!   state.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use crate::verdict::Verdict;

/// One fresh vote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Vote {
    pub vantage: String,
    pub region: String,
    pub verdict: Verdict,
    /// Smoothed probe round trip of this vantage to this region.
    pub rtt_ms: Option<f64>,
    /// How old the vote is, by the database clock.
    pub age_ms: f64,
    /// For an up vote, how long (now, by the database clock) the vantage
    /// point's current run of successful probes has lasted; 0 otherwise.
    pub healthy_ms: f64,
}

/// The majority's answer on one region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuorumVerdict {
    Up,
    Down,
    /// No majority of the configured vantage points either way: keep the
    /// current state.
    NoQuorum,
}

/// The tally of one region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionTally {
    pub up: usize,
    pub down: usize,
    pub verdict: QuorumVerdict,
    /// Counted vantage points disagree (some up, some down).
    pub disagreement: bool,
    /// Each configured vantage point's vote, including discarded ones.
    pub votes: BTreeMap<String, Verdict>,
    /// For how long a majority of the configured vantage points has seen
    /// the region healthy without a failed probe (0 without that majority).
    pub healthy_ms: f64,
}

/// Votes the tally did not look at, by why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IgnoredVotes {
    /// Cast by a vantage point that is not a configured region.
    pub unknown_vantage: usize,
    /// Cast on a region that is not configured.
    pub unknown_region: usize,
}

/// The whole tally.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally {
    pub regions: BTreeMap<String, RegionTally>,
    /// How many agreeing vantage points make a verdict: more than half of
    /// the configured ones.
    pub majority: usize,
    /// Vantage points that saw every region down and were not counted.
    pub discarded_vantages: Vec<String>,
    pub counted_vantages: Vec<String>,
    /// Vantage points that voted but are not configured: not counted.
    pub ignored_vantages: Vec<String>,
    pub ignored_votes: IgnoredVotes,
}

impl Tally {
    /// The verdict on a region (no quorum when unknown).
    pub fn verdict(&self, region: &str) -> QuorumVerdict {
        self.regions
            .get(region)
            .map(|t| t.verdict)
            .unwrap_or(QuorumVerdict::NoQuorum)
    }

    /// For how long a majority has seen `region` healthy (zero unless the
    /// verdict is up).
    pub fn healthy_for(&self, region: &str) -> Duration {
        let ms = self
            .regions
            .get(region)
            .map(|t| t.healthy_ms)
            .unwrap_or(0.0);
        Duration::from_secs_f64(ms.max(0.0) / 1000.0)
    }

    /// Regions that the majority sees down.
    pub fn down_regions(&self) -> Vec<String> {
        self.regions
            .iter()
            .filter(|(_, t)| t.verdict == QuorumVerdict::Down)
            .map(|(r, _)| r.clone())
            .collect()
    }
}

/// Tallies fresh votes for the configured regions, which are also the
/// configured vantage points.
pub fn tally(regions: &[String], votes: &[Vote]) -> Tally {
    let configured: BTreeSet<&str> = regions.iter().map(String::as_str).collect();
    let mut ignored_vantages = BTreeSet::new();
    let mut ignored_votes = IgnoredVotes::default();
    let mut by_vantage: BTreeMap<&str, BTreeMap<&str, Verdict>> = BTreeMap::new();
    let mut streaks: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    for vote in votes {
        if !configured.contains(vote.vantage.as_str()) {
            ignored_vantages.insert(vote.vantage.clone());
            ignored_votes.unknown_vantage += 1;
            continue;
        }
        if !configured.contains(vote.region.as_str()) {
            ignored_votes.unknown_region += 1;
            continue;
        }
        by_vantage
            .entry(vote.vantage.as_str())
            .or_default()
            .insert(vote.region.as_str(), vote.verdict);
        streaks.insert(
            (vote.vantage.as_str(), vote.region.as_str()),
            vote.healthy_ms,
        );
    }
    // The cut-off rule needs at least two regions: with one, "every region
    // down" is exactly what a real outage looks like.
    let mut discarded = BTreeSet::new();
    if regions.len() >= 2 {
        for (vantage, seen) in &by_vantage {
            let sees_all = regions.iter().all(|r| seen.contains_key(r.as_str()));
            if sees_all && seen.values().all(|v| *v == Verdict::Down) {
                discarded.insert(*vantage);
            }
        }
    }
    let majority = regions.len() / 2 + 1;
    let mut result = Tally {
        majority,
        discarded_vantages: discarded.iter().map(|v| v.to_string()).collect(),
        counted_vantages: by_vantage
            .keys()
            .filter(|v| !discarded.contains(*v))
            .map(|v| v.to_string())
            .collect(),
        ignored_vantages: ignored_vantages.into_iter().collect(),
        ignored_votes,
        ..Tally::default()
    };
    for region in regions {
        let mut region_tally = RegionTally {
            up: 0,
            down: 0,
            verdict: QuorumVerdict::NoQuorum,
            disagreement: false,
            votes: BTreeMap::new(),
            healthy_ms: 0.0,
        };
        let mut healthy_streaks: Vec<f64> = Vec::new();
        for (vantage, seen) in &by_vantage {
            let Some(verdict) = seen.get(region.as_str()) else {
                continue;
            };
            region_tally.votes.insert(vantage.to_string(), *verdict);
            if discarded.contains(vantage) {
                continue;
            }
            match verdict {
                Verdict::Up => {
                    region_tally.up += 1;
                    healthy_streaks.push(streaks[&(*vantage, region.as_str())]);
                }
                Verdict::Down => region_tally.down += 1,
            }
        }
        // Of the configured vantage points, not of those heard from: a
        // majority of the survivors is not enough when they are few.
        region_tally.verdict = if region_tally.down >= majority {
            QuorumVerdict::Down
        } else if region_tally.up >= majority {
            QuorumVerdict::Up
        } else {
            QuorumVerdict::NoQuorum
        };
        region_tally.disagreement = region_tally.up > 0 && region_tally.down > 0;
        // The majority-th longest run: that many vantage points have seen
        // the region healthy at least this long.
        healthy_streaks.sort_by(|a, b| b.total_cmp(a));
        if region_tally.verdict == QuorumVerdict::Up {
            region_tally.healthy_ms = healthy_streaks.get(majority - 1).copied().unwrap_or(0.0);
        }
        result.regions.insert(region.clone(), region_tally);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn vote(vantage: &str, region: &str, verdict: Verdict) -> Vote {
        Vote {
            vantage: vantage.into(),
            region: region.into(),
            verdict,
            rtt_ms: None,
            age_ms: 0.0,
            healthy_ms: 0.0,
        }
    }

    fn regions() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    #[test]
    fn healthy_for_is_what_a_majority_of_the_configured_vantages_has_seen() {
        use Verdict::*;
        let streak = |vantage: &str, verdict, ms| Vote {
            healthy_ms: ms,
            ..vote(vantage, "b", verdict)
        };
        // Three configured vantage points, a majority of two: the second
        // longest run counts.
        let t = tally(
            &regions(),
            &[
                streak("a", Up, 9000.0),
                streak("b", Up, 1500.0),
                streak("c", Up, 4000.0),
            ],
        );
        assert_eq!(t.healthy_for("b"), Duration::from_millis(4000));
        // Only two up: the shorter run.
        let t = tally(
            &regions(),
            &[
                streak("a", Up, 9000.0),
                streak("b", Up, 1500.0),
                streak("c", Down, 0.0),
            ],
        );
        assert_eq!(t.healthy_for("b"), Duration::from_millis(1500));
        // No up majority: nothing.
        let t = tally(&regions(), &[streak("a", Up, 9000.0)]);
        assert_eq!(t.healthy_for("b"), Duration::ZERO);
    }

    #[test]
    fn majority_decides() {
        use Verdict::*;
        let votes = vec![
            vote("a", "a", Up),
            vote("a", "b", Down),
            vote("a", "c", Up),
            vote("b", "a", Up),
            vote("b", "b", Down),
            vote("b", "c", Up),
            vote("c", "a", Up),
            vote("c", "b", Up),
            vote("c", "c", Up),
        ];
        let t = tally(&regions(), &votes);
        assert_eq!(t.verdict("b"), QuorumVerdict::Down);
        assert_eq!(t.verdict("a"), QuorumVerdict::Up);
        assert!(t.regions["b"].disagreement);
        assert!(t.discarded_vantages.is_empty());
    }

    #[test]
    fn cut_off_vantage_is_discarded() {
        use Verdict::*;
        let mut votes = vec![];
        for r in ["a", "b", "c"] {
            votes.push(vote("a", r, Down));
        }
        votes.push(vote("b", "a", Up));
        votes.push(vote("c", "a", Up));
        votes.push(vote("b", "b", Down));
        let t = tally(&regions(), &votes);
        assert_eq!(t.discarded_vantages, vec!["a".to_string()]);
        assert_eq!(t.verdict("a"), QuorumVerdict::Up);
        // "a" still counts in the majority: "b" alone is not two of three.
        assert_eq!(t.verdict("b"), QuorumVerdict::NoQuorum);
        assert_eq!(t.verdict("c"), QuorumVerdict::NoQuorum);
    }

    #[test]
    fn a_tie_is_not_a_majority() {
        use Verdict::*;
        let votes = vec![vote("a", "b", Down), vote("b", "b", Up)];
        assert_eq!(
            tally(&regions(), &votes).verdict("b"),
            QuorumVerdict::NoQuorum
        );
    }

    #[test]
    fn the_majority_is_of_the_configured_vantage_points() {
        use Verdict::*;
        // Only "a" heard from: it sees "b" down, which the old rule (a
        // majority of those heard from) took for a verdict.
        let votes = vec![vote("a", "a", Up), vote("a", "b", Down)];
        let t = tally(&regions(), &votes);
        assert_eq!(t.majority, 2);
        assert_eq!(t.verdict("b"), QuorumVerdict::NoQuorum);
        assert_eq!(t.verdict("a"), QuorumVerdict::NoQuorum);
    }

    #[test]
    fn unknown_vantages_are_ignored_and_counted() {
        use Verdict::*;
        let votes = vec![
            vote("a", "b", Down),
            vote("intruder", "b", Down),
            vote("other", "b", Down),
            vote("a", "zz", Down),
        ];
        let t = tally(&regions(), &votes);
        assert_eq!(t.verdict("b"), QuorumVerdict::NoQuorum);
        assert_eq!(t.ignored_vantages, vec!["intruder", "other"]);
        assert_eq!(
            t.ignored_votes,
            IgnoredVotes {
                unknown_vantage: 2,
                unknown_region: 1
            }
        );
        assert!(!t.regions["b"].votes.contains_key("intruder"));
    }
}
