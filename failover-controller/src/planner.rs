//! The planner: turns the tally, the overrides and the per-region machines
//! into a plan of actions, checking the safety rules before every one.
//!
//! Pure logic over `tokio::time::Instant`, so that it is tested with paused
//! time and property tests; the reconcile loop executes what it plans.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::overrides::{ActiveOverride, OverrideKind};
use crate::quorum::{QuorumVerdict, Tally};
use crate::region_machine::{HoldDown, Intent, RegionMachine, RegionState};
use crate::safety::{self, HealthRanking};

/// The safety rules and hold-down parameters.
#[derive(Debug, Clone)]
pub struct Rules {
    pub min_healthy_regions: usize,
    pub max_simultaneous_failures: usize,
    /// Failures this close together count as "at once".
    pub simultaneous_window: Duration,
    pub auto_unfreeze_after: Duration,
    pub hold_down_base: Duration,
    pub hold_down_max: Duration,
    pub hold_down_half_life: Duration,
}

/// One rule evaluated for a decision, for the audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleCheck {
    pub rule: String,
    pub passed: bool,
    pub detail: String,
}

/// A change the controller should make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum PlannedAction {
    Drain {
        region: String,
        actor: String,
        reason: String,
    },
    Restore {
        region: String,
        actor: String,
        reason: String,
    },
}

impl PlannedAction {
    pub fn region(&self) -> &str {
        match self {
            PlannedAction::Drain { region, .. } | PlannedAction::Restore { region, .. } => region,
        }
    }
}

/// A decision worth recording (only changes, not every tick).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub region: Option<String>,
    /// drain, restore, drain_blocked, freeze, unfreeze, recovering.
    pub decision: String,
    pub actor: String,
    pub rules: Vec<RuleCheck>,
}

/// The output of one planning round.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub actions: Vec<PlannedAction>,
    pub decisions: Vec<Decision>,
    pub frozen: bool,
    pub freeze_reason: Option<String>,
}

/// Planner state that outlives a round: the machines and the freeze latch.
#[derive(Debug)]
pub struct Planner {
    rules: Rules,
    machines: BTreeMap<String, RegionMachine>,
    /// When automation froze itself, and why.
    auto_freeze: Option<(Instant, String)>,
    /// Since when the failures that froze automation have cleared.
    clear_since: Option<Instant>,
    /// Regions whose blocked drain was already reported.
    blocked: BTreeSet<String>,
    /// Regions whose restore decision was already reported.
    restoring: BTreeSet<String>,
}

const AUTOMATION: &str = "automation";

impl Planner {
    pub fn new(regions: &[String], rules: Rules, now: Instant) -> Self {
        let machines = regions
            .iter()
            .map(|r| {
                let hold = HoldDown::new(
                    rules.hold_down_base,
                    rules.hold_down_max,
                    rules.hold_down_half_life,
                    now,
                );
                (
                    r.clone(),
                    RegionMachine::new(RegionState::Healthy, hold, now),
                )
            })
            .collect();
        Self {
            rules,
            machines,
            auto_freeze: None,
            clear_since: None,
            blocked: BTreeSet::new(),
            restoring: BTreeSet::new(),
        }
    }

    pub fn machines(&self) -> &BTreeMap<String, RegionMachine> {
        &self.machines
    }

    pub fn serving_count(&self) -> usize {
        self.machines
            .values()
            .filter(|m| m.state().is_serving())
            .count()
    }

    /// Reports a verified drain.
    pub fn drain_done(&mut self, region: &str, now: Instant) {
        if let Some(m) = self.machines.get_mut(region) {
            m.drain_done(now);
        }
    }

    /// Reports a verified restore.
    pub fn restore_done(&mut self, region: &str, now: Instant) {
        self.restoring.remove(region);
        if let Some(m) = self.machines.get_mut(region) {
            m.restore_done(now);
        }
    }

    /// Followers mirror the drain flags instead of planning.
    pub fn follow(&mut self, drained: &BTreeMap<String, bool>, now: Instant) {
        for (region, machine) in self.machines.iter_mut() {
            machine.follow(drained.get(region).copied().unwrap_or(false), now);
        }
    }

