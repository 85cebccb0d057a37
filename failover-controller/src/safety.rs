//! The `min_healthy_regions` rule and the order in which regions leave when
//! not all of those that want to may: one definition for the planner (drain
//! flags), the early leave (every replica's DNS view) and the admin API
//! (which refuses a manual drain the planner would block).
//!
//! A region counts as healthy when it serves and the majority of counted
//! vantage points sees it up. A region without quorum is unknown, not up:
//! it never counts as the healthy region that lets another leave. Regions
//! leave worst first by measured health, not by name: the most vantage
//! points seeing it down, then the largest share of down votes, then the
//! slowest mean probe round trip; configuration order only breaks ties.
//! Every replica computes this from the same shared votes, so every replica
//! picks the same regions.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use crate::planner::RuleCheck;
use crate::quorum::{QuorumVerdict, Tally, Vote};

/// Whether `region` can count toward `min_healthy_regions` (when it
/// serves): the majority sees it up.
pub fn counts_as_healthy(tally: &Tally, region: &str) -> bool {
    tally.verdict(region) == QuorumVerdict::Up
}

/// The rule check for taking a region out while `remaining` (the regions
/// that would still serve and count as healthy) stay.
pub fn min_healthy_check(remaining: &[&str], min_healthy_regions: usize) -> RuleCheck {
    RuleCheck {
        rule: "min_healthy_regions".into(),
        passed: remaining.len() >= min_healthy_regions,
        detail: format!(
            "{} would remain serving and seen up ({}), minimum {min_healthy_regions}",
            remaining.len(),
            remaining.join(", ")
        ),
    }
}

/// Whether an operator's drain of `region` can be accepted now. It cannot
/// when fewer than `min_healthy_regions` regions would remain healthy: not
/// drained, not already asked to drain by another override, and seen up.
/// A region already drained can always be held drained.
pub fn admit_manual_drain(
    region: &str,
    regions: &[String],
    drained: &BTreeSet<String>,
    seen_up: &BTreeSet<String>,
    drains_requested: &BTreeSet<String>,
    min_healthy_regions: usize,
) -> Result<(), RuleCheck> {
    if drained.contains(region) {
        return Ok(());
    }
    let remaining: Vec<&str> = regions
        .iter()
        .filter(|r| r.as_str() != region)
        .filter(|r| !drained.contains(*r) && !drains_requested.contains(*r) && seen_up.contains(*r))
        .map(String::as_str)
        .collect();
    let check = min_healthy_check(&remaining, min_healthy_regions);
    if check.passed {
        Ok(())
    } else {
        Err(check)
    }
}

/// The configured regions, worst measured health first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthRanking {
    worst_first: Vec<String>,
}

impl HealthRanking {
    /// Ranks `regions` by the round's tally and the round trips of the
    /// counted vantage points' fresh votes.
    pub fn measure(regions: &[String], tally: &Tally, votes: &[Vote]) -> Self {
        let measured: Vec<(usize, f64, Option<f64>, usize, &String)> = regions
            .iter()
            .enumerate()
            .map(|(index, region)| {
                let (up, down) = tally
                    .regions
                    .get(region)
                    .map(|t| (t.up, t.down))
                    .unwrap_or((0, 0));
                let down_share = if up + down == 0 {
                    0.0
                } else {
                    down as f64 / (up + down) as f64
                };
                let rtts: Vec<f64> = votes
                    .iter()
                    .filter(|v| v.region == *region && tally.counted_vantages.contains(&v.vantage))
                    .filter_map(|v| v.rtt_ms)
                    .collect();
                let mean_rtt =
                    (!rtts.is_empty()).then(|| rtts.iter().sum::<f64>() / rtts.len() as f64);
                (down, down_share, mean_rtt, index, region)
            })
            .collect();
        let mut ranked = measured;
        ranked.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then(b.1.total_cmp(&a.1))
                .then(slower(a.2, b.2))
                .then(a.3.cmp(&b.3))
        });
        Self {
            worst_first: ranked.into_iter().map(|m| m.4.clone()).collect(),
        }
    }

    /// Configuration order, for a round without measurements.
    pub fn configuration_order(regions: &[String]) -> Self {
        Self {
            worst_first: regions.to_vec(),
        }
    }

    /// The regions, worst first.
    pub fn worst_first(&self) -> &[String] {
        &self.worst_first
    }

    /// Sorts `regions` worst first; regions the ranking does not know go
    /// last, in the order given.
    pub fn sort<'a>(&self, regions: impl IntoIterator<Item = &'a String>) -> Vec<&'a String> {
        let mut sorted: Vec<&String> = regions.into_iter().collect();
        sorted.sort_by_key(|r| {
            self.worst_first
                .iter()
                .position(|known| known == *r)
                .unwrap_or(usize::MAX)
        });
        sorted
    }
}

