//! Tests of the planner: the safety rules with paused time, and the
//! properties of the issue (proptest), which also hold for the DNS view that
//! every replica derives with the early leave.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use crate::early_leave::{DnsServing, EarlyLeave, EarlyLeaveRules, RoundFacts};
use crate::overrides::{ActiveOverride, OverrideKind};
use crate::planner::{Plan, PlannedAction, Planner, Rules};
use crate::quorum::{tally, Vote};
use crate::region_machine::RegionState;
use crate::safety::HealthRanking;
use crate::verdict::{ProbeOutcome, Verdict, VerdictTracker};

const INTERVAL: Duration = Duration::from_millis(500);

fn rules(min_healthy: usize, max_failures: usize) -> Rules {
    Rules {
        min_healthy_regions: min_healthy,
        max_simultaneous_failures: max_failures,
        simultaneous_window: INTERVAL * 6,
        auto_unfreeze_after: Duration::from_secs(60),
        hold_down_base: Duration::from_secs(10),
        hold_down_max: Duration::from_secs(600),
        hold_down_half_life: Duration::from_secs(600),
    }
}

/// Vantage points probing regions, the planner deciding, actions succeeding,
/// and the DNS view a replica derives from the flags and the tally.
struct Sim {
    regions: Vec<String>,
    trackers: BTreeMap<(String, String), VerdictTracker>,
    planner: Planner,
    early: EarlyLeave,
    dns: DnsServing,
    now: Instant,
    drains: Vec<String>,
    /// False: no leader acts (it died with its region); flags stay clear and
    /// only the early leave moves the DNS view.
    leader_acts: bool,
}

impl Sim {
    fn new(n: usize, rules: Rules) -> Self {
        let regions: Vec<String> = (1..=n).map(|i| format!("r{i}")).collect();
        let now = Instant::now();
        let mut trackers = BTreeMap::new();
        for v in &regions {
            for r in &regions {
                trackers.insert((v.clone(), r.clone()), VerdictTracker::new(2, 3));
            }
        }
        let early = EarlyLeave::new(EarlyLeaveRules {
            min_healthy_regions: rules.min_healthy_regions,
            max_simultaneous_failures: rules.max_simultaneous_failures,
            return_after: rules.hold_down_base,
        });
        Self {
            planner: Planner::new(&regions, rules, now),
            early,
            dns: DnsServing::default(),
            regions,
            trackers,
            now,
            drains: vec![],
            leader_acts: true,
        }
    }

    /// One probe round; `ok(vantage, region)` says what a probe saw, `heard`
    /// which vantage points' votes are fresh.
    fn step(
        &mut self,
        ok: impl Fn(usize, usize) -> bool,
        heard: impl Fn(usize) -> bool,
        overrides: &[ActiveOverride],
    ) {
        self.now += INTERVAL;
        let mut votes = vec![];
        for (vi, v) in self.regions.iter().enumerate() {
            for (ri, r) in self.regions.iter().enumerate() {
                let tracker = self.trackers.get_mut(&(v.clone(), r.clone())).unwrap();
                let outcome = if ok(vi, ri) {
                    ProbeOutcome::Success
                } else {
                    ProbeOutcome::Failure
                };
                tracker.observe(outcome);
                if heard(vi) {
                    votes.push(Vote {
                        vantage: v.clone(),
                        region: r.clone(),
                        verdict: tracker.verdict(),
                        rtt_ms: None,
                        age_ms: 0.0,
                        healthy_ms: 0.0,
                    });
                }
            }
        }
        let t = tally(&self.regions, &votes);
        let mut plan = Default::default();
        if self.leader_acts {
            let ranking = HealthRanking::measure(&self.regions, &t, &votes);
            plan = self.planner.plan(&t, &ranking, overrides, self.now);
        } else {
            (plan.frozen, plan.freeze_reason) = self.planner.track_freeze(&t, overrides, self.now);
        }
        for action in plan.actions.clone() {
            match action {
                PlannedAction::Drain { region, .. } => {
                    self.drains.push(region.clone());
                    self.planner.drain_done(&region, self.now);
                }
                PlannedAction::Restore { region, .. } => {
                    self.planner.restore_done(&region, self.now)
                }
            }
        }
        // Actions succeed at once, so a region's flag is set exactly while
        // its machine is not healthy.
        let drained: BTreeSet<String> = self
            .planner
            .machines()
            .iter()
            .filter(|(_, m)| m.state() != RegionState::Healthy)
            .map(|(r, _)| r.clone())
            .collect();
        let undrained: BTreeSet<String> = overrides
            .iter()
            .filter(|o| o.kind == OverrideKind::Undrain)
            .filter_map(|o| o.region.clone())
            .collect();
        let ranking = HealthRanking::measure(&self.regions, &t, &votes);
        let facts = RoundFacts {
            regions: &self.regions,
            drained: &drained,
            undrained_by_operator: &undrained,
            frozen: plan.frozen,
            ranking: &ranking,
        };
        self.dns = self.early.round(&facts, &t, self.now);
    }

