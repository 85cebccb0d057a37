//! The fault driver: how a drill learns the deployment's addresses, applies
//! and undoes faults and finds the leader, whether the deployment lives in
//! this process or in a running `chaos up` reached over its control API.
//! Both ends speak [`FaultAction`]; only [`Deployment::apply`] interprets it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::sync::Mutex as AsyncMutex;

use crate::control::{LeaderAnswer, StateFile, STATE_FILE};
use crate::deployment::{Deployment, DeploymentInfo, FaultAction};

/// Where a drill's faults go.
#[derive(Debug, Clone)]
pub enum FaultDriver {
    /// A deployment this process brought up (and will tear down).
    InProcess(Arc<AsyncMutex<Deployment>>),
    /// A running `chaos up`, which the drill never shuts down.
    Remote(ControlClient),
    /// A deployment known only from its target file (no `local` section):
    /// only actuators act on it.
    Target(Arc<crate::target::deployment::TargetDriver>),
}

impl FaultDriver {
    pub async fn info(&self) -> anyhow::Result<DeploymentInfo> {
        match self {
            Self::InProcess(deployment) => Ok(deployment.lock().await.info()),
            Self::Remote(client) => client.topology().await,
            Self::Target(driver) => Ok(driver.info.clone()),
        }
    }

    /// Applies `action`; an actuator's action is carried out by this
    /// process, whatever the driver.
    pub async fn apply(&self, action: &FaultAction) -> anyhow::Result<()> {
        if let Some((result, _)) = crate::actuators::apply(action).await {
            return result;
        }
        match self {
            Self::InProcess(deployment) => deployment.lock().await.apply_async(action).await,
            Self::Remote(client) => client.apply(action).await,
            Self::Target(driver) => driver.apply(action),
        }
    }

    /// The region whose controller holds the lease, if one is known.
    pub async fn leader(&self) -> anyhow::Result<Option<String>> {
        match self {
            Self::InProcess(deployment) => Ok(deployment.lock().await.leader().await),
            Self::Remote(client) => client.leader().await,
            Self::Target(driver) => driver.leader().await,
        }
    }
}

/// A client of `chaos up`'s control API.
#[derive(Debug, Clone)]
pub struct ControlClient {
    /// `http://127.0.0.1:7450`, without a trailing slash.
    url: String,
    token: String,
    http: reqwest::Client,
    /// The state file the token came from, when attached by run directory:
    /// the fault journal names it (never the token itself).
    state_file: Option<std::path::PathBuf>,
}

impl ControlClient {
    pub fn new(url: &str, token: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http,
            state_file: None,
        })
    }

    /// `target` is the control URL (then `token` is required) or the run
    /// directory of `chaos up` (or its `deployment.json`), which holds both.
    pub fn attach(target: &str, token: Option<&str>) -> anyhow::Result<Self> {
        if target.starts_with("http://") || target.starts_with("https://") {
            let Some(token) = token else {
                bail!(
                    "attaching by URL needs the control token: pass --control-token (or set \
                     CHAOS_CONTROL_TOKEN) with the token from <run dir>/{STATE_FILE}, or attach \
                     by run directory instead"
                );
            };
            return Self::new(target, token);
        }
        let path = Path::new(target);
        let file = if path.is_dir() {
            path.join(STATE_FILE)
        } else {
            path.to_owned()
        };
        let state = StateFile::read(&file).with_context(|| {
            format!("cannot attach to {target}: is `chaos up` running with this run directory?")
        })?;
        let mut client = Self::new(&state.control_url, token.unwrap_or(&state.token))?;
        client.state_file = Some(std::path::absolute(&file).unwrap_or(file));
        Ok(client)
    }

    /// Where the token is, when attached by run directory.
    pub fn state_file(&self) -> Option<&Path> {
        self.state_file.as_deref()
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn topology(&self) -> anyhow::Result<DeploymentInfo> {
        let response = self.send(self.http.get(self.endpoint("topology"))).await?;
        response
            .json()
            .await
            .context("invalid topology from the control API")
    }

    pub async fn apply(&self, action: &FaultAction) -> anyhow::Result<()> {
        self.send(self.http.post(self.endpoint("faults")).json(action))
            .await?;
        Ok(())
    }

    pub async fn leader(&self) -> anyhow::Result<Option<String>> {
        let response = self.send(self.http.get(self.endpoint("leader"))).await?;
        let answer: LeaderAnswer = response
            .json()
            .await
            .context("invalid leader answer from the control API")?;
        Ok(answer.leader)
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}/{path}", self.url)
    }

    /// Sends with the token; a non-2xx answer becomes an error with its body.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the control API at {}", self.url))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        bail!("the control API at {} answered {status}: {body}", self.url)
    }
}
