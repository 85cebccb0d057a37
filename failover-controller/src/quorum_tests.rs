//! Property tests of the tally rules (proptest): a region is down only when
//! more than half of the configured vantage points vote it down; votes from
//! vantage points outside the configuration, and from a vantage point that
//! votes every region down, change nothing; one vantage point alone never
//! decides anything.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use crate::quorum::{tally, QuorumVerdict, Tally, Vote};
use crate::verdict::Verdict;

/// The configured regions (and so the configured vantage points) r1..rn.
fn names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("r{i}")).collect()
}

fn vote(vantage: &str, region: &str, down: bool) -> Vote {
    Vote {
        vantage: vantage.into(),
        region: region.into(),
        verdict: if down { Verdict::Down } else { Verdict::Up },
        rtt_ms: None,
        age_ms: 0.0,
        healthy_ms: 0.0,
    }
}

/// Votes as the database holds them (one row per vantage and region; the
/// last one generated wins), from configured vantage points r1..rn and from
/// unknown ones (x1, x2), on configured regions and on an unknown one.
fn votes_strategy(n: usize) -> impl Strategy<Value = Vec<Vote>> {
    let vantages = n + 2;
    let regions = n + 1;
    proptest::collection::vec((0..vantages, 0..regions, any::<bool>()), 0..40).prop_map(
        move |raw| {
            let mut rows: BTreeMap<(String, String), bool> = BTreeMap::new();
            for (v, r, down) in raw {
                let vantage = if v < n {
                    format!("r{}", v + 1)
                } else {
                    format!("x{}", v - n + 1)
                };
                let region = if r < n {
                    format!("r{}", r + 1)
                } else {
                    "elsewhere".to_string()
                };
                rows.insert((vantage, region), down);
            }
            rows.into_iter()
                .map(|((vantage, region), down)| vote(&vantage, &region, down))
                .collect()
        },
    )
}

/// The configured vantage points that vote every configured region down
/// (the cut-off rule; only with two regions or more).
fn all_down_vantages(regions: &[String], votes: &[Vote]) -> BTreeSet<String> {
    if regions.len() < 2 {
        return BTreeSet::new();
    }
    regions
        .iter()
        .filter(|vantage| {
            regions.iter().all(|region| {
                votes.iter().any(|v| {
                    v.vantage == **vantage && v.region == *region && v.verdict == Verdict::Down
                })
            })
        })
        .cloned()
        .collect()
}

/// How many configured, not discarded vantage points vote `verdict` on `region`.
fn counted(regions: &[String], votes: &[Vote], region: &str, verdict: Verdict) -> usize {
    let discarded = all_down_vantages(regions, votes);
    votes
        .iter()
        .filter(|v| v.region == region && v.verdict == verdict)
        .filter(|v| regions.contains(&v.vantage) && !discarded.contains(&v.vantage))
        .count()
}

fn verdicts(regions: &[String], t: &Tally) -> Vec<QuorumVerdict> {
    regions.iter().map(|r| t.verdict(r)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Never down (nor up) without more than half of the configured vantage
    /// points, counting only configured, not discarded ones; and always down
    /// (or up) with such a majority.
    #[test]
    fn a_verdict_needs_a_majority_of_the_configured_vantage_points(
        (n, votes) in (1usize..=5).prop_flat_map(|n| (Just(n), votes_strategy(n))),
    ) {
        let regions = names(n);
        let t = tally(&regions, &votes);
        for region in &regions {
            let down = counted(&regions, &votes, region, Verdict::Down);
            let up = counted(&regions, &votes, region, Verdict::Up);
            let expected = if down * 2 > n {
                QuorumVerdict::Down
            } else if up * 2 > n {
                QuorumVerdict::Up
            } else {
                QuorumVerdict::NoQuorum
            };
            prop_assert_eq!(t.verdict(region), expected,
                "{}: {} down, {} up of {} configured", region, down, up, n);
        }
    }

    /// Votes from vantage points that are not configured change nothing.
    #[test]
    fn unknown_vantage_points_never_change_the_result(
        (n, votes) in (1usize..=5).prop_flat_map(|n| (Just(n), votes_strategy(n))),
    ) {
        let regions = names(n);
        let known: Vec<Vote> = votes.iter().filter(|v| regions.contains(&v.vantage)).cloned().collect();
        prop_assert_eq!(
            verdicts(&regions, &tally(&regions, &votes)),
            verdicts(&regions, &tally(&regions, &known))
        );
    }

    /// A vantage point that votes every region down counts as if it had not
    /// voted at all.
    #[test]
    fn a_vantage_that_sees_everything_down_never_changes_the_result(
        (n, votes, cut_off) in (2usize..=5).prop_flat_map(|n| (Just(n), votes_strategy(n), 0..n)),
    ) {
        let regions = names(n);
        let cut_off = format!("r{}", cut_off + 1);
        let without: Vec<Vote> = votes.iter().filter(|v| v.vantage != cut_off).cloned().collect();
        let mut with = without.clone();
        with.extend(regions.iter().map(|r| vote(&cut_off, r, true)));
        prop_assert_eq!(
            verdicts(&regions, &tally(&regions, &with)),
            verdicts(&regions, &tally(&regions, &without))
        );
    }

    /// With two or more vantage points configured, the votes of one alone
    /// (plus any number of unknown ones) never drain nor restore a region.
    #[test]
    fn one_vantage_point_alone_never_decides(
        (n, votes, alone) in (2usize..=5).prop_flat_map(|n| (Just(n), votes_strategy(n), 0..n)),
    ) {
        let regions = names(n);
        let alone = format!("r{}", alone + 1);
        let only: Vec<Vote> = votes
            .iter()
            .filter(|v| v.vantage == alone || !regions.contains(&v.vantage))
            .cloned()
            .collect();
        let t = tally(&regions, &only);
        for region in &regions {
            prop_assert_eq!(t.verdict(region), QuorumVerdict::NoQuorum, "{}", region);
        }
    }

    /// With three configured, the survivors of a dead region (its own
    /// replica silent) drain it only when both see it down.
    #[test]
    fn two_survivors_of_three_must_agree(first_down in any::<bool>(), second_down in any::<bool>()) {
        let regions = names(3);
        let votes = vec![
            vote("r1", "r1", false),
            vote("r1", "r3", first_down),
            vote("r2", "r2", false),
            vote("r2", "r3", second_down),
        ];
        let expected = match (first_down, second_down) {
            (true, true) => QuorumVerdict::Down,
            (false, false) => QuorumVerdict::Up,
            _ => QuorumVerdict::NoQuorum,
        };
        prop_assert_eq!(tally(&regions, &votes).verdict("r3"), expected);
    }
}
