//! Converges the Route53 records this controller owns to the drain flags:
//! a drained region's record is removed, a serving region's record is put
//! back as configured (drift repair included). Runs when a flag changes, on
//! the drift interval, and, after a pass that did not converge, again after
//! a backoff that starts at the decision interval; only on the leader, and
//! every call of every change is made under a confirmed lease.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::Context;
use crate::actions::drain_flag;
use crate::actions::route53::{ChangeOutcome, LeaseCheck, Route53Error, Route53Records};
use crate::audit::AuditKind;
use crate::lease::LeaseError;
use crate::state::Event;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    /// Change batches applied and INSYNC.
    pub changed: usize,
    /// Changes that failed or were refused: the pass is retried soon.
    pub failed: usize,
    /// The lease could not be confirmed: the pass stopped acting.
    pub fenced: bool,
}

impl SyncReport {
    /// Whether the records are as the drain flags want them.
    pub fn converged(&self) -> bool {
        self.failed == 0 && !self.fenced
    }
}

/// Runs until stopped.
pub async fn route53_loop(
    ctx: Arc<Context>,
    records: Arc<Route53Records>,
    mut stop: broadcast::Receiver<()>,
) {
    let drift_every = Duration::from_millis(ctx.settings.route53.drift_check_interval_ms);
    let retry_base = Duration::from_millis(ctx.settings.decision.interval_ms);
    let mut last_flags: BTreeMap<String, bool> = BTreeMap::new();
    let mut failed_passes = 0;
    let mut next_pass = Instant::now() + drift_every;
    loop {
        tokio::select! {
            _ = stop.recv() => return,
            _ = ctx.route53_wake.notified() => {}
            _ = tokio::time::sleep_until(next_pass) => {}
        }
        if ctx.settings.dry_run || ctx.may_act().is_none() {
            failed_passes = 0;
            next_pass = Instant::now() + drift_every;
            continue;
        }
        let converged = match sync_once(&ctx, &records, &mut last_flags).await {
            Ok(report) => report.converged(),
            Err(error) => {
                tracing::warn!(%error, "route53 sync failed");
                false
            }
        };
        next_pass = if converged {
            failed_passes = 0;
            Instant::now() + drift_every
        } else {
            failed_passes += 1;
            let delay = retry_delay(retry_base, failed_passes, drift_every);
            tracing::info!(
                delay_ms = delay.as_millis() as u64,
                failed_passes,
                "route53 pass retried after a backoff"
            );
            Instant::now() + delay
        };
    }
}

/// The wait before the next pass after `failed_passes` (at least 1) passes
/// in a row that did not converge: `base` (the decision interval), doubled
/// per failure, at most `max` (the drift interval), with jitter that keeps
/// between half and all of it.
pub fn retry_delay(base: Duration, failed_passes: u32, max: Duration) -> Duration {
    let exponent = failed_passes.saturating_sub(1).min(16);
    let full = base.saturating_mul(1 << exponent).min(max);
    full.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

/// The lease as the Route53 calls confirm it: this replica's local trust
/// deadline (a part of the TTL after the last renewal began) and the time
/// the database says is left, whichever ends first.
struct LeaderLease<'a> {
    ctx: &'a Context,
    epoch: i64,
}

#[async_trait::async_trait]
impl LeaseCheck for LeaderLease<'_> {
    async fn confirm(&self) -> Result<Instant, String> {
        let local = match self.ctx.may_act() {
            Some(epoch) if epoch == self.epoch => {
                self.ctx.lease_deadline.lock().ok().and_then(|d| *d)
            }
            _ => None,
        };
        let Some(local) = local else {
            return Err(format!(
                "lease epoch {} is no longer trusted locally",
                self.epoch
            ));
        };
        let asked = Instant::now();
        match self.ctx.lease.remaining(self.epoch).await {
            Ok(left) => Ok(local.min(asked + left)),
            Err(error) => {
                if matches!(error, LeaseError::NotHeld { .. }) {
                    // Someone else leads now: stop acting until the lease
                    // loop says otherwise.
                    if let Ok(mut deadline) = self.ctx.lease_deadline.lock() {
                        *deadline = None;
                    }
                }
                Err(error.to_string())
            }
        }
    }
}

