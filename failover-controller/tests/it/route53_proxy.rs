//! An HTTP proxy between the real aws-sdk-route53 client and the moto
//! server, with faults a test switches on and off: throttle every
//! ChangeResourceRecordSets, reject the next few with a non-retryable
//! error, or answer GetChange with PENDING (moto always says INSYNC). It
//! logs every request it sees, so a test can tell what a controller sent
//! and when.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

/// The Route53 operations the proxy tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Change,
    GetChange,
    Other,
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub operation: Operation,
    /// Passed on to moto (false: answered with an injected fault).
    pub forwarded: bool,
}

#[derive(Default)]
struct Faults {
    throttle_changes: AtomicBool,
    reject_changes: AtomicUsize,
    pending_changes: AtomicBool,
}

/// A running proxy; it stops with the test's runtime.
pub struct Route53Proxy {
    pub addr: SocketAddr,
    faults: Arc<Faults>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Route53Proxy {
    pub async fn start(upstream: &str) -> Self {
        let faults = Arc::new(Faults::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let client = reqwest::Client::new();
        let upstream = upstream.to_string();
        let (f, s) = (Arc::clone(&faults), Arc::clone(&seen));
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (client, upstream, faults, seen) = (
                    client.clone(),
                    upstream.clone(),
                    Arc::clone(&f),
                    Arc::clone(&s),
                );
                async move {
                    let operation = operation_of(&method, uri.path());
                    let injected = inject(&faults, operation);
                    seen.lock().unwrap().push(Seen {
                        at: Instant::now(),
                        operation,
                        forwarded: injected.is_none(),
                    });
                    if let Some(response) = injected {
                        return response;
                    }
                    let pending = operation == Operation::GetChange
                        && faults.pending_changes.load(Ordering::SeqCst);
                    forward(&client, &upstream, method, &uri, &headers, body, pending).await
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, faults, seen }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers every ChangeResourceRecordSets with Throttling while on.
    pub fn throttle_changes(&self, on: bool) {
        self.faults.throttle_changes.store(on, Ordering::SeqCst);
    }

    /// Rejects the next `count` ChangeResourceRecordSets (not retryable).
    pub fn reject_changes(&self, count: usize) {
        self.faults.reject_changes.store(count, Ordering::SeqCst);
    }

    /// Answers GetChange with PENDING while on.
    pub fn pending_changes(&self, on: bool) {
        self.faults.pending_changes.store(on, Ordering::SeqCst);
    }

    /// Requests of `operation` seen, forwarded or not.
    pub fn count(&self, operation: Operation) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.operation == operation)
            .count()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn operation_of(method: &Method, path: &str) -> Operation {
    let path = path.trim_end_matches('/');
    if *method == Method::POST && path.ends_with("/rrset") {
        Operation::Change
    } else if *method == Method::GET && path.contains("/change/") {
        Operation::GetChange
    } else {
        Operation::Other
    }
}

fn inject(faults: &Faults, operation: Operation) -> Option<Response> {
    if operation != Operation::Change {
        return None;
    }
    if faults.throttle_changes.load(Ordering::SeqCst) {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "Throttling",
            "Rate exceeded",
        ));
    }
    let rejected = faults
        .reject_changes
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    rejected.then(|| {
        error(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "injected rejection",
        )
    })
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let xml = format!(
        "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
         <Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
         <RequestId>injected</RequestId></ErrorResponse>"
    );
    (status, [("content-type", "text/xml")], xml).into_response()
}

async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    pending: bool,
) -> Response {
    let url = format!(
        "{upstream}{}",
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut request = client.request(method, url).body(body);
    for (name, value) in headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let content_type = response.headers().get("content-type").cloned();
    let mut bytes = response.bytes().await.unwrap();
    if pending {
        let text = String::from_utf8_lossy(&bytes).replace("INSYNC", "PENDING");
        bytes = Bytes::from(text);
    }
    let mut out = (status, bytes).into_response();
    if let Some(content_type) = content_type {
        out.headers_mut().insert("content-type", content_type);
    }
    out
}