    /// Plans one round. Regions are planned worst measured health first
    /// (`ranking`), so that when `min_healthy_regions` lets only some of the
    /// regions that want to leave go, the worst go and the best stay.
    pub fn plan(
        &mut self,
        tally: &Tally,
        ranking: &HealthRanking,
        overrides: &[ActiveOverride],
        now: Instant,
    ) -> Plan {
        let mut plan = Plan::default();
        self.update_freeze(tally, overrides, now, &mut plan);
        (plan.frozen, plan.freeze_reason) = self.frozen(overrides);

        let regions: Vec<String> = ranking
            .sort(self.machines.keys())
            .into_iter()
            .cloned()
            .collect();
        for region in regions {
            let region_override = overrides
                .iter()
                .rev()
                .find(|o| o.region.as_deref() == Some(region.as_str()) && o.kind.needs_region());
            let machine = self.machines.get_mut(&region).expect("known region");
            let before = machine.state();
            // While an operator decides for the region, votes do not move it.
            let intent = match region_override {
                Some(_) => {
                    machine.hold(now);
                    Intent::Stay
                }
                None => machine.observe(tally.verdict(&region), tally.healthy_for(&region), now),
            };
            if before == RegionState::Drained && machine.state() == RegionState::Recovering {
                plan.decisions.push(Decision {
                    region: Some(region.clone()),
                    decision: "recovering".into(),
                    actor: AUTOMATION.into(),
                    rules: vec![RuleCheck {
                        rule: "hold_down".into(),
                        passed: true,
                        detail: format!(
                            "hold-down {:?}, seen healthy by the majority for {:?}: restoring in {:?}",
                            machine.hold_down(now),
                            tally.healthy_for(&region),
                            machine
                                .recover_at()
                                .map(|at| at.saturating_duration_since(now))
                                .unwrap_or_default()
                        ),
                    }],
                });
            }
            let (want, actor, reason) = match region_override {
                Some(o) if o.kind == OverrideKind::Drain => {
                    (Intent::Drain, o.actor.clone(), o.reason.clone())
                }
                Some(o) => (Intent::Restore, o.actor.clone(), o.reason.clone()),
                None if machine.state() == RegionState::Draining => {
                    (Intent::Drain, AUTOMATION.into(), "finishing drain".into())
                }
                None if plan.frozen => (Intent::Stay, AUTOMATION.into(), String::new()),
                None => (
                    intent,
                    AUTOMATION.into(),
                    "majority of vantage points".into(),
                ),
            };
            match want {
                Intent::Stay => {
                    self.blocked.remove(&region);
                }
                Intent::Drain => self.plan_drain(&region, actor, reason, tally, now, &mut plan),
                Intent::Restore => self.plan_restore(&region, actor, reason, now, &mut plan),
            }
        }
        plan
    }

    /// Followers keep the automatic freeze latch from the same shared votes
    /// (their decisions are the leader's to record), so that their early
    /// leave from DNS honours a freeze exactly as the leader would.
    pub fn track_freeze(
        &mut self,
        tally: &Tally,
        overrides: &[ActiveOverride],
        now: Instant,
    ) -> (bool, Option<String>) {
        self.update_freeze(tally, overrides, now, &mut Plan::default());
        self.frozen(overrides)
    }

    /// Whether automation is frozen, and why.
    fn frozen(&self, overrides: &[ActiveOverride]) -> (bool, Option<String>) {
        let manual_freeze = overrides.iter().find(|o| o.kind == OverrideKind::Freeze);
        let reason = manual_freeze
            .map(|o| format!("manual freeze by {}: {}", o.actor, o.reason))
            .or_else(|| self.auto_freeze.as_ref().map(|(_, why)| why.clone()));
        (reason.is_some(), reason)
    }

    fn plan_drain(
        &mut self,
        region: &str,
        actor: String,
        reason: String,
        tally: &Tally,
        now: Instant,
        plan: &mut Plan,
    ) {
        // Only regions that serve and that the majority sees up count: a
        // region without quorum is unknown and lets no other region leave.
        let remaining: Vec<&str> = self
            .machines
            .iter()
            .filter(|(other, m)| {
                other.as_str() != region
                    && m.state().is_serving()
                    && safety::counts_as_healthy(tally, other)
            })
            .map(|(other, _)| other.as_str())
            .collect();
        let min_rule = safety::min_healthy_check(&remaining, self.rules.min_healthy_regions);
        let machine = self.machines.get_mut(region).expect("known region");
        match machine.state() {
            RegionState::Draining => {
                plan.actions.push(PlannedAction::Drain {
                    region: region.into(),
                    actor,
                    reason,
                });
                return;
            }
            RegionState::Drained => return,
            RegionState::Recovering => {
                machine.begin_drain(now);
                return;
            }
            RegionState::Healthy => {}
        }
        let votes = tally.regions.get(region);
        let quorum_rule = if actor == AUTOMATION {
            RuleCheck {
                rule: "majority".into(),
                passed: true,
                detail: votes
                    .map(|t| {
                        format!(
                            "{} down, {} up, discarded {:?}",
                            t.down, t.up, tally.discarded_vantages
                        )
                    })
                    .unwrap_or_default(),
            }
        } else {
            RuleCheck {
                rule: "manual_override".into(),
                passed: true,
                detail: format!("drain by {actor}: {reason}"),
            }
        };
        if !min_rule.passed {
            if self.blocked.insert(region.to_string()) {
                plan.decisions.push(Decision {
                    region: Some(region.into()),
                    decision: "drain_blocked".into(),
                    actor,
                    rules: vec![quorum_rule, min_rule],
                });
            }
            return;
        }
        self.blocked.remove(region);
        machine.begin_drain(now);
        plan.decisions.push(Decision {
            region: Some(region.into()),
            decision: "drain".into(),
            actor: actor.clone(),
            rules: vec![quorum_rule, min_rule],
        });
        plan.actions.push(PlannedAction::Drain {
            region: region.into(),
            actor,
            reason,
        });
    }

