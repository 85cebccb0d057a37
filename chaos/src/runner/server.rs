//! `chaos runner`: serves the load of one client region at a time for the
//! drills that ask (see the module above for the protocol).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use subtle::ConstantTimeEq;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use uuid::Uuid;

use super::{Clock, LoadRequest, RunnerEvent};
use crate::load::{self, LiveCounters};

/// Loads one runner serves at once (drills of several coordinators).
pub const MAX_RUNS: usize = 4;

/// How often the counts of the running load are sent.
pub const WINDOW: Duration = Duration::from_millis(250);

struct Shared {
    token: String,
    runs: Mutex<HashMap<Uuid, Arc<AtomicBool>>>,
    /// Set when the runner shuts down: every load stops.
    shutting_down: AtomicBool,
}

impl Shared {
    fn new(token: String) -> Arc<Self> {
        Arc::new(Self {
            token,
            runs: Mutex::default(),
            shutting_down: AtomicBool::new(false),
        })
    }

    fn stop_every_load(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        for abort in self.runs.lock().expect("runs lock").values() {
            abort.store(true, Ordering::Relaxed);
        }
    }
}

/// The runner's routes; every one but `/healthz` needs the token.
pub fn router(token: String) -> Router {
    routes(Shared::new(token))
}

fn routes(shared: Arc<Shared>) -> Router {
    let protected = Router::new()
        .route("/v1/clock", get(clock))
        .route("/v1/load", post(start_load))
        .route("/v1/load/{id}/abort", post(abort_load))
        .route_layer(middleware::from_fn_with_state(shared.clone(), authorize))
        .with_state(shared);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(protected)
}

/// Serves `router` on `listener`, over TLS when `tls` is given, until
/// `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    token: String,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let shared = Shared::new(token);
    let app = routes(shared.clone());
    // Loads in flight stop at once (their streams still end with what was
    // sent, and say why), so that shutting down waits for no load.
    let shutdown = async move {
        shutdown.await;
        shared.stop_every_load();
    };
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?
        }
        Some(acceptor) => {
            axum::serve(TlsListener { listener, acceptor }, app)
                .with_graceful_shutdown(shutdown)
                .await?
        }
    }
    Ok(())
}

async fn authorize(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(shared.token.as_bytes())) {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "missing or wrong runner token\n",
        )
            .into_response()
    }
}