/// One convergence pass. Public for tests.
pub async fn sync_once(
    ctx: &Context,
    records: &Route53Records,
    last_flags: &mut BTreeMap<String, bool>,
) -> Result<SyncReport, Route53Error> {
    let mut report = SyncReport::default();
    let flags = match drain_flag::read_all(&ctx.pool).await {
        Ok(flags) => flags,
        Err(error) => {
            tracing::warn!(%error, "cannot read drain flags for route53 sync");
            report.failed += 1;
            return Ok(report);
        }
    };
    let Some(epoch) = ctx.may_act() else {
        report.fenced = true;
        return Ok(report);
    };
    let lease = LeaderLease { ctx, epoch };
    let present = records.list_owned().await?;
    for region in ctx.settings.region_names() {
        let drained = flags.get(&region).map(|f| f.drained).unwrap_or(false);
        if drained && !present.contains_key(&region) {
            last_flags.insert(region, drained);
            continue;
        }
        // Serving: restore also rewrites a record that drifted.
        let name = if drained {
            "route53_remove"
        } else {
            "route53_restore"
        };
        let triggered = last_flags.get(&region) != Some(&drained);
        if ctx.may_act() != Some(epoch) {
            report.fenced = true;
            break;
        }
        let started = Instant::now();
        let result = if drained {
            records.remove(&region, &lease).await
        } else {
            records.restore(&region, &lease).await
        };
        let outcome = match &result {
            Ok(ChangeOutcome::AlreadyInPlace) => {
                last_flags.insert(region, drained);
                continue;
            }
            Ok(ChangeOutcome::Changed { .. }) => "ok",
            Err(Route53Error::LastServing { .. }) => "refused_last_serving",
            Err(Route53Error::LeaseLost { .. }) => "fenced",
            Err(_) => "error",
        };
        match outcome {
            "ok" => {
                report.changed += 1;
                last_flags.insert(region.clone(), drained);
            }
            "fenced" => report.fenced = true,
            _ => report.failed += 1,
        }
        let elapsed = started.elapsed();
        let action = if triggered {
            name.to_string()
        } else {
            format!("{name}_drift_repair")
        };
        let detail = match &result {
            Ok(ChangeOutcome::Changed { change_id }) => format!("change {change_id} INSYNC"),
            Err(e) => e.to_string(),
            _ => String::new(),
        };
        record_action(
            ctx, &region, name, &action, outcome, &detail, elapsed, epoch,
        )
        .await;
        if report.fenced {
            // This replica no longer leads: the new leader reads the
            // records back and decides for itself.
            break;
        }
    }
    Ok(report)
}

/// Counts, logs, and audits one Route53 action.
#[allow(clippy::too_many_arguments)]
async fn record_action(
    ctx: &Context,
    region: &str,
    name: &str,
    action: &str,
    outcome: &str,
    detail: &str,
    elapsed: Duration,
    epoch: i64,
) {
    let metrics = &ctx.state.metrics;
    metrics
        .actions_total
        .with_label_values(&[name, outcome])
        .inc();
    metrics
        .action_duration_seconds
        .with_label_values(&[name])
        .observe(elapsed.as_secs_f64());
    tracing::info!(%region, %action, outcome, %detail, "route53 action");
    ctx.state.push_event(Event {
        at: Utc::now(),
        region: Some(region.to_string()),
        kind: "action".into(),
        name: action.to_string(),
        actor: "automation".into(),
        outcome: outcome.into(),
        detail: detail.to_string(),
        duration_ms: Some(elapsed.as_secs_f64() * 1000.0),
    });
    let mut entry = ctx.audit_entry(
        AuditKind::Action,
        Some(region),
        action,
        "automation",
        outcome,
    );
    entry.lease_epoch = epoch;
    entry.detail = detail.to_string();
    ctx.audit(entry).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_the_decision_interval_to_the_drift_interval() {
        let base = Duration::from_millis(250);
        let max = Duration::from_secs(60);
        for _ in 0..100 {
            let first = retry_delay(base, 1, max);
            assert!(first >= base / 2 && first <= base, "{first:?}");
            let third = retry_delay(base, 3, max);
            assert!(third >= base * 2 && third <= base * 4, "{third:?}");
            let late = retry_delay(base, 40, max);
            assert!(late >= max / 2 && late <= max, "{late:?}");
        }
    }
}