    fn plan_restore(
        &mut self,
        region: &str,
        actor: String,
        reason: String,
        now: Instant,
        plan: &mut Plan,
    ) {
        self.blocked.remove(region);
        let machine = self.machines.get_mut(region).expect("known region");
        if machine.state() == RegionState::Healthy {
            return;
        }
        let hold = machine
            .recover_at()
            .map(|at| at.saturating_duration_since(now));
        // Report the decision once; the action is re-planned until verified.
        if self.restoring.insert(region.to_string()) {
            plan.decisions.push(Decision {
                region: Some(region.into()),
                decision: "restore".into(),
                actor: actor.clone(),
                rules: vec![RuleCheck {
                    rule: "hold_down".into(),
                    passed: true,
                    detail: match hold {
                        Some(_) if actor == AUTOMATION => "hold-down passed".into(),
                        _ => "manual undrain skips the hold-down".into(),
                    },
                }],
            });
        }
        plan.actions.push(PlannedAction::Restore {
            region: region.into(),
            actor,
            reason,
        });
    }

    fn update_freeze(
        &mut self,
        tally: &Tally,
        overrides: &[ActiveOverride],
        now: Instant,
        plan: &mut Plan,
    ) {
        let unfreeze = overrides.iter().find(|o| o.kind == OverrideKind::Unfreeze);
        if let Some(o) = unfreeze {
            if self.auto_freeze.take().is_some() {
                plan.decisions.push(Decision {
                    region: None,
                    decision: "unfreeze".into(),
                    actor: o.actor.clone(),
                    rules: vec![],
                });
            }
            self.clear_since = None;
            return;
        }
        let window = self.rules.simultaneous_window;
        let failing_now: Vec<&String> = self
            .machines
            .iter()
            .filter(|(region, m)| {
                tally.verdict(region) == QuorumVerdict::Down
                    && (m.state() == RegionState::Healthy
                        || (m.state() == RegionState::Draining
                            || m.state() == RegionState::Drained)
                            && now.saturating_duration_since(m.since()) <= window)
            })
            .map(|(r, _)| r)
            .collect();
        let max = self.rules.max_simultaneous_failures;
        match &self.auto_freeze {
            None if failing_now.len() > max => {
                let why = format!(
                    "{} regions failing at once ({:?}), more than max_simultaneous_failures {max}: probing or a global fault",
                    failing_now.len(),
                    failing_now
                );
                plan.decisions.push(Decision {
                    region: None,
                    decision: "freeze".into(),
                    actor: AUTOMATION.into(),
                    rules: vec![RuleCheck {
                        rule: "max_simultaneous_failures".into(),
                        passed: false,
                        detail: why.clone(),
                    }],
                });
                self.auto_freeze = Some((now, why));
                self.clear_since = None;
            }
            None => {}
            Some(_) => {
                let all_down = tally.down_regions().len();
                if all_down > max {
                    self.clear_since = None;
                    return;
                }
                let since = *self.clear_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= self.rules.auto_unfreeze_after {
                    self.auto_freeze = None;
                    self.clear_since = None;
                    plan.decisions.push(Decision {
                        region: None,
                        decision: "unfreeze".into(),
                        actor: AUTOMATION.into(),
                        rules: vec![RuleCheck {
                            rule: "max_simultaneous_failures".into(),
                            passed: true,
                            detail: format!(
                                "failures cleared for {:?}",
                                self.rules.auto_unfreeze_after
                            ),
                        }],
                    });
                }
            }
        }
    }
}