async fn clock() -> Json<Clock> {
    Json(Clock {
        now: Utc::now(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

async fn start_load(
    State(shared): State<Arc<Shared>>,
    Json(request): Json<LoadRequest>,
) -> Response {
    let plan = &request.plan;
    if plan.client_regions.len() != 1 {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "plan.client_regions must name exactly one region",
        );
    }
    let region = &plan.client_regions[0];
    for (field, known) in [
        (
            "target.client_addresses",
            request.target.client_addresses.contains_key(region),
        ),
        (
            "target.preference",
            request.target.preference.contains_key(region),
        ),
    ] {
        if !known {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("{field} has no entry for {region}"),
            );
        }
    }
    let rate = plan.rate_per_client_region;
    if plan.accounts.len() < 2 || !rate.is_finite() || rate <= 0.0 {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the plan needs two accounts or more and a positive rate",
        );
    }
    let abort = Arc::new(AtomicBool::new(false));
    {
        let mut runs = shared.runs.lock().expect("runs lock");
        if shared.shutting_down.load(Ordering::Relaxed) {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the runner is shutting down",
            );
        }
        if runs.contains_key(&request.id) {
            return refuse(StatusCode::CONFLICT, "a load with this id runs already");
        }
        if runs.len() >= MAX_RUNS {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("{MAX_RUNS} loads run already"),
            );
        }
        runs.insert(request.id, abort.clone());
    }
    // t = 0 on this machine's monotonic clock; in the past when the
    // request came late, so that every operation keeps the drill's time.
    let until = request.start_at - Utc::now();
    let (t0, late_ms) = match until.to_std() {
        Ok(wait) => (Instant::now() + wait, 0.0),
        Err(_) => {
            let late = (-until).to_std().unwrap_or_default();
            (
                Instant::now()
                    .checked_sub(late)
                    .unwrap_or_else(Instant::now),
                late.as_secs_f64() * 1000.0,
            )
        }
    };
    tracing::info!(id = %request.id, %region, late_ms, "load accepted");
    let (lines, receiver) = mpsc::channel::<Bytes>(256);
    tokio::spawn(run(shared, request, t0, late_ms, abort, lines));
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|line| (Ok::<_, Infallible>(line), receiver))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Runs the load and streams its events; a coordinator gone (the stream
/// dropped) stops the load.
async fn run(
    shared: Arc<Shared>,
    request: LoadRequest,
    t0: Instant,
    late_ms: f64,
    abort: Arc<AtomicBool>,
    lines: mpsc::Sender<Bytes>,
) {
    let id = request.id;
    let region = request.plan.client_regions[0].clone();
    let live = Arc::new(LiveCounters::default());
    let mut connected = send(&lines, &RunnerEvent::Started { late_ms }).await;
    // The DNS watch of the region from here, until the load has ended.
    let watch_stop = Arc::new(AtomicBool::new(false));
    let watch = tokio::spawn(crate::drill::schedule::watch_dns(
        request.target.clone(),
        vec![region.clone()],
        t0,
        watch_stop.clone(),
    ));
    let mut load = tokio::spawn(load::run(
        request.plan,
        request.target,
        t0,
        live.clone(),
        abort.clone(),
    ));
    let mut ticker = tokio::time::interval(WINDOW);
    let history = loop {
        tokio::select! {
            _ = ticker.tick() => {
                connected = connected && send_window(&lines, &live).await;
                if !connected && !abort.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%id, %region, "the coordinator is gone; the load stops");
                }
            }
            history = &mut load => break history,
        }
    };
    let (history, failed) = match history {
        Ok(history) => (history, None),
        Err(error) => {
            tracing::error!(%id, %region, %error, "the load failed");
            (
                Vec::new(),
                Some(format!("the load failed on the runner: {error}")),
            )
        }
    };
    watch_stop.store(true, Ordering::Relaxed);
    let observations = watch.await.unwrap_or_default();
    connected = connected && send_window(&lines, &live).await;
    let operations = history.len();
    for operation in history {
        if !connected {
            break;
        }
        connected = send(&lines, &RunnerEvent::Operation(Box::new(operation))).await;
    }
    let dns_answers = observations.len();
    for observation in observations {
        if !connected {
            break;
        }
        connected = send(&lines, &RunnerEvent::Dns(observation)).await;
    }
    if connected {
        let stopped = failed.or_else(|| {
            shared
                .shutting_down
                .load(Ordering::Relaxed)
                .then(|| "the runner was shut down during the load".to_owned())
        });
        send(
            &lines,
            &RunnerEvent::Done {
                operations,
                stopped,
            },
        )
        .await;
    }
    shared.runs.lock().expect("runs lock").remove(&id);
    tracing::info!(%id, %region, operations, dns_answers, connected, "load done");
}

async fn send_window(lines: &mpsc::Sender<Bytes>, live: &LiveCounters) -> bool {
    let (ok, failed) = live
        .take_window()
        .values()
        .fold((0, 0), |(ok, failed), (o, f)| (ok + o, failed + f));
    send(lines, &RunnerEvent::Window { ok, failed }).await
}

/// One NDJSON line; false once the coordinator is gone.
async fn send(lines: &mpsc::Sender<Bytes>, event: &RunnerEvent) -> bool {
    let mut line = serde_json::to_vec(event).expect("runner events serialize");
    line.push(b'\n');
    lines.send(Bytes::from(line)).await.is_ok()
}

async fn abort_load(State(shared): State<Arc<Shared>>, Path(id): Path<Uuid>) -> Response {
    match shared.runs.lock().expect("runs lock").get(&id) {
        Some(abort) => {
            abort.store(true, Ordering::Relaxed);
            tracing::info!(%id, "load aborted by the coordinator");
            (StatusCode::OK, "aborted\n").into_response()
        }
        None => refuse(StatusCode::NOT_FOUND, "no load runs with this id"),
    }
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, format!("{why}\n")).into_response()
}

/// TCP connections after their TLS handshake; a failed or slow handshake
/// is dropped without stopping the others.
struct TlsListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

/// Longest a client may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
                Ok(Ok(stream)) => return (stream, peer),
                Ok(Err(error)) => tracing::warn!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::warn!(%peer, "TLS handshake timed out"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// The acceptor of `--tls-cert` and `--tls-key` (PEM files).
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<TlsAcceptor> {
    use anyhow::Context;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the certificate chain {}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{} holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the private key {}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .context("the certificate and the key do not make a TLS identity")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
