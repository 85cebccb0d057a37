//! Publishing one round's view: the DNS view (the drain flags minus the
//! regions left out early by the shared votes, so every replica answers
//! alike, stamped with when it was read so that it is not answered from
//! once it is too old), the metrics, and the `/status` snapshot; and
//! reporting when the view grows too old, and when it is fresh again.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use super::decide::AUTOMATION_ACTOR;
use super::Context;
use crate::actions::drain_flag::FlagRow;
use crate::dns::DnsView;
use crate::early_leave::DnsServing;
use crate::overrides::ActiveOverride;
use crate::planner::{Plan, Planner};
use crate::quorum::{Tally, Vote};
use crate::region_machine::RegionState;
use crate::state::{Event, RegionStatus, StatusSnapshot, ViewHealth, VoteStatus};

/// What one decision round read and decided.
#[derive(Clone, Copy)]
pub struct Round<'a> {
    /// When the round began reading the database.
    pub read_at: Instant,
    pub tally: &'a Tally,
    pub fresh: &'a [Vote],
    pub flags: &'a BTreeMap<String, FlagRow>,
    pub dns: &'a DnsServing,
    pub plan: &'a Plan,
}

/// Publishes the DNS view, metrics and the status snapshot.
pub fn publish(ctx: &Context, planner: &Planner, round: &Round<'_>, active: Vec<ActiveOverride>) {
    let Round {
        read_at,
        tally,
        fresh,
        flags,
        dns,
        plan,
    } = *round;
    let regions = ctx.settings.region_names();
    // Configuration order, as `/status` always listed them.
    let serving: Vec<String> = regions
        .iter()
        .filter(|r| dns.serving.contains(*r))
        .cloned()
        .collect();
    let mut measured: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for vote in fresh {
        if let Some(rtt) = vote.rtt_ms {
            measured
                .entry(vote.vantage.clone())
                .or_default()
                .insert(vote.region.clone(), rtt);
        }
    }
    let serial = flags
        .values()
        .map(|f| f.updated_at.timestamp())
        .max()
        .unwrap_or(1)
        .max(1) as u32;
    ctx.state.set_dns_view(DnsView {
        serving: serving.iter().cloned().collect(),
        serial,
        measured_rtt_ms: measured,
        refreshed_at: Some(read_at),
        max_age: Duration::from_millis(ctx.settings.decision.max_view_age_ms),
    });
    let metrics = &ctx.state.metrics;
    metrics.frozen.set(i64::from(plan.frozen));
    let events = ctx.state.events();
    let now_instant = Instant::now();
    let now = Utc::now();
    let to_wall = |at: Instant| {
        now - chrono::Duration::from_std(now_instant.saturating_duration_since(at))
            .unwrap_or_default()
    };
    let mut region_status = Vec::new();
    for region in &regions {
        let machine = &planner.machines()[region];
        for state in RegionState::ALL {
            metrics
                .region_state
                .with_label_values(&[region, state.as_str()])
                .set(i64::from(machine.state() == state));
        }
        let t = tally.regions.get(region);
        let (up, down) = t.map(|t| (t.up, t.down)).unwrap_or((0, 0));
        metrics
            .region_votes
            .with_label_values(&[region, "up"])
            .set(up as i64);
        metrics
            .region_votes
            .with_label_values(&[region, "down"])
            .set(down as i64);
        let left_early = dns.left_early.contains(region);
        metrics.dns_serving.with_label_values(&[region]).set(
            match (dns.serving.contains(region), left_early) {
                (true, _) => 1,
                (false, true) => -1,
                (false, false) => 0,
            },
        );
        let disagreement = t.map(|t| t.disagreement).unwrap_or(false);
        metrics
            .vantage_disagreement
            .with_label_values(&[region])
            .set(i64::from(disagreement));
        let votes = fresh
            .iter()
            .filter(|v| v.region == *region && regions.contains(&v.vantage))
            .map(|v| {
                let status = VoteStatus {
                    verdict: v.verdict,
                    age_ms: v.age_ms,
                    rtt_ms: v.rtt_ms,
                    discarded: tally.discarded_vantages.contains(&v.vantage),
                };
                (v.vantage.clone(), status)
            })
            .collect();
        let flag = flags.get(region);
        region_status.push(RegionStatus {
            region: region.clone(),
            state: machine.state(),
            since: to_wall(machine.since()),
            verdict: tally.verdict(region),
            votes_up: up,
            votes_down: down,
            disagreement,
            votes,
            hold_down_ms: machine.hold_down(now_instant).as_millis() as u64,
            recover_at: machine.recover_at().map(|at| {
                now + chrono::Duration::from_std(at.saturating_duration_since(now_instant))
                    .unwrap_or_default()
            }),
            drain_flag: flag.map(|f| f.drained).unwrap_or(false),
            drain_flag_updated_at: flag.map(|f| f.updated_at),
            dns_serving: serving.contains(region),
            dns_left_early: left_early,
            recent_actions: events
                .iter()
                .filter(|e| e.region.as_deref() == Some(region))
                .take(20)
                .cloned()
                .collect(),
        });
    }
    let previous = ctx.state.status();
    if tally.ignored_vantages != previous.ignored_vantages && !tally.ignored_vantages.is_empty() {
        tracing::warn!(
            ignored = ?tally.ignored_vantages,
            configured = ?regions,
            "votes from vantage points that are not configured regions are ignored"
        );
    }
    ctx.state.set_status(StatusSnapshot {
        controller_id: ctx.controller_id.clone(),
        region: ctx.settings.region.clone(),
        dry_run: ctx.settings.dry_run,
        generated_at: Some(now),
        probe_interval_ms: ctx.settings.probe.interval_ms,
        lease: ctx.state.lease(),
        frozen: plan.frozen,
        freeze_reason: plan.freeze_reason.clone(),
        counted_vantages: tally.counted_vantages.clone(),
        discarded_vantages: tally.discarded_vantages.clone(),
        ignored_vantages: tally.ignored_vantages.clone(),
        serving_regions: serving,
        regions: region_status,
        overrides: active,
        recent_events: events.into_iter().take(50).collect(),
        last_error: previous.last_error,
    });
}

/// Logs (and records as an event) the moment the view grows older than
/// `decision.max_view_age_ms`, and the moment it is fresh again.
pub fn report_view(ctx: &Context, stale_reported: &mut bool) {
    let health = ctx.state.view_health(Instant::now());
    let (name, detail) = match (health, *stale_reported) {
        (ViewHealth::Fresh { .. }, true) => {
            tracing::info!("view read from the database again: answering DNS, ready");
            ("view_fresh", "answering DNS, ready".to_string())
        }
        (ViewHealth::Stale { age, max_age }, false) => {
            let problem = ctx.state.database_problem().unwrap_or_default();
            let detail = format!(
                "view {:.1} s old, longer than decision.max_view_age_ms ({} ms): {problem}; \
                 DNS answers SERVFAIL for the zone, /readyz fails",
                age.as_secs_f64(),
                max_age.as_millis()
            );
            tracing::warn!(age_ms = age.as_millis() as u64, max_age_ms = max_age.as_millis() as u64, %problem, "{detail}");
            ("view_stale", detail)
        }
        _ => return,
    };
    *stale_reported = name == "view_stale";
    ctx.state.push_event(Event {
        at: Utc::now(),
        region: None,
        kind: "dns".into(),
        name: name.into(),
        actor: AUTOMATION_ACTOR.into(),
        outcome: "ok".into(),
        detail,
        duration_ms: None,
    });
}
