//! The admin port: status page, `/status` JSON, `/metrics`, `/healthz`,
//! `/readyz`, and the authenticated admin API under `/v1/admin`.
//!
//! Layout: this module (router, read-only endpoints), [`admin`] (bearer
//! auth and overrides), [`page`] (the HTML status page).

pub mod admin;
pub mod page;

use std::sync::Arc;

use axum::extract::State as AxumState;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use sqlx::PgPool;

use crate::secret::Secret;
use crate::state::State;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpContext {
    pub state: Arc<State>,
    pub pool: PgPool,
    pub admin_token: Secret,
    pub regions: Vec<String>,
    pub controller_id: String,
    /// `decision.min_healthy_regions`: the admin API refuses a drain that
    /// this rule would block.
    pub min_healthy_regions: usize,
}

/// Builds the router of the admin port.
pub fn router(ctx: HttpContext) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/status", get(status_json))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/v1/admin/overrides", get(admin::list).post(admin::create))
        .route("/v1/admin/overrides/{id}", delete(admin::clear))
        .with_state(ctx)
}

async fn status_json(AxumState(ctx): AxumState<HttpContext>) -> Response {
    Json(ctx.state.status()).into_response()
}

async fn status_page(AxumState(ctx): AxumState<HttpContext>) -> Html<String> {
    Html(page::render(&ctx.state.status()))
}

async fn metrics(AxumState(ctx): AxumState<HttpContext>) -> Response {
    // The view's age as of this scrape, even while the loop is stuck on the
    // database.
    ctx.state.view_health(tokio::time::Instant::now());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        ctx.state.metrics.render(),
    )
        .into_response()
}

/// Ready while serving with a view the database still refreshes; the 503
/// body says why not (Kubernetes then takes the replica out of the Service,
/// and `/healthz` keeps it from being restarted for it).
async fn readyz(AxumState(ctx): AxumState<HttpContext>) -> Response {
    match ctx.state.readiness() {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}
