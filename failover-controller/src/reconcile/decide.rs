//! One decision round: read votes, overrides, drain flags; plan; act on the
//! drain flags if leading; publish the status, metrics and DNS view.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::broadcast;
use tokio::time::{Instant, MissedTickBehavior};

use super::publish::{publish, report_view, Round};
use super::Context;
use crate::actions::drain_flag::{self, Fence, FlagWrite};
use crate::audit::AuditKind;
use crate::db::DbError;
use crate::early_leave::{DnsServing, EarlyLeave, EarlyLeaveRules, RoundFacts};
use crate::overrides;
use crate::planner::{Plan, PlannedAction, Planner, Rules};
use crate::quorum::{self, Tally};
use crate::safety::HealthRanking;
use crate::state::Event;
use crate::votes;

/// Builds the planner from the settings.
pub fn planner_for(ctx: &Context) -> Planner {
    let d = &ctx.settings.decision;
    let rules = Rules {
        min_healthy_regions: d.min_healthy_regions,
        max_simultaneous_failures: d.max_simultaneous_failures,
        simultaneous_window: ctx.settings.probe_interval() * 6,
        auto_unfreeze_after: Duration::from_millis(d.auto_unfreeze_after_ms),
        hold_down_base: Duration::from_millis(d.hold_down_base_ms),
        hold_down_max: Duration::from_millis(d.hold_down_max_ms),
        hold_down_half_life: Duration::from_millis(d.hold_down_half_life_ms),
    };
    Planner::new(&ctx.settings.region_names(), rules, Instant::now())
}

/// Builds the early-leave memory from the settings: the planner's safety
/// rules, and the base hold-down for regions no leader drained.
pub fn early_leave_for(ctx: &Context) -> EarlyLeave {
    let d = &ctx.settings.decision;
    EarlyLeave::new(EarlyLeaveRules {
        min_healthy_regions: d.min_healthy_regions,
        max_simultaneous_failures: d.max_simultaneous_failures,
        return_after: Duration::from_millis(d.hold_down_base_ms),
    })
}

/// Runs decision rounds until stopped; an error ends the round, never the
/// loop. A round is abandoned after `lease.ttl_ms` (a database that holds
/// connections without answering must not stop the loop), and every tick
/// reports whether the view has grown older than `decision.max_view_age_ms`.
pub async fn decide_loop(ctx: Arc<Context>, mut stop: broadcast::Receiver<()>) {
    let mut planner = planner_for(&ctx);
    let mut early = early_leave_for(&ctx);
    let mut leading = false;
    let round_timeout = Duration::from_millis(ctx.settings.lease.ttl_ms);
    let mut failures: u32 = 0;
    let mut next_warning: u32 = 1;
    let mut stale_reported = false;
    let mut ticker =
        tokio::time::interval(Duration::from_millis(ctx.settings.decision.interval_ms));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.recv() => return,
            _ = ticker.tick() => {}
        }
        let outcome = tokio::time::timeout(
            round_timeout,
            round(&ctx, &mut planner, &mut early, &mut leading),
        )
        .await;
        let error = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some((error.problem().to_string(), error.to_string())),
            Err(_) => Some((
                format!(
                    "database did not answer within {} ms",
                    round_timeout.as_millis()
                ),
                "decision round timed out".to_string(),
            )),
        };
        match &error {
            None => {
                if failures > 0 {
                    tracing::info!(failures, "decision rounds succeed again");
                }
                failures = 0;
                next_warning = 1;
                ctx.state.set_database_problem(None);
            }
            Some((problem, error)) => {
                failures += 1;
                // The first failure, then one line every 20 rounds.
                if failures >= next_warning {
                    next_warning = failures + 20;
                    tracing::warn!(%error, %problem, consecutive_failures = failures, "decision round failed");
                }
                ctx.state.set_database_problem(Some(problem.clone()));
            }
        }
        let mut status = ctx.state.status();
        status.last_error = error.map(|(_, e)| e);
        ctx.state.set_status(status);
        report_view(&ctx, &mut stale_reported);
    }
}

