//! The loops beside the HTTP server, in the shape of a kube-rs controller:
//! each round reads the world (votes, overrides, drain flags, lease), decides,
//! acts if this replica leads, and publishes what it saw into [`State`].
//!
//! Layout:
//! - this module: the [`Context`], the probe loop and the lease loop;
//! - [`decide`]: one decision round and the drain-flag actions;
//! - `publish`: the DNS view, metrics and status snapshot of a round;
//! - [`route53_sync`]: converges the Route53 records to the drain flags.

pub mod decide;
mod publish;
pub mod route53_sync;

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{broadcast, Notify};
use tokio::time::{Instant, MissedTickBehavior};

use crate::actions::route53::Route53Records;
use crate::audit::{self, AuditEntry, AuditKind};
use crate::config::Settings;
use crate::lease::{Lease, LeaseView};
use crate::probe::Prober;
use crate::state::State;
use crate::votes;

/// Everything a loop needs, shared.
pub struct Context {
    pub settings: Arc<Settings>,
    pub pool: PgPool,
    pub state: Arc<State>,
    pub lease: Lease,
    pub controller_id: String,
    pub route53: Option<Arc<Route53Records>>,
    /// Wakes the Route53 loop after a drain flag changed.
    pub route53_wake: Notify,
    /// Until when (local clock) the lease may be trusted without renewal.
    pub lease_deadline: std::sync::Mutex<Option<Instant>>,
}

impl Context {
    /// Whether this replica may act now: it holds the lease and the last
    /// renewal is recent enough by the local clock.
    pub fn may_act(&self) -> Option<i64> {
        let view = self.state.lease();
        let deadline = self.lease_deadline.lock().ok().and_then(|d| *d);
        match deadline {
            Some(deadline) if view.held && Instant::now() < deadline => Some(view.epoch),
            _ => None,
        }
    }

    /// Appends to the audit log; a failure is logged, never fatal.
    pub async fn audit(&self, entry: AuditEntry) {
        if let Err(error) = audit::append(&self.pool, &entry).await {
            tracing::warn!(%error, name = %entry.name, "cannot append to the audit log");
        }
    }

    pub fn audit_entry(
        &self,
        kind: AuditKind,
        region: Option<&str>,
        name: &str,
        actor: &str,
        outcome: &str,
    ) -> AuditEntry {
        AuditEntry {
            controller_id: self.controller_id.clone(),
            lease_epoch: self.state.lease().epoch,
            kind,
            region: region.map(str::to_string),
            name: name.into(),
            actor: actor.into(),
            outcome: outcome.into(),
            votes: serde_json::json!({}),
            rules: serde_json::json!([]),
            detail: String::new(),
        }
    }
}

/// Probes on the interval and publishes this vantage point's votes.
pub async fn probe_loop(ctx: Arc<Context>, mut prober: Prober, mut stop: broadcast::Receiver<()>) {
    let mut ticker = tokio::time::interval(ctx.settings.probe_interval());
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.recv() => return,
            _ = ticker.tick() => {}
        }
        let own = prober.round().await;
        if let Err(error) = votes::publish(&ctx.pool, &ctx.settings.region, &own).await {
            tracing::warn!(%error, "cannot publish votes");
        }
    }
}

/// Acquires or renews the lease on its interval; releases it on stop.
pub async fn lease_loop(ctx: Arc<Context>, mut stop: broadcast::Receiver<()>) {
    let ttl = Duration::from_millis(ctx.settings.lease.ttl_ms);
    let mut ticker =
        tokio::time::interval(Duration::from_millis(ctx.settings.lease.renew_interval_ms));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.recv() => break,
            _ = ticker.tick() => {}
        }
        let attempt_started = Instant::now();
        let before = ctx.state.lease();
        let view = match ctx.lease.try_acquire().await {
            Ok(view) => view,
            Err(error) => {
                tracing::warn!(%error, "cannot renew the lease");
                // Keep the old view; `may_act` stops trusting it at the deadline.
                continue;
            }
        };
        if view.held {
            // Trust the lease a little less than its TTL by the local clock.
            let deadline = attempt_started + ttl.mul_f64(0.8);
            if let Ok(mut d) = ctx.lease_deadline.lock() {
                *d = Some(deadline);
            }
        }
        if view.held != before.held || view.epoch != before.epoch && view.held {
            let name = if view.held {
                "lease_acquired"
            } else {
                "lease_lost"
            };
            tracing::info!(held = view.held, epoch = view.epoch, holder = %view.holder, "{name}");
            let mut entry = ctx.audit_entry(AuditKind::Lease, None, name, &ctx.controller_id, "ok");
            entry.lease_epoch = view.epoch;
            ctx.audit(entry).await;
        }
        ctx.state.set_lease(view);
    }
    if let Some(epoch) = ctx.may_act() {
        if let Err(error) = ctx.lease.release(epoch).await {
            tracing::warn!(%error, "cannot release the lease");
        }
    }
    ctx.state.set_lease(LeaseView::default());
}
