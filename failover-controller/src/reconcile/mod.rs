//! The loops beside the HTTP server, in the shape of a kube-rs controller:
//! each round reads the world (votes, overrides, drain flags, lease), decides,
//! acts if this replica leads, and publishes what it saw into [`State`].
//!
//! Layout:
//! - this module: the [`Context`], the wait for the database at start, the
//!   probe loop and the lease loop;
//! - [`decide`]: one decision round and the drain-flag actions;
//! - `publish`: the DNS view, metrics and status snapshot of a round;
//! - [`route53_sync`]: converges the Route53 records to the drain flags.

pub mod decide;
mod publish;
pub mod route53_sync;

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use sqlx::PgPool;
use tokio::sync::{broadcast, Notify};
use tokio::time::{Instant, MissedTickBehavior};

use crate::actions::route53::Route53Records;
use crate::audit::{self, AuditEntry, AuditKind};
use crate::config::Settings;
use crate::lease::{Lease, LeaseView};
use crate::probe::Prober;
use crate::state::State;
use crate::{db, votes};

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

/// The first wait for the database, doubled after every failed attempt up
/// to [`DATABASE_RETRY_MAX`], with jitter.
const DATABASE_RETRY_FIRST: Duration = Duration::from_millis(250);
const DATABASE_RETRY_MAX: Duration = Duration::from_secs(5);

/// Waits until the database answers and the controller's migrations are
/// applied, retrying with jittered exponential backoff, so that a replica
/// started during a database incident waits (serving `/healthz`, not
/// ready, DNS SERVFAIL) instead of exiting into a crash loop. Returns false
/// when stopped first.
pub async fn wait_for_database(ctx: &Context, stop: &mut broadcast::Receiver<()>) -> bool {
    let attempt_timeout = Duration::from_millis(ctx.settings.lease.ttl_ms);
    let mut delay = DATABASE_RETRY_FIRST;
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let checked = tokio::select! {
            _ = stop.recv() => return false,
            checked = tokio::time::timeout(attempt_timeout, db::check_schema(&ctx.pool)) => checked,
        };
        let (problem, error) = match checked {
            Ok(Ok(())) => {
                ctx.state.set_database_problem(None);
                tracing::info!(attempts = attempt, "database ready: starting the loops");
                return true;
            }
            Ok(Err(error)) => (error.problem().to_string(), error.to_string()),
            Err(_) => (
                format!(
                    "database did not answer within {} ms",
                    attempt_timeout.as_millis()
                ),
                "database check timed out".to_string(),
            ),
        };
        let wait = delay.mul_f64(rand::thread_rng().gen_range(0.5..=1.0));
        tracing::warn!(%error, %problem, attempt, retry_in_ms = wait.as_millis() as u64, "waiting for the database (not ready, DNS answers SERVFAIL)");
        ctx.state.set_database_problem(Some(problem));
        let mut status = ctx.state.status();
        status.last_error = Some(error);
        ctx.state.set_status(status);
        tokio::select! {
            _ = stop.recv() => return false,
            _ = tokio::time::sleep(wait) => {}
        }
        delay = (delay * 2).min(DATABASE_RETRY_MAX);
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
        // Bounded, so that a database that stops answering does not stop
        // the probes (their hysteresis keeps counting).
        let published = tokio::time::timeout(
            ctx.settings.probe_interval() * 2,
            votes::publish(&ctx.pool, &ctx.settings.region, &own),
        )
        .await;
        match published {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "cannot publish votes"),
            Err(_) => tracing::warn!("cannot publish votes: the database did not answer"),
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
        // Keep the old view on failure; `may_act` stops trusting it at the
        // deadline. Bounded by the TTL: past it the lease is lost anyway.
        let view = match tokio::time::timeout(ttl, ctx.lease.try_acquire()).await {
            Ok(Ok(view)) => view,
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot renew the lease");
                continue;
            }
            Err(_) => {
                tracing::warn!("cannot renew the lease: the database did not answer");
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
