//! The public HTTP surface: the ledger API, health endpoints and the
//! OpenAPI document, behind the overload guards and telemetry layers.

pub mod api;
pub mod error;
pub mod extract;
pub mod health;
pub mod middleware;
mod openapi;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::openapi::ApiDoc;

use crate::config::Settings;
use crate::db::retry::Transactor;
use crate::db::Dialect;
use crate::metrics::Metrics;
use crate::region_gate::RegionGate;

/// Shared by every handler: one pointer, so cloning per request is one
/// atomic increment.
#[derive(Debug, Clone)]
pub struct AppState(Arc<AppStateInner>);

impl AppState {
    pub fn new(inner: AppStateInner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

/// What the handlers of one serving thread share: the parts common to the
/// whole process (reached through `Deref`), and the thread's own pool and
/// read batcher.
#[derive(Debug)]
pub struct AppStateInner {
    pub shared: SharedState,
    /// The serving thread's share of the request pool.
    pub transactor: Transactor,
    /// Account reads, batched under load (on the thread's pool).
    pub reads: crate::db::reads::AccountReader,
    /// The home-region bulkhead of the thread's pool.
    pub bulkhead: crate::db::bulkhead::Bulkhead,
}

impl std::ops::Deref for AppStateInner {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.shared
    }
}

/// The parts of the handlers' state that every serving thread shares.
#[derive(Debug, Clone)]
pub struct SharedState {
    pub settings: Arc<Settings>,
    /// Connections for `/readyz` and the region gate only.
    pub health_pool: crate::db::Pool,
    pub metrics: Metrics,
    /// In-flight API requests of the whole process, bounded by
    /// `max_concurrent_requests`.
    pub admission: Arc<middleware::Admission>,
    /// `X-Served-By-Region` and `X-Served-By-Instance`.
    pub placement: Option<middleware::Placement>,
    pub region_gate: RegionGate,
    /// Set by the refresher on the first successful connection.
    pub dialect: Arc<OnceLock<Dialect>>,
    /// Set on the shutdown signal: /readyz, /healthz/region and
    /// /healthz/instance answer 503.
    pub shutting_down: Arc<AtomicBool>,
    /// API keys and JWTs to principals.
    pub auth: crate::auth::Authenticator,
    /// The per-principal buckets (`None`: no limit).
    pub rate_limit: Option<crate::auth::rate_limit::RateLimit>,
    /// The database check of /readyz, cached and shared.
    pub readiness: Arc<health::ReadinessCheck>,
    /// Request pools not warm yet (`database_pool_warm`): while any is,
    /// /readyz and /healthz/region answer 503 `warming_up`.
    pub cold_pools: Arc<std::sync::atomic::AtomicUsize>,
    /// The home regions of the accounts this process has seen.
    pub homes: crate::db::bulkhead::HomeRegions,
}

impl SharedState {
    /// A serving thread's state: the shared parts and the thread's own pool
    /// and read batcher.
    pub fn with_pool(
        self,
        transactor: Transactor,
        reads: crate::db::reads::AccountReader,
    ) -> AppState {
        let bulkhead = crate::db::bulkhead::Bulkhead::new(
            transactor.pool.state().max_size,
            self.settings.database_pool_home_region_share,
            &self.settings.region,
            self.metrics.db_home_region_waiting.clone(),
        );
        AppState::new(AppStateInner {
            shared: self,
            transactor,
            reads,
            bulkhead,
        })
    }

    pub fn region(&self) -> &str {
        &self.settings.region
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

/// Builds the public router and the OpenAPI document from the same route
/// list, so that the document cannot drift from the code.
pub fn router(state: AppState) -> Router {
    let (api, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(api::create_account))
        .routes(routes!(api::get_account))
        .routes(routes!(api::create_transfer))
        .routes(routes!(api::get_transfer))
        .routes(routes!(api::ledger_summary))
        .split_for_parts();
    let (health, health_doc) = OpenApiRouter::new()
        .routes(routes!(health::livez))
        .routes(routes!(health::readyz))
        .routes(routes!(health::region_health))
        .routes(routes!(health::instance_health))
        .split_for_parts();
    openapi.merge(health_doc);
    let mut document = serde_json::to_value(&openapi).expect("the OpenAPI document serialises");
    openapi::link_operations(&mut document);
    openapi::secure_operations(&mut document);
    let openapi = Arc::new(document);

    // Overload guards and authentication on the API only: health probes
    // must keep answering under load (or an overloaded region would be
    // failed over), and the controllers and Route53 probe them without
    // credentials. Innermost first: authentication and the rate limit run
    // before any body is read; the guards' deadline covers them.
    let api = api
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authenticate,
        ))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            std::time::Duration::from_millis(state.settings.http_request_body_timeout_ms),
        ))
        .layer(DefaultBodyLimit::max(state.settings.max_request_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::guard,
        ));

    Router::new()
        .merge(api)
        .merge(health)
        .route(
            "/openapi.json",
            get(move || async move { Json(openapi.as_ref().clone()) }),
        )
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::observe,
        ))
        .with_state(state)
}
