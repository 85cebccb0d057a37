//! Health endpoints: `/livez` and `/readyz` for Kubernetes; two region
//! signals that differ only in the drain flag:
//!
//! - `/healthz/region` is **admission**: should this region take new
//!   traffic? 503 when it is drained, cannot reach the database, or is
//!   shutting down. The Route53 health check of the region's latency record
//!   probes it, so a drained region stays out of DNS even when the
//!   controller or the Route53 API is down.
//! - `/healthz/instance` is **health**: could this instance serve? 200 while
//!   it reaches the database and is not shutting down, drained or not (the
//!   body says `drained`). The failover controllers probe it, so a region
//!   the controller drained can still prove it is well and come back after
//!   the hold-down; probing admission instead would read the controller's
//!   own drain as a failure and keep the region out forever.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use serde::Serialize;
use utoipa::ToSchema;

use super::{AppState, SharedState};
use crate::region_gate::RegionVerdict;

/// The database check of `/readyz`, made at most once per
/// `readiness_cache_ms` whatever the number of callers: callers within the
/// interval get the last answer, callers while a check is in flight wait
/// for that one. A flood of probes (or of anyone: the endpoint is public)
/// therefore costs the database one query per interval, and cannot take
/// the health pool's two connections from the region gate, whose failure
/// would take the region out of DNS.
#[derive(Debug)]
pub struct ReadinessCheck {
    valid_for: Duration,
    state: Mutex<CheckState>,
}

type CheckFuture = Shared<BoxFuture<'static, Result<(), String>>>;

#[derive(Default)]
struct CheckState {
    last: Option<(Instant, Result<(), String>)>,
    in_flight: Option<CheckFuture>,
}

impl std::fmt::Debug for CheckState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckState")
            .field("last", &self.last)
            .field("in_flight", &self.in_flight.is_some())
            .finish()
    }
}

impl ReadinessCheck {
    pub fn new(valid_for: Duration) -> Self {
        Self {
            valid_for,
            state: Mutex::default(),
        }
    }

    /// Whether the database answered `SELECT 1` within the readiness bound.
    pub async fn check(&self, shared: &SharedState) -> Result<(), String> {
        let check = {
            let mut state = self.state.lock().expect("never poisoned");
            if let Some((at, result)) = &state.last {
                if at.elapsed() < self.valid_for {
                    return result.clone();
                }
            }
            match &state.in_flight {
                Some(check) => check.clone(),
                None => {
                    let check = database_check(shared).boxed().shared();
                    state.in_flight = Some(check.clone());
                    check
                }
            }
        };
        let result = check.clone().await;
        let mut state = self.state.lock().expect("never poisoned");
        if state
            .in_flight
            .as_ref()
            .is_some_and(|current| current.ptr_eq(&check))
        {
            state.in_flight = None;
            state.last = Some((Instant::now(), result.clone()));
        }
        result
    }
}

fn database_check(
    shared: &SharedState,
) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
    let pool = shared.health_pool.clone();
    let bound = shared.settings.readiness_timeout();
    let checks = shared.metrics.readiness_checks.clone();
    async move {
        checks.inc();
        let check = pool.run(|connection| {
            Box::pin(sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(connection))
        });
        match tokio::time::timeout(bound, check).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!(
                "the database did not answer within {} ms",
                bound.as_millis()
            )),
        }
    }
}

/// Body of the health endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthReport {
    /// `ok`, or why not.
    pub status: String,
    pub region: String,
    pub instance: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// On `/healthz/instance` only: whether the controller has drained this
    /// region (the instance is healthy either way).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drained: Option<bool>,
}

#[utoipa::path(get, path = "/livez", tag = "health",
    responses((status = 200, description = "The process is alive", body = HealthReport)))]
pub async fn livez(State(state): State<AppState>) -> Json<HealthReport> {
    Json(report(&state, "ok", None))
}

