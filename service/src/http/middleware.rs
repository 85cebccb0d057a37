//! Cross-cutting layers: placement headers, request ids and traces,
//! metrics, and the answers of the overload guards and fallbacks.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::{BoxError, ServiceBuilder};
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use super::error::ApiError;
use super::AppState;

/// Region that served the response.
pub const SERVED_BY_REGION: &str = "x-served-by-region";
/// Instance that served the response.
pub const SERVED_BY_INSTANCE: &str = "x-served-by-instance";
const REQUEST_ID: &str = "x-request-id";

/// Adds the placement headers to every response, errors included.
pub(crate) async fn stamp_placement(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if let Ok(region) = HeaderValue::from_str(state.region()) {
        headers.insert(SERVED_BY_REGION, region);
    }
    if let Ok(instance) = HeaderValue::from_str(&state.settings.instance_id) {
        headers.insert(SERVED_BY_INSTANCE, instance);
    }
    response
}

/// Requests by route and status, latency, in-flight.
pub(crate) async fn record_metrics(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let metrics = &state.metrics;
    metrics.http_requests_in_flight.inc();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.http_requests_in_flight.dec();
    metrics
        .http_request_duration
        .with_label_values(&[&route, &method])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests
        .with_label_values(&[&route, &method, response.status().as_str()])
        .inc();
    if response.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE
        && response.headers().get("x-shed").is_some()
    {
        metrics.requests_shed.inc();
    }
    response
}

/// Maps the tower guards' errors to problem documents.
pub(crate) async fn overload_error(error: BoxError) -> Response {
    if error.is::<tower::load_shed::error::Overloaded>() {
        let mut response = ApiError::Overloaded.into_response();
        response
            .headers_mut()
            .insert("x-shed", HeaderValue::from_static("1"));
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

/// A span per request with its id and, when present, the W3C `traceparent`.
pub(crate) fn trace_layer(
) -> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, impl Fn(&Request) -> tracing::Span + Clone>
{
    TraceLayer::new_for_http().make_span_with(|request: &Request| {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
            request_id = %header(REQUEST_ID),
            traceparent = %header("traceparent"),
        )
    })
}

/// Sets `x-request-id` when the caller did not, and echoes it back.
pub(crate) fn request_id_layers() -> ServiceBuilder<
    tower::layer::util::Stack<
        PropagateRequestIdLayer,
        tower::layer::util::Stack<SetRequestIdLayer<MakeRequestUuid>, tower::layer::util::Identity>,
    >,
> {
    let name = HeaderName::from_static(REQUEST_ID);
    ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(name.clone(), MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(name))
}