/// One round.
pub async fn round(
    ctx: &Context,
    planner: &mut Planner,
    early: &mut EarlyLeave,
    leading: &mut bool,
) -> Result<(), DbError> {
    // The view this round publishes is as old as its first read.
    let read_at = Instant::now();
    let regions = ctx.settings.region_names();
    let fresh = votes::fresh(&ctx.pool, ctx.settings.probe.vote_freshness_ms).await?;
    let tally = quorum::tally(&regions, &fresh);
    let ranking = HealthRanking::measure(&regions, &tally, &fresh);
    count_ignored(ctx, &tally);
    let active = overrides::active(&ctx.pool).await?;
    let mut flags = drain_flag::read_all(&ctx.pool).await?;
    let now = Instant::now();
    let drained: BTreeMap<String, bool> =
        flags.iter().map(|(r, f)| (r.clone(), f.drained)).collect();
    let epoch = ctx.may_act();
    let mut plan = Plan::default();
    if epoch.is_some() {
        if !*leading {
            // Start from the truth in the database, not from what this
            // replica guessed while following.
            planner.follow(&drained, now);
            *leading = true;
            // A new leader checks its Route53 records at once.
            ctx.route53_wake.notify_one();
        }
        plan = planner.plan(&tally, &ranking, &active, now);
        record_decisions(ctx, &plan, &tally).await;
        let mut changed = false;
        for action in &plan.actions {
            changed |= execute(ctx, planner, action, epoch.unwrap_or_default()).await;
        }
        if changed {
            flags = drain_flag::read_all(&ctx.pool).await?;
            ctx.route53_wake.notify_one();
        }
    } else {
        *leading = false;
        planner.follow(&drained, now);
        (plan.frozen, plan.freeze_reason) = planner.track_freeze(&tally, &active, now);
    }
    let dns = dns_view(
        ctx, early, &regions, &tally, &ranking, &flags, &active, &plan,
    );
    let round = Round {
        read_at,
        tally: &tally,
        fresh: &fresh,
        flags: &flags,
        dns: &dns,
        plan: &plan,
    };
    publish(ctx, planner, &round, active);
    Ok(())
}

/// The DNS view of the round: the drain flags, minus the regions the tally
/// sees down that the safety rules let leave early (see `early_leave`).
#[allow(clippy::too_many_arguments)]
fn dns_view(
    ctx: &Context,
    early: &mut EarlyLeave,
    regions: &[String],
    tally: &Tally,
    ranking: &HealthRanking,
    flags: &BTreeMap<String, drain_flag::FlagRow>,
    active: &[overrides::ActiveOverride],
    plan: &Plan,
) -> DnsServing {
    let drained: BTreeSet<String> = flags
        .iter()
        .filter(|(_, f)| f.drained)
        .map(|(r, _)| r.clone())
        .collect();
    let undrained: BTreeSet<String> = active
        .iter()
        .filter(|o| o.kind == overrides::OverrideKind::Undrain)
        .filter_map(|o| o.region.clone())
        .collect();
    let facts = RoundFacts {
        regions,
        drained: &drained,
        undrained_by_operator: &undrained,
        frozen: plan.frozen,
        ranking,
    };
    let before = early.left_out();
    let view = early.round(&facts, tally, Instant::now());
    for region in view.left_early.difference(&before) {
        let votes = tally.regions.get(region);
        let detail = votes
            .map(|t| format!("{} down, {} up; drain flag still clear", t.down, t.up))
            .unwrap_or_default();
        tracing::info!(%region, %detail, "left out of DNS early by the votes");
        ctx.state.push_event(Event {
            at: Utc::now(),
            region: Some(region.clone()),
            kind: "dns".into(),
            name: "dns_leave_early".into(),
            actor: AUTOMATION_ACTOR.into(),
            outcome: "ok".into(),
            detail,
            duration_ms: None,
        });
    }
    for (region, why) in &view.kept {
        tracing::debug!(%region, ?why, "down by the votes, kept in DNS by a safety rule");
    }
    view
}

pub(super) const AUTOMATION_ACTOR: &str = "automation";

/// Counts the votes the tally ignored (they never change a verdict).
fn count_ignored(ctx: &Context, tally: &Tally) {
    let ignored = &ctx.state.metrics.votes_ignored_total;
    let counts = [
        ("unknown_vantage", tally.ignored_votes.unknown_vantage),
        ("unknown_region", tally.ignored_votes.unknown_region),
    ];
    for (reason, count) in counts {
        if count > 0 {
            ignored.with_label_values(&[reason]).inc_by(count as u64);
        }
    }
}