#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready: the request pools are open (database_pool_warm), the API keys were read, the database answered within the bound (one check per readiness_cache_ms, shared by every caller) and no shutdown is under way", body = HealthReport),
        (status = 503, description = "Not ready", body = HealthReport),
    ))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<HealthReport>) {
    if state.is_shutting_down() {
        return unavailable(
            &state,
            "shutting_down",
            "the instance is shutting down".into(),
        );
    }
    if let Some(cold) = warming_up(&state) {
        return cold;
    }
    if !state.auth.keys.is_loaded() {
        return unavailable(
            &state,
            "keys_not_loaded",
            "the API keys have not been read from the database yet".into(),
        );
    }
    match state.readiness.check(&state).await {
        Ok(()) => (StatusCode::OK, Json(report(&state, "ok", None))),
        Err(error) => unavailable(&state, "database_unreachable", error),
    }
}

#[utoipa::path(get, path = "/healthz/region", tag = "health",
    responses(
        (status = 200, description = "This region serves: the database is reachable and the region is not drained", body = HealthReport),
        (status = 503, description = "Take this region out of DNS: drained, database unreachable, request pools still opening, or shutting down", body = HealthReport),
    ))]
pub async fn region_health(State(state): State<AppState>) -> (StatusCode, Json<HealthReport>) {
    if let Some(cold) = warming_up(&state) {
        return cold;
    }
    match verdict(&state) {
        RegionVerdict::Serving => (StatusCode::OK, Json(report(&state, "ok", None))),
        RegionVerdict::Drained { reason, actor } => {
            unavailable(&state, "drained", drain_reason(&actor, &reason))
        }
        cannot_serve => cannot_serve_answer(&state, cannot_serve),
    }
}

#[utoipa::path(get, path = "/healthz/instance", tag = "health",
    responses(
        (status = 200, description = "This instance could serve: the database is reachable and no shutdown is under way, whether or not its region is drained (see `drained`)", body = HealthReport),
        (status = 503, description = "This instance cannot serve: database unreachable, or shutting down", body = HealthReport),
    ))]
pub async fn instance_health(State(state): State<AppState>) -> (StatusCode, Json<HealthReport>) {
    let (drained, reason) = match verdict(&state) {
        RegionVerdict::Serving => (false, None),
        RegionVerdict::Drained { reason, actor } => (true, Some(drain_reason(&actor, &reason))),
        cannot_serve => return cannot_serve_answer(&state, cannot_serve),
    };
    let mut body = report(&state, "ok", reason);
    body.drained = Some(drained);
    (StatusCode::OK, Json(body))
}

/// The region gate's verdict, or shutting down.
fn verdict(state: &AppState) -> RegionVerdict {
    if state.is_shutting_down() {
        return RegionVerdict::ShuttingDown;
    }
    state.region_gate.verdict()
}

/// The `reason` of a drained region, on both signals.
fn drain_reason(actor: &str, reason: &str) -> String {
    format!("region drained by {actor}: {reason}")
}

/// The 503 of both region signals when the instance cannot serve at all.
fn cannot_serve_answer(
    state: &AppState,
    verdict: RegionVerdict,
) -> (StatusCode, Json<HealthReport>) {
    match verdict {
        RegionVerdict::DatabaseUnreachable { error } => {
            unavailable(state, "database_unreachable", error)
        }
        RegionVerdict::ShuttingDown => unavailable(
            state,
            "shutting_down",
            "the instance is shutting down".into(),
        ),
        RegionVerdict::Serving | RegionVerdict::Drained { .. } => {
            unreachable!("both handlers answer a serving or drained region themselves")
        }
    }
}

fn report(state: &AppState, status: &str, reason: Option<String>) -> HealthReport {
    HealthReport {
        status: status.to_owned(),
        region: state.region().to_owned(),
        instance: state.settings.instance_id.clone(),
        reason,
        drained: None,
    }
}

/// The 503 of /readyz and /healthz/region while a request pool is still
/// opening its connections (`database_pool_warm`).
fn warming_up(state: &AppState) -> Option<(StatusCode, Json<HealthReport>)> {
    let cold = state.cold_pools.load(std::sync::atomic::Ordering::Acquire);
    (cold > 0).then(|| {
        unavailable(
            state,
            "warming_up",
            format!("{cold} request pool(s) still opening their database connections"),
        )
    })
}

fn unavailable(state: &AppState, status: &str, reason: String) -> (StatusCode, Json<HealthReport>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(report(state, status, Some(reason))),
    )
}
