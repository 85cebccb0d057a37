//! `chaos up`'s control API, through which `chaos drill --attach` drives a
//! deployment that lives in another process (the faults are that process's
//! proxies and children, so they can only be applied there).
//!
//! - `GET /topology`: [`DeploymentInfo`] (addresses, topology, database URL).
//! - `POST /faults`: a [`FaultAction`] to apply or undo; 204 when done.
//! - `GET /leader`: `{"leader": "<region>"}` (or `null`).
//!
//! Protection is deliberately minimal, for a local tool: the listener must be
//! a loopback address, and every call carries `Authorization: Bearer <token>`
//! with the random token written only into the 0600 state file
//! `<run dir>/deployment.json`. Anything else is a 401 that changes nothing.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::Mutex as AsyncMutex;

use crate::deployment::{Deployment, DeploymentInfo, FaultAction};

/// Where `chaos up` listens unless told otherwise.
pub const DEFAULT_CONTROL_ADDRESS: &str = "127.0.0.1:7450";
/// Name of the state file in the run directory.
pub const STATE_FILE: &str = "deployment.json";

/// What `chaos up` writes into `<run dir>/deployment.json` for `chaos drill
/// --attach <run dir>` (and people) to find the control API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateFile {
    pub control_url: String,
    /// The bearer token every control call must carry.
    pub token: String,
    /// The `chaos up` process, to tell a stale file from a live one.
    pub pid: u32,
    pub run_dir: PathBuf,
}

impl StateFile {
    /// Writes the file readable by its owner only: it holds the token.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        // A file left by an earlier run may have other permissions: replace it.
        let _ = std::fs::remove_file(path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(serde_json::to_string_pretty(self)?.as_bytes())?;
        file.write_all(b"\n")
    }

    pub fn read(path: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("invalid {}", path.display()))
    }
}

/// Why the control API could not start.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("control address {0} is not a loopback address: the control API changes the deployment and must not be reachable from other machines")]
    NotLoopback(SocketAddr),
    #[error("cannot bind the control API on {address}: {source}")]
    Io {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// A bound, not yet serving, control API. Binding comes first so that a
/// busy or wrong address fails before the deployment is brought up.
#[derive(Debug)]
pub struct ControlServer {
    listener: TcpListener,
    address: SocketAddr,
}

impl ControlServer {
    /// Binds `address` (port 0 picks a free port); refuses non-loopback ones.
    pub async fn bind(address: SocketAddr) -> Result<Self, BindError> {
        if !address.ip().is_loopback() {
            return Err(BindError::NotLoopback(address));
        }
        let io = |source| BindError::Io { address, source };
        let listener = TcpListener::bind(address).await.map_err(io)?;
        let address = listener.local_addr().map_err(io)?;
        Ok(Self { listener, address })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Serves until `shutdown` completes, then finishes in-flight calls.
    pub async fn serve(
        self,
        deployment: Arc<AsyncMutex<Deployment>>,
        token: String,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, router(deployment, token))
            .with_graceful_shutdown(shutdown)
            .await
    }
}

#[derive(Clone)]
struct ControlState {
    deployment: Arc<AsyncMutex<Deployment>>,
    token: Arc<str>,
}

/// The control API's routes, every one behind the token check.
pub fn router(deployment: Arc<AsyncMutex<Deployment>>, token: String) -> Router {
    let state = ControlState {
        deployment,
        token: token.into(),
    };
    Router::new()
        .route("/topology", get(topology))
        .route("/faults", post(fault))
        .route("/leader", get(leader))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// The control API's errors: 4xx say what was wrong, 5xx say nothing
/// internal (the cause is logged).
#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error("missing or wrong bearer token (it is in <run dir>/deployment.json)")]
    Unauthorized,
    #[error("no region {0} in this deployment")]
    UnknownRegion(String),
    #[error("the fault could not be applied")]
    Internal(#[source] anyhow::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::UnknownRegion(_) => StatusCode::BAD_REQUEST,
            Self::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "control API call failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (status, self.to_string()).into_response()
    }
}

async fn require_token(
    State(state): State<ControlState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !bool::from(presented.as_bytes().ct_eq(state.token.as_bytes())) {
        return Err(ApiError::Unauthorized);
    }
    Ok(next.run(request).await)
}

async fn topology(State(state): State<ControlState>) -> Json<DeploymentInfo> {
    Json(state.deployment.lock().await.info())
}

async fn fault(
    State(state): State<ControlState>,
    Json(action): Json<FaultAction>,
) -> Result<StatusCode, ApiError> {
    let mut deployment = state.deployment.lock().await;
    if let Some(target) = action.target() {
        if !deployment.has_region(target) {
            return Err(ApiError::UnknownRegion(target.to_owned()));
        }
    }
    tracing::info!(?action, "control API: fault");
    deployment
        .apply_async(&action)
        .await
        .map_err(ApiError::Internal)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /leader`'s body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaderAnswer {
    pub leader: Option<String>,
}

async fn leader(State(state): State<ControlState>) -> Json<LeaderAnswer> {
    let leader = state.deployment.lock().await.leader().await;
    Json(LeaderAnswer { leader })
}