async fn record_decisions(ctx: &Context, plan: &Plan, tally: &Tally) {
    for decision in &plan.decisions {
        let region = decision.region.as_deref();
        ctx.state
            .metrics
            .decisions_total
            .with_label_values(&[region.unwrap_or("*"), &decision.decision])
            .inc();
        let detail = decision
            .rules
            .iter()
            .map(|r| format!("{}: {}", r.rule, r.detail))
            .collect::<Vec<_>>()
            .join("; ");
        tracing::info!(region = region.unwrap_or("*"), decision = %decision.decision, actor = %decision.actor, %detail, "decision");
        ctx.state.push_event(Event {
            at: Utc::now(),
            region: decision.region.clone(),
            kind: "decision".into(),
            name: decision.decision.clone(),
            actor: decision.actor.clone(),
            outcome: if ctx.settings.dry_run {
                "planned (dry run)".into()
            } else {
                "decided".into()
            },
            detail: detail.clone(),
            duration_ms: None,
        });
        let mut entry = ctx.audit_entry(
            AuditKind::Decision,
            region,
            &decision.decision,
            &decision.actor,
            "decided",
        );
        entry.votes = match region {
            Some(r) => serde_json::to_value(tally.regions.get(r)).unwrap_or_default(),
            None => serde_json::to_value(tally).unwrap_or_default(),
        };
        entry.rules = serde_json::to_value(&decision.rules).unwrap_or_default();
        entry.detail = detail;
        ctx.audit(entry).await;
    }
}

/// Executes one drain-flag action; returns whether the flag changed.
async fn execute(ctx: &Context, planner: &mut Planner, action: &PlannedAction, epoch: i64) -> bool {
    let (region, drained, actor, reason, name) = match action {
        PlannedAction::Drain {
            region,
            actor,
            reason,
        } => (region, true, actor, reason, "drain_flag_set"),
        PlannedAction::Restore {
            region,
            actor,
            reason,
        } => (region, false, actor, reason, "drain_flag_clear"),
    };
    if ctx.settings.dry_run {
        // Report the plan and pretend it succeeded, so the plan moves on.
        finish(planner, region, drained);
        push_action(
            ctx,
            region,
            name,
            actor,
            "skipped (dry run)",
            reason.clone(),
            None,
        );
        return false;
    }
    let started = Instant::now();
    let fence = Fence {
        lease_name: ctx.lease.name(),
        holder: ctx.lease.holder(),
        epoch,
    };
    let outcome = match drain_flag::write(&ctx.pool, &fence, region, drained, reason, actor).await {
        Ok(FlagWrite::Written) => match verify(ctx, region, drained, epoch).await {
            true => "ok",
            false => "unverified",
        },
        Ok(FlagWrite::Fenced) => "fenced",
        Err(error) => {
            tracing::warn!(%error, region, "drain flag write failed");
            "error"
        }
    };
    let elapsed = started.elapsed();
    let metrics = &ctx.state.metrics;
    metrics
        .actions_total
        .with_label_values(&[name, outcome])
        .inc();
    metrics
        .action_duration_seconds
        .with_label_values(&[name])
        .observe(elapsed.as_secs_f64());
    if outcome == "ok" {
        finish(planner, region, drained);
    }
    if outcome == "fenced" {
        // Someone else leads now: stop acting until the lease loop says so.
        if let Ok(mut d) = ctx.lease_deadline.lock() {
            *d = None;
        }
    }
    tracing::info!(
        region,
        action = name,
        outcome,
        epoch,
        elapsed_ms = elapsed.as_millis() as u64,
        "action"
    );
    push_action(
        ctx,
        region,
        name,
        actor,
        outcome,
        reason.clone(),
        Some(elapsed),
    );
    let mut entry = ctx.audit_entry(AuditKind::Action, Some(region), name, actor, outcome);
    entry.lease_epoch = epoch;
    entry.detail = reason.clone();
    ctx.audit(entry).await;
    outcome == "ok"
}

fn finish(planner: &mut Planner, region: &str, drained: bool) {
    let now = Instant::now();
    if drained {
        planner.drain_done(region, now);
    } else {
        planner.restore_done(region, now);
    }
}

async fn verify(ctx: &Context, region: &str, drained: bool, epoch: i64) -> bool {
    match drain_flag::read_all(&ctx.pool).await {
        Ok(flags) => flags
            .get(region)
            .map(|f| f.drained == drained && f.fencing_epoch == epoch)
            .unwrap_or(false),
        Err(_) => false,
    }
}

fn push_action(
    ctx: &Context,
    region: &str,
    name: &str,
    actor: &str,
    outcome: &str,
    detail: String,
    took: Option<Duration>,
) {
    ctx.state.push_event(Event {
        at: Utc::now(),
        region: Some(region.to_string()),
        kind: "action".into(),
        name: name.into(),
        actor: actor.into(),
        outcome: outcome.into(),
        detail,
        duration_ms: took.map(|d| d.as_secs_f64() * 1000.0),
    });
}
