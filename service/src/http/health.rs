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

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::region_gate::RegionVerdict;

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
        (status = 200, description = "Ready: the database answered within the bound and no shutdown is under way", body = HealthReport),
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
    let pool = &state.health_pool;
    let check = pool
        .run(|connection| Box::pin(sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(connection)));
    match tokio::time::timeout(state.settings.readiness_timeout(), check).await {
        Ok(Ok(_)) => (StatusCode::OK, Json(report(&state, "ok", None))),
        Ok(Err(error)) => unavailable(&state, "database_unreachable", error.to_string()),
        Err(_) => unavailable(
            &state,
            "database_unreachable",
            format!(
                "the database did not answer within {} ms",
                state.settings.readiness_timeout_ms
            ),
        ),
    }
}

#[utoipa::path(get, path = "/healthz/region", tag = "health",
    responses(
        (status = 200, description = "This region serves: the database is reachable and the region is not drained", body = HealthReport),
        (status = 503, description = "Take this region out of DNS: drained, database unreachable, or shutting down", body = HealthReport),
    ))]
pub async fn region_health(State(state): State<AppState>) -> (StatusCode, Json<HealthReport>) {
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

fn unavailable(state: &AppState, status: &str, reason: String) -> (StatusCode, Json<HealthReport>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(report(state, status, Some(reason))),
    )
}
