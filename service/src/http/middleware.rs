//! Cross-cutting layers: placement headers, request ids and traces,
//! metrics, and the answers of the overload guards and fallbacks.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::BoxError;
use tracing::Instrument;

use super::error::ApiError;
use super::AppState;

/// Region that served the response.
pub const SERVED_BY_REGION: &str = "x-served-by-region";
/// Instance that served the response.
pub const SERVED_BY_INSTANCE: &str = "x-served-by-instance";
const REQUEST_ID: &str = "x-request-id";
/// Marks a shed request between the overload guard and [`observe`], which
/// counts and removes it.
const SHED: &str = "x-shed";

/// The one layer every request passes through, outermost: sets or keeps the
/// request id, opens the request's span (with the caller's `traceparent`),
/// records the metrics, and stamps the id and the placement headers on every
/// response, errors included. One layer instead of five: each tower layer
/// and `from_fn` costs an allocation and a clone per request, which showed
/// in the read benchmark.
pub(crate) async fn observe(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = match request.headers().get(REQUEST_ID) {
        Some(id) => id.clone(),
        None => {
            let id = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .expect("a UUID is a valid header value");
            request.headers_mut().insert(REQUEST_ID, id.clone());
            id
        }
    };
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let span = tracing::info_span!(
        "request",
        method = %method,
        path = %request.uri().path(),
        request_id = %String::from_utf8_lossy(request_id.as_bytes()),
        traceparent = %request
            .headers()
            .get("traceparent")
            .map(|value| String::from_utf8_lossy(value.as_bytes()))
            .unwrap_or_default(),
    );
    let metrics = &state.metrics;
    metrics.http_requests_in_flight.inc();
    let mut response = next.run(request).instrument(span.clone()).await;
    metrics.http_requests_in_flight.dec();

    let elapsed = started.elapsed();
    let status = response.status();
    let route = route.as_ref().map_or("unmatched", |path| path.as_str());
    metrics
        .http_request_duration
        .with_label_values(&[route, method.as_str()])
        .observe(elapsed.as_secs_f64());
    metrics
        .http_requests
        .with_label_values(&[route, method.as_str(), status.as_str()])
        .inc();
    let headers = response.headers_mut();
    if status == StatusCode::SERVICE_UNAVAILABLE && headers.remove(SHED).is_some() {
        metrics.requests_shed.inc();
    }
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::error!(parent: &span, status = status.as_u16(), latency_ms, "request failed");
    } else {
        tracing::debug!(parent: &span, status = status.as_u16(), latency_ms, "request finished");
    }
    headers.insert(REQUEST_ID, request_id);
    if let Some(placement) = &state.placement {
        headers.insert(SERVED_BY_REGION, placement.region.clone());
        headers.insert(SERVED_BY_INSTANCE, placement.instance.clone());
    }
    response
}

/// The placement headers' values, built once.
#[derive(Debug, Clone)]
pub struct Placement {
    region: HeaderValue,
    instance: HeaderValue,
}

impl Placement {
    /// `None` when the region or instance id cannot be a header value.
    pub fn new(region: &str, instance: &str) -> Option<Self> {
        Some(Self {
            region: HeaderValue::from_str(region).ok()?,
            instance: HeaderValue::from_str(instance).ok()?,
        })
    }
}

/// Maps the tower guards' errors to problem documents.
pub(crate) async fn overload_error(error: BoxError) -> Response {
    if error.is::<tower::load_shed::error::Overloaded>() {
        let mut response = ApiError::Overloaded.into_response();
        response
            .headers_mut()
            .insert(SHED, HeaderValue::from_static("1"));
        return response;
    }
    if error.is::<tower::timeout::error::Elapsed>() {
        return ApiError::Timeout.into_response();
    }
    ApiError::Internal(error.to_string()).into_response()
}

pub(crate) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}