    fn state(&self, region: &str) -> RegionState {
        self.planner.machines()[region].state()
    }
}

fn drain_override(region: &str) -> ActiveOverride {
    ActiveOverride {
        id: uuid::Uuid::new_v4(),
        kind: OverrideKind::Drain,
        region: Some(region.into()),
        reason: "test".into(),
        actor: "tester".into(),
        created_at: chrono::Utc::now(),
        expires_at: chrono::Utc::now(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_dead_region_is_drained_within_three_intervals() {
    let mut sim = Sim::new(3, rules(1, 1));
    sim.step(|_, _| true, |_| true, &[]);
    let mut steps = 0;
    while sim.state("r2") == RegionState::Healthy {
        sim.step(|_, r| r != 1, |_| true, &[]);
        steps += 1;
        assert!(steps <= 3, "not drained after {steps} intervals");
    }
    assert_eq!(sim.state("r2"), RegionState::Drained);
}

#[tokio::test(start_paused = true)]
async fn min_healthy_blocks_the_last_drain() {
    let mut sim = Sim::new(2, rules(1, 2));
    for _ in 0..10 {
        sim.step(|_, r| r != 0, |_| true, &[]);
    }
    assert_eq!(sim.state("r1"), RegionState::Drained);
    // Now r2 fails too: it must stay serving.
    for _ in 0..10 {
        sim.step(
            |v, r| !(r == 1 && v == 0) && r != 0 && v != 1,
            |_| true,
            &[],
        );
    }
    assert_eq!(sim.planner.serving_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn too_many_failures_at_once_freeze_automation() {
    let mut sim = Sim::new(5, rules(1, 1));
    for _ in 0..10 {
        sim.step(|_, r| r >= 2, |_| true, &[]);
    }
    assert!(
        sim.drains.is_empty(),
        "drained {:?} despite the freeze",
        sim.drains
    );
    assert_eq!(sim.planner.serving_count(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_manual_drain_outranks_the_votes_and_the_freeze() {
    let mut sim = Sim::new(3, rules(1, 1));
    let overrides = vec![drain_override("r3")];
    sim.step(|_, _| true, |_| true, &overrides);
    assert_eq!(sim.state("r3"), RegionState::Drained);
    for _ in 0..100 {
        sim.step(|_, _| true, |_| true, &overrides);
    }
    assert_eq!(
        sim.state("r3"),
        RegionState::Drained,
        "restored while the override holds"
    );
    for _ in 0..40 {
        sim.step(|_, _| true, |_| true, &[]);
    }
    assert_eq!(
        sim.state("r3"),
        RegionState::Healthy,
        "not restored after the override ended"
    );
}

fn voted(vantage: &str, region: &str, verdict: Verdict, rtt_ms: f64) -> Vote {
    Vote {
        vantage: vantage.into(),
        region: region.into(),
        verdict,
        rtt_ms: Some(rtt_ms),
        age_ms: 0.0,
        healthy_ms: 0.0,
    }
}

fn drains(plan: &Plan) -> Vec<&str> {
    plan.actions
        .iter()
        .filter(|a| matches!(a, PlannedAction::Drain { .. }))
        .map(|a| a.region())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn two_drains_with_room_for_one_take_the_worst_region() {
    use Verdict::*;
    let regions: Vec<String> = ["r1", "r2", "r3"].map(String::from).to_vec();
    let now = Instant::now();
    let mut planner = Planner::new(&regions, rules(2, 1), now);
    // All up by the majority; one vantage point sees r2 down, and r2 is slow.
    let votes: Vec<Vote> = regions
        .iter()
        .flat_map(|v| {
            regions.iter().map(move |r| match (v.as_str(), r.as_str()) {
                ("r3", "r2") => voted(v, r, Down, 300.0),
                (_, "r2") => voted(v, r, Up, 300.0),
                _ => voted(v, r, Up, 20.0),
            })
        })
        .collect();
    let t = tally(&regions, &votes);
    let ranking = HealthRanking::measure(&regions, &t, &votes);
    let overrides = [drain_override("r1"), drain_override("r2")];
    let plan = planner.plan(&t, &ranking, &overrides, now);
    assert_eq!(drains(&plan), ["r2"], "{plan:?}");
    let blocked = plan
        .decisions
        .iter()
        .find(|d| d.decision == "drain_blocked")
        .expect("r1's drain blocked");
    assert_eq!(blocked.region.as_deref(), Some("r1"));
    assert!(blocked
        .rules
        .iter()
        .any(|r| r.rule == "min_healthy_regions" && !r.passed));
}

#[tokio::test(start_paused = true)]
async fn a_region_without_quorum_does_not_let_another_drain() {
    use crate::quorum::{QuorumVerdict, RegionTally, Tally};
    let regions: Vec<String> = ["r1", "r2", "r3"].map(String::from).to_vec();
    let now = Instant::now();
    let mut planner = Planner::new(&regions, rules(1, 1), now);
    // r2 is seen down; r1 and r3 have no quorum (too few vantage points).
    let row = |up, down, verdict| RegionTally {
        up,
        down,
        verdict,
        disagreement: false,
        votes: BTreeMap::new(),
        healthy_ms: 0.0,
    };
    let t = Tally {
        regions: [
            ("r1".to_string(), row(1, 0, QuorumVerdict::NoQuorum)),
            ("r2".to_string(), row(0, 2, QuorumVerdict::Down)),
            ("r3".to_string(), row(1, 0, QuorumVerdict::NoQuorum)),
        ]
        .into(),
        ..Tally::default()
    };
    let ranking = HealthRanking::configuration_order(&regions);
    let plan = planner.plan(&t, &ranking, &[], now);
    assert!(drains(&plan).is_empty(), "{plan:?}");
    assert_eq!(plan.decisions[0].decision, "drain_blocked");
    assert_eq!(planner.serving_count(), 3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// No sequence of probe results (and manual drains) leaves fewer than
    /// min_healthy_regions serving.
    #[test]
    fn never_below_min_healthy(
        n in 2usize..=5,
        min_seed in 0usize..5,
        max_failures in 0usize..5,
        rounds in proptest::collection::vec((proptest::collection::vec(any::<bool>(), 25), 0u8..8, any::<u8>()), 1..80),
    ) {
        let min_healthy = 1 + min_seed % n;
        let mut sim = Sim::new(n, rules(min_healthy, max_failures));
        for (results, manual, heard_mask) in rounds {
            let overrides: Vec<ActiveOverride> = if (manual as usize) < n {
                vec![drain_override(&format!("r{}", manual + 1))]
            } else {
                vec![]
            };
            sim.step(|v, r| results[(v * 5 + r) % 25], |v| heard_mask & (1 << v) != 0, &overrides);
            prop_assert!(sim.planner.serving_count() >= min_healthy,
                "{} serving, minimum {}", sim.planner.serving_count(), min_healthy);
            prop_assert!(sim.dns.serving.len() >= min_healthy,
                "DNS serves {:?}, minimum {}", sim.dns.serving, min_healthy);
        }
    }

    /// One cut-off vantage point (it sees every region down) never causes a
    /// drain, nor removes a region from DNS, whatever subset of the healthy
    /// vantage points is heard from.
    #[test]
    fn one_cut_off_vantage_never_drains(
        heard in proptest::collection::vec(0u8..8, 1..80),
        cut_off in 0usize..3,
    ) {
        let mut sim = Sim::new(3, rules(1, 1));
        for mask in heard {
            sim.step(|v, _| v != cut_off, |v| v == cut_off || mask & (1 << v) != 0, &[]);
            prop_assert!(sim.drains.is_empty(), "drained {:?}", sim.drains);
            prop_assert_eq!(sim.dns.serving.len(), 3, "DNS serves {:?}", &sim.dns.serving);
        }
    }

    /// One vantage point heard alone (the others silent, stale or dead)
    /// never drains a region nor takes it out of DNS, whatever it sees: a
    /// majority is of the configured vantage points.
    #[test]
    fn one_vantage_heard_alone_never_drains(
        n in 2usize..=5,
        alone in 0usize..5,
        leader_acts in any::<bool>(),
        rounds in proptest::collection::vec(proptest::collection::vec(any::<bool>(), 25), 1..60),
    ) {
        let alone = alone % n;
        let mut sim = Sim::new(n, rules(1, n));
        sim.leader_acts = leader_acts;
        for results in rounds {
            sim.step(|v, r| results[(v * 5 + r) % 25], |v| v == alone, &[]);
            prop_assert!(sim.drains.is_empty(), "drained {:?}", sim.drains);
            prop_assert_eq!(sim.dns.serving.len(), n, "DNS serves {:?}", &sim.dns.serving);
        }
    }

    /// With no leader acting (it died with its region), the replicas' early
    /// leave alone never serves fewer than min_healthy regions in DNS, and
    /// one cut-off vantage point never removes a region.
    #[test]
    fn leaderless_dns_keeps_the_safety_rules(
        n in 2usize..=5,
        min_seed in 0usize..5,
        max_failures in 0usize..5,
        cut_off in proptest::option::of(0usize..5),
        rounds in proptest::collection::vec((proptest::collection::vec(any::<bool>(), 25), any::<u8>()), 1..60),
    ) {
        let min_healthy = 1 + min_seed % n;
        let mut sim = Sim::new(n, rules(min_healthy, max_failures));
        sim.leader_acts = false;
        for (results, heard_mask) in rounds {
            match cut_off.filter(|c| *c < n) {
                // Healthy everywhere except from the cut-off vantage point.
                Some(c) => {
                    sim.step(|v, _| v != c, |v| v == c || heard_mask & (1 << v) != 0, &[]);
                    prop_assert_eq!(sim.dns.serving.len(), n, "DNS serves {:?}", &sim.dns.serving);
                }
                None => {
                    sim.step(|v, r| results[(v * 5 + r) % 25], |v| heard_mask & (1 << v) != 0, &[]);
                    prop_assert!(sim.dns.serving.len() >= min_healthy,
                        "DNS serves {:?}, minimum {}", sim.dns.serving, min_healthy);
                }
            }
        }
    }

    /// A region seen down by the majority leaves DNS in the same round as
    /// (or before) the leader drains it, and never returns before its flag
    /// is cleared, however its probes flap afterwards.
    #[test]
    fn dns_returns_only_with_the_flag(flaps in proptest::collection::vec(any::<bool>(), 1..60)) {
        let mut sim = Sim::new(3, rules(1, 1));
        while sim.dns.serving.contains("r2") {
            sim.step(|_, r| r != 1, |_| true, &[]);
        }
        for up in flaps {
            sim.step(|_, r| r != 1 || up, |_| true, &[]);
            let flag_clear = sim.state("r2") == RegionState::Healthy;
            prop_assert!(!sim.dns.serving.contains("r2") || flag_clear,
                "r2 served while {:?}", sim.state("r2"));
        }
    }

    /// Flapping lengthens the hold-down: each drain soon after the last one
    /// waits longer before the region returns (until the cap).
    #[test]
    fn flapping_lengthens_the_hold_down(flaps in 2usize..6, extra_up in 0u32..20) {
        let mut sim = Sim::new(3, rules(1, 1));
        let mut previous = Duration::ZERO;
        for _ in 0..flaps {
            while sim.state("r1") == RegionState::Healthy {
                sim.step(|_, r| r != 0, |_| true, &[]);
            }
            let hold = sim.planner.machines()["r1"].hold_down(sim.now);
            prop_assert!(hold > previous || hold == Duration::from_secs(600),
                "hold-down {:?} after {:?}", hold, previous);
            previous = hold;
            while sim.state("r1") != RegionState::Healthy {
                sim.step(|_, _| true, |_| true, &[]);
            }
            for _ in 0..extra_up {
                sim.step(|_, _| true, |_| true, &[]);
            }
        }
    }
}
