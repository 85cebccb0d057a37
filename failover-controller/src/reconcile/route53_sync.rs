//! Converges the Route53 records this controller owns to the drain flags:
//! a drained region's record is removed, a serving region's record is put
//! back as configured. Runs when a flag changes and on the drift interval,
//! only on the leader, and checks the lease before every change.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::Context;
use crate::actions::drain_flag;
use crate::actions::route53::{ChangeOutcome, Route53Error, Route53Records};
use crate::audit::AuditKind;
use crate::state::Event;

/// Runs until stopped.
pub async fn route53_loop(
    ctx: Arc<Context>,
    records: Arc<Route53Records>,
    mut stop: broadcast::Receiver<()>,
) {
    let drift_every = Duration::from_millis(ctx.settings.route53.drift_check_interval_ms);
    let mut last_flags: BTreeMap<String, bool> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = stop.recv() => return,
            _ = ctx.route53_wake.notified() => {}
            _ = tokio::time::sleep(drift_every) => {}
        }
        if ctx.settings.dry_run || ctx.may_act().is_none() {
            continue;
        }
        if let Err(error) = sync_once(&ctx, &records, &mut last_flags).await {
            tracing::warn!(%error, "route53 sync failed");
        }
    }
}

/// One convergence pass. Public for tests.
pub async fn sync_once(
    ctx: &Context,
    records: &Route53Records,
    last_flags: &mut BTreeMap<String, bool>,
) -> Result<(), Route53Error> {
    let flags = match drain_flag::read_all(&ctx.pool).await {
        Ok(flags) => flags,
        Err(error) => {
            tracing::warn!(%error, "cannot read drain flags for route53 sync");
            return Ok(());
        }
    };
    let present = records.list_owned().await?;
    for region in ctx.settings.region_names() {
        let drained = flags.get(&region).map(|f| f.drained).unwrap_or(false);
        let triggered = last_flags.insert(region.clone(), drained) != Some(drained);
        let has_record = present.contains_key(&region);
        let (name, wanted_change) = match (drained, has_record) {
            (true, true) => ("route53_remove", true),
            // Serving: restore also rewrites a record that drifted.
            (false, _) => ("route53_restore", true),
            (true, false) => ("route53_remove", false),
        };
        if !wanted_change {
            continue;
        }
        let Some(epoch) = ctx.may_act() else {
            return Ok(());
        };
        if ctx.lease.verify(epoch).await.is_err() {
            return Ok(());
        }
        let started = Instant::now();
        let result = if drained {
            records.remove(&region).await
        } else {
            records.restore(&region).await
        };
        let outcome = match &result {
            Ok(ChangeOutcome::AlreadyInPlace) => continue,
            Ok(ChangeOutcome::Changed { .. }) => "ok",
            Err(Route53Error::LastServing { .. }) => "refused_last_serving",
            Err(_) => "error",
        };
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
            region: Some(region.clone()),
            kind: "action".into(),
            name: action.clone(),
            actor: "automation".into(),
            outcome: outcome.into(),
            detail: detail.clone(),
            duration_ms: Some(elapsed.as_secs_f64() * 1000.0),
        });
        let mut entry = ctx.audit_entry(
            AuditKind::Action,
            Some(&region),
            &action,
            "automation",
            outcome,
        );
        entry.lease_epoch = epoch;
        entry.detail = detail;
        ctx.audit(entry).await;
    }
    Ok(())
}
