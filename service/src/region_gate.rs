//! The data-plane gate: this region's drain flag, cached and refreshed in
//! the background so that `/healthz/region` answers without a query and is
//! at most one refresh interval plus one query stale.
//!
//! The failover controller writes `region_state`; the service only reads it.
//! Route53 health checks probe `/healthz/region`, so a drained region leaves
//! DNS even when the controller or the Route53 API is down.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use crate::db::{Dialect, Pool};
use crate::metrics::Metrics;

/// What the region signals say about this instance's region:
/// `/healthz/region` (admission) and `/healthz/instance` (health, where
/// `Drained` still counts as well).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RegionVerdict {
    Serving,
    Drained { reason: String, actor: String },
    DatabaseUnreachable { error: String },
    ShuttingDown,
}

#[derive(Debug, Default)]
struct GateState {
    drained: Option<(String, String)>,
    last_success: Option<Instant>,
    last_error: Option<String>,
}

/// A cheap, cloneable handle on the cached drain flag.
#[derive(Debug, Clone)]
pub struct RegionGate {
    state: Arc<RwLock<GateState>>,
    /// A cached answer older than this counts as "database unreachable".
    validity: Duration,
    /// The drain flag as last read, for the per-response `Connection:
    /// close` (one relaxed load) ...
    drained_now: Arc<AtomicBool>,
    /// ... and for the connections, which close when it turns on.
    drained: Arc<watch::Sender<bool>>,
}

impl RegionGate {
    pub fn new(validity: Duration) -> Self {
        Self {
            state: Arc::default(),
            validity,
            drained_now: Arc::default(),
            drained: Arc::new(watch::channel(false).0),
        }
    }

    /// Whether the last read of `region_state` said drained. A drained
    /// region still serves whoever reaches it (its instances are well), but
    /// tells every client to reconnect, so that clients with pooled
    /// keep-alive connections resolve the name again and leave.
    pub fn is_drained(&self) -> bool {
        self.drained_now.load(Ordering::Relaxed)
    }

    /// The drain flag as it changes (from the refresher's reads).
    pub fn drained_changes(&self) -> watch::Receiver<bool> {
        self.drained.subscribe()
    }

    /// The current verdict from the cache.
    pub fn verdict(&self) -> RegionVerdict {
        let state = self.state.read().expect("gate lock is never poisoned");
        match state.last_success {
            Some(at) if at.elapsed() <= self.validity => match &state.drained {
                Some((reason, actor)) => RegionVerdict::Drained {
                    reason: reason.clone(),
                    actor: actor.clone(),
                },
                None => RegionVerdict::Serving,
            },
            _ => RegionVerdict::DatabaseUnreachable {
                error: state
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "no successful read of region_state yet".into()),
            },
        }
    }

    fn record(&self, result: Result<Option<(String, String)>, String>) {
        let mut state = self.state.write().expect("gate lock is never poisoned");
        match result {
            Ok(drained) => {
                let flag = drained.is_some();
                self.drained_now.store(flag, Ordering::Relaxed);
                self.drained.send_if_modified(|current| {
                    let changed = *current != flag;
                    *current = flag;
                    changed
                });
                state.drained = drained;
                state.last_success = Some(Instant::now());
                state.last_error = None;
            }
            Err(error) => {
                // A failed read invalidates the cache at once: a region whose
                // instances cannot reach the database must leave DNS.
                state.last_success = None;
                state.last_error = Some(error);
            }
        }
    }
}

/// Everything the refresh loop needs.
#[derive(Debug)]
pub struct Refresher {
    pub gate: RegionGate,
    pub pool: Pool,
    pub region: String,
    pub interval: Duration,
    pub query_timeout: Duration,
    pub metrics: Metrics,
    pub dialect: Arc<std::sync::OnceLock<Dialect>>,
}

impl Refresher {
    /// Refreshes until `stop` changes.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => return,
            }
            let result = match tokio::time::timeout(self.query_timeout, self.read_once()).await {
                Ok(Ok(drained)) => Ok(drained),
                Ok(Err(error)) => Err(error.to_string()),
                Err(_) => Err(format!(
                    "region_state read took longer than {} ms",
                    self.query_timeout.as_millis()
                )),
            };
            if let Err(error) = &result {
                tracing::warn!(%error, "region gate refresh failed");
            }
            self.metrics
                .region_drained
                .set(i64::from(matches!(result, Ok(Some(_)))));
            self.gate.record(result);
        }
    }

    async fn read_once(&self) -> Result<Option<(String, String)>, sqlx::Error> {
        let dialect = self.dialect.clone();
        let region = self.region.clone();
        self.pool
            .run(move |connection| {
                Box::pin(async move {
                    if dialect.get().is_none() {
                        let detected = Dialect::detect(&mut *connection).await?;
                        tracing::info!(dialect = ?detected, "database dialect detected");
                        let _ = dialect.set(detected);
                    }
                    let row: Option<(bool, String, String)> = sqlx::query_as(
                        "SELECT drained, reason, actor FROM region_state WHERE region = $1",
                    )
                    .bind(&region)
                    .fetch_optional(connection)
                    .await?;
                    Ok(row.and_then(|(drained, reason, actor)| drained.then_some((reason, actor))))
                })
            })
            .await
    }
}
