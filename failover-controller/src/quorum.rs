//! Tallying the vantage points' votes into one verdict per region.
//!
//! The rules: only vantage points heard from recently count (the caller
//! filters by freshness); a vantage point that sees every region down is
//! discarded, because it is the one that is cut off; a region is down when a
//! strict majority of the remaining vantage points that voted on it say so.

use std::collections::{BTreeMap, BTreeSet};

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
}

/// The majority's answer on one region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuorumVerdict {
    Up,
    Down,
    /// No counted vantage point voted on the region: keep the current state.
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
    /// Each vantage point's vote, including discarded ones.
    pub votes: BTreeMap<String, Verdict>,
}

/// The whole tally.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally {
    pub regions: BTreeMap<String, RegionTally>,
    /// Vantage points that saw every region down and were not counted.
    pub discarded_vantages: Vec<String>,
    pub counted_vantages: Vec<String>,
}

impl Tally {
    /// The verdict on a region (no quorum when unknown).
    pub fn verdict(&self, region: &str) -> QuorumVerdict {
        self.regions
            .get(region)
            .map(|t| t.verdict)
            .unwrap_or(QuorumVerdict::NoQuorum)
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

/// Tallies fresh votes for the configured regions.
pub fn tally(regions: &[String], votes: &[Vote]) -> Tally {
    let mut by_vantage: BTreeMap<&str, BTreeMap<&str, Verdict>> = BTreeMap::new();
    for vote in votes {
        if regions.contains(&vote.region) {
            by_vantage
                .entry(vote.vantage.as_str())
                .or_default()
                .insert(vote.region.as_str(), vote.verdict);
        }
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
    let mut result = Tally {
        discarded_vantages: discarded.iter().map(|v| v.to_string()).collect(),
        counted_vantages: by_vantage
            .keys()
            .filter(|v| !discarded.contains(*v))
            .map(|v| v.to_string())
            .collect(),
        ..Tally::default()
    };
    for region in regions {
        let mut region_tally = RegionTally {
            up: 0,
            down: 0,
            verdict: QuorumVerdict::NoQuorum,
            disagreement: false,
            votes: BTreeMap::new(),
        };
        for (vantage, seen) in &by_vantage {
            let Some(verdict) = seen.get(region.as_str()) else {
                continue;
            };
            region_tally.votes.insert(vantage.to_string(), *verdict);
            if discarded.contains(vantage) {
                continue;
            }
            match verdict {
                Verdict::Up => region_tally.up += 1,
                Verdict::Down => region_tally.down += 1,
            }
        }
        let counted = region_tally.up + region_tally.down;
        region_tally.verdict = if counted == 0 {
            QuorumVerdict::NoQuorum
        } else if region_tally.down * 2 > counted {
            QuorumVerdict::Down
        } else {
            QuorumVerdict::Up
        };
        region_tally.disagreement = region_tally.up > 0 && region_tally.down > 0;
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
        }
    }

    fn regions() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
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
        let t = tally(&regions(), &votes);
        assert_eq!(t.discarded_vantages, vec!["a".to_string()]);
        assert_eq!(t.verdict("a"), QuorumVerdict::Up);
        assert_eq!(t.verdict("b"), QuorumVerdict::NoQuorum);
    }

    #[test]
    fn a_tie_is_not_a_majority() {
        use Verdict::*;
        let votes = vec![vote("a", "b", Down), vote("b", "b", Up)];
        assert_eq!(tally(&regions(), &votes).verdict("b"), QuorumVerdict::Up);
    }
}
