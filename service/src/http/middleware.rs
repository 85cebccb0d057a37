//! Cross-cutting layers: placement headers, request ids and traces,
//! metrics, and the answers of the overload guards and fallbacks.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::error::ApiError;
use super::AppState;
use crate::telemetry::RequestContext;

/// Region that served the response.
pub const SERVED_BY_REGION: &str = "x-served-by-region";
/// Instance that served the response.
pub const SERVED_BY_INSTANCE: &str = "x-served-by-instance";
const REQUEST_ID: &str = "x-request-id";

/// The one layer every request passes through, outermost: takes the
/// caller's request id or makes one, attaches it with the method, path and
/// the caller's `traceparent` to every line the request logs
/// ([`RequestContext`]), records the metrics, and stamps the id and the
/// placement headers on every response, errors included. One layer instead of five: each tower layer
/// and `from_fn` costs an allocation and a clone per request, which showed
/// in the read benchmark.
pub(crate) async fn observe(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    // Nothing behind this layer reads the id from the request: the request
    // context carries it to the logs, and the response gets it below.
    let request_id = match request.headers().get(REQUEST_ID) {
        Some(id) => id.clone(),
        None => HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
            .expect("a UUID is a valid header value"),
    };
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let context = Arc::new(RequestContext {
        request_id: request_id.clone(),
        method: method.clone(),
        path: request.uri().path().to_owned(),
        traceparent: request.headers().get("traceparent").cloned(),
    });
    let metrics = &state.metrics;
    metrics.http_requests_in_flight.inc();
    let mut response = Arc::clone(&context).scope(next.run(request)).await;
    metrics.http_requests_in_flight.dec();

    let elapsed = started.elapsed();
    let status = response.status();
    // Labels from a bounded set only: the matched route (never the raw
    // path), a known method or OTHER (a client can send any token as a
    // method), the status code.
    let route = route.as_ref().map_or("unmatched", |path| path.as_str());
    let method_label = method_label(&method);
    metrics
        .http_request_duration
        .with_label_values(&[route, method_label])
        .observe(elapsed.as_secs_f64());
    metrics
        .http_requests
        .with_label_values(&[route, method_label, status.as_str()])
        .inc();
    let headers = response.headers_mut();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    context.in_scope(|| {
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), latency_ms, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), latency_ms, "request finished");
        }
    });
    headers.insert(REQUEST_ID, request_id);
    if let Some(placement) = &state.placement {
        headers.insert(SERVED_BY_REGION, placement.region.clone());
        headers.insert(SERVED_BY_INSTANCE, placement.instance.clone());
    }
    // A drained region answers, then closes the connection (hyper honours
    // the header), so that a pooled client resolves the name again.
    if state.region_gate.is_drained() {
        headers.insert(
            axum::http::header::CONNECTION,
            HeaderValue::from_static("close"),
        );
    }
    response
}

/// The metrics label of a method: the standard ones by name, any other
/// (extension methods are unbounded) as `OTHER`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "OTHER",
    }
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

/// The overload guards of the API routes, in one layer: beyond
/// `max_concurrent_requests` in flight a request is shed at once (503,
/// `Retry-After`), never queued; an admitted one gets `request_timeout_ms`
/// for everything, body included, and is then cancelled (503; a cancelled
/// transaction is rolled back and its connection closed). Health probes are
/// outside it, so load can never fail them.
pub(crate) async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(_admitted) = state.admission.try_admit() else {
        state.metrics.requests_shed.inc();
        return ApiError::Overloaded.into_response();
    };
    match tokio::time::timeout(state.settings.request_timeout(), next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// Requests admitted by [`guard`] and not finished yet, with their bound.
#[derive(Debug)]
pub struct Admission {
    in_flight: AtomicUsize,
    limit: usize,
}

impl Admission {
    pub fn new(limit: usize) -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            limit,
        }
    }

    /// A slot until the returned guard drops, or `None` when all are taken.
    fn try_admit(&self) -> Option<Admitted<'_>> {
        let mut current = self.in_flight.load(Ordering::Relaxed);
        loop {
            if current >= self.limit {
                return None;
            }
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(Admitted(self)),
                Err(actual) => current = actual,
            }
        }
    }
}

struct Admitted<'a>(&'a Admission);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(crate) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}