/// Orders two mean round trips slowest first; no measurement at all (no
/// counted vantage point reached the region) is the slowest.
fn slower(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => b.total_cmp(&a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::tally;
    use crate::verdict::Verdict;

    fn names() -> Vec<String> {
        ["r1", "r2", "r3"].map(String::from).to_vec()
    }

    fn vote(vantage: &str, region: &str, verdict: Verdict, rtt_ms: Option<f64>) -> Vote {
        Vote {
            vantage: vantage.into(),
            region: region.into(),
            verdict,
            rtt_ms,
            age_ms: 0.0,
            healthy_ms: 0.0,
        }
    }

    #[test]
    fn regions_rank_by_down_votes_then_share_then_round_trip() {
        use Verdict::*;
        let regions = names();
        // r3: two of three down; r2: one of three down; r1: up, slowest.
        let votes = vec![
            vote("r1", "r1", Up, Some(90.0)),
            vote("r2", "r1", Up, Some(90.0)),
            vote("r3", "r1", Up, Some(90.0)),
            vote("r1", "r2", Down, Some(10.0)),
            vote("r2", "r2", Up, Some(10.0)),
            vote("r3", "r2", Up, Some(10.0)),
            vote("r1", "r3", Down, Some(5.0)),
            vote("r2", "r3", Down, Some(5.0)),
            vote("r3", "r3", Up, Some(5.0)),
        ];
        let ranking = HealthRanking::measure(&regions, &tally(&regions, &votes), &votes);
        assert_eq!(ranking.worst_first(), ["r3", "r2", "r1"]);
        // All up: the slowest first, then configuration order.
        let votes: Vec<Vote> = regions
            .iter()
            .flat_map(|v| {
                let rtt = |r: &str| if r == "r2" { Some(80.0) } else { Some(20.0) };
                regions.iter().map(move |r| vote(v, r, Up, rtt(r)))
            })
            .collect();
        let ranking = HealthRanking::measure(&regions, &tally(&regions, &votes), &votes);
        assert_eq!(ranking.worst_first(), ["r2", "r1", "r3"]);
    }

    #[test]
    fn an_unknown_region_never_counts_as_healthy() {
        use Verdict::*;
        let regions = names();
        // Only one vantage point voted, and only on r2: r1 and r3 have no quorum.
        let votes = vec![vote("r1", "r2", Down, None)];
        let t = tally(&regions, &votes);
        assert!(!counts_as_healthy(&t, "r1"));
        assert!(!counts_as_healthy(&t, "r2"));
        let seen_up: BTreeSet<String> = regions
            .iter()
            .filter(|r| counts_as_healthy(&t, r))
            .cloned()
            .collect();
        let refused = admit_manual_drain(
            "r2",
            &regions,
            &BTreeSet::new(),
            &seen_up,
            &BTreeSet::new(),
            1,
        )
        .unwrap_err();
        assert_eq!(refused.rule, "min_healthy_regions");
        assert!(
            refused.detail.contains("0 would remain"),
            "{}",
            refused.detail
        );
    }

    #[test]
    fn a_manual_drain_is_admitted_while_enough_healthy_regions_remain() {
        let regions = names();
        let all_up: BTreeSet<String> = regions.iter().cloned().collect();
        let none = BTreeSet::new();
        admit_manual_drain("r1", &regions, &none, &all_up, &none, 2).unwrap();
        // Another drain already asked for: only r3 would remain.
        let asked: BTreeSet<String> = ["r2".to_string()].into();
        assert!(admit_manual_drain("r1", &regions, &none, &all_up, &asked, 2).is_err());
        // Holding a drained region drained is always fine.
        let drained: BTreeSet<String> = ["r1".to_string(), "r2".to_string()].into();
        admit_manual_drain("r1", &regions, &drained, &all_up, &none, 2).unwrap();
    }
}
