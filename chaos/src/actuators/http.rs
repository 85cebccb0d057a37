//! HTTP hooks: a fault started and stopped by calling URLs (the webhook of
//! an existing chaos platform). A header's value is a literal or
//! `{env: NAME}`; the journal and the report hold the name, never the value.
//! An answer other than 2xx, or none within the timeout, fails the call.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};

/// The most of an answer's body a run keeps: its first bytes.
pub const BODY_LIMIT: usize = 64 * 1024;

/// One call of a hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpHook {
    #[serde(default = "default_method")]
    pub method: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, HeaderValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// A header's value: written in the drill file, or read from the drill's
/// environment when the call is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HeaderValue {
    Literal(String),
    Env { env: String },
}

/// One call as the report shows it (no header values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpRun {
    pub method: String,
    pub url: String,
    /// `None` when no answer came (refused, timed out).
    pub status: Option<u16>,
    pub elapsed_s: f64,
    /// The first [`BODY_LIMIT`] bytes of the answer (lossy UTF-8).
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl HttpRun {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s)) && self.error.is_none()
    }

    pub fn into_result(self) -> anyhow::Result<Self> {
        if self.succeeded() {
            return Ok(self);
        }
        match (&self.error, self.status) {
            (Some(error), _) => bail!("{} {}: {error}", self.method, self.url),
            (None, status) => bail!(
                "{} {} answered {}: {:?}",
                self.method,
                self.url,
                status.unwrap_or_default(),
                self.body.chars().take(300).collect::<String>()
            ),
        }
    }
}

fn default_method() -> String {
    "POST".into()
}

impl HttpHook {
    /// Checks the method and URL; `field` is the hook's path.
    pub fn validate(&self, field: &str) -> Result<(), String> {
        if reqwest::Method::from_bytes(self.method.as_bytes()).is_err() {
            return Err(format!(
                "field `{field}.method`: {:?} is not an HTTP method",
                self.method
            ));
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://"))
            || reqwest::Url::parse(&self.url).is_err()
        {
            return Err(format!(
                "field `{field}.url`: {:?} is not an http(s) URL",
                self.url
            ));
        }
        for (name, value) in &self.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!("field `{field}.headers.{name}`: not a header name"));
            }
            if let HeaderValue::Env { env } = value {
                if env.trim().is_empty() {
                    return Err(format!(
                        "field `{field}.headers.{name}.env`: must name a variable"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Makes the call with `timeout`. A header whose variable is not set is an
/// error before anything is sent.
pub async fn call(hook: &HttpHook, timeout: Duration) -> anyhow::Result<HttpRun> {
    let method = reqwest::Method::from_bytes(hook.method.as_bytes())
        .map_err(|_| anyhow!("{:?} is not an HTTP method", hook.method))?;
    let mut request = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .context("cannot build the HTTP client")?
        .request(method, &hook.url);
    for (name, value) in &hook.headers {
        let value = match value {
            HeaderValue::Literal(text) => text.clone(),
            HeaderValue::Env { env } => std::env::var(env).map_err(|_| {
                anyhow!(
                    "header {name} of {} {}: environment variable {env} is not set",
                    hook.method,
                    hook.url
                )
            })?,
        };
        request = request.header(name, value);
    }
    if let Some(body) = &hook.body {
        request = request.body(body.clone());
    }
    let started = Instant::now();
    let mut run = HttpRun {
        method: hook.method.clone(),
        url: hook.url.clone(),
        status: None,
        elapsed_s: 0.0,
        body: String::new(),
        error: None,
    };
    match request.send().await {
        Ok(response) => {
            run.status = Some(response.status().as_u16());
            match response.bytes().await {
                Ok(bytes) => {
                    let kept = &bytes[..bytes.len().min(BODY_LIMIT)];
                    run.body = String::from_utf8_lossy(kept).into_owned();
                }
                Err(error) => run.error = Some(format!("reading the answer: {error}")),
            }
        }
        Err(error) if error.is_timeout() => {
            run.error = Some(format!("no answer within {:.1} s", timeout.as_secs_f64()))
        }
        Err(error) => run.error = Some(format!("{error}")),
    }
    run.elapsed_s = started.elapsed().as_secs_f64();
    Ok(run)
}
