//! Who is calling, and how often: every API request carries a credential
//! (`Authorization: Bearer <API key or JWT>`) that becomes a [`Principal`],
//! then takes a token from that principal's bucket.
//!
//! - [`api_keys`]: keys stored in the database (digest only), checked
//!   against an in-memory snapshot.
//! - [`jwt`]: JWTs verified against the issuer's JWKS.
//! - [`rate_limit`]: the per-principal token buckets.
//!
//! A missing credential and a wrong one get the same 401 body (only
//! `WWW-Authenticate` says `error="invalid_token"`, as RFC 6750 asks), and
//! every wrong API key costs the same work as a right one; the reason is
//! counted in `service_auth_refusals_total` and logged at debug level.

pub mod api_keys;
pub mod jwt;
pub mod rate_limit;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use crate::http::error::ApiError;
use crate::http::AppState;

/// The scope that allows the admin-only operations (the ledger summary,
/// reading any account or transfer).
pub const ADMIN_SCOPE: &str = "admin";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Owns the accounts it creates; scopes idempotency keys.
    pub name: Arc<str>,
    pub admin: bool,
}

impl Principal {
    pub fn new(name: &str, scopes: Scopes) -> Self {
        Self {
            name: Arc::from(name),
            admin: scopes.0.contains(ADMIN_SCOPE),
        }
    }

    /// Whether this principal may see what `owner` owns.
    pub fn may_read(&self, owner: &str) -> bool {
        self.admin || &*self.name == owner
    }
}

/// A set of scope names (space separated on the wire and in the database).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(BTreeSet<String>);

impl Scopes {
    pub fn parse(text: &str) -> Self {
        Self(text.split_whitespace().map(str::to_owned).collect())
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.iter().map(String::as_str).collect();
        f.write_str(&names.join(" "))
    }
}

/// Turns a request's credential into a principal.
#[derive(Debug, Clone)]
pub struct Authenticator {
    pub keys: api_keys::KeyStore,
    pub jwt: Option<jwt::JwtVerifier>,
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    /// Wrong, malformed, revoked or expired: the label says which.
    Invalid(&'static str),
    /// The API-key snapshot was never read (the database has not answered).
    Unavailable,
}

impl Authenticator {
    pub fn authenticate(&self, authorization: Option<&HeaderValue>) -> Result<Principal, Refusal> {
        let Some(value) = authorization else {
            return Err(Refusal::Missing);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or(Refusal::Invalid("not_bearer"))?;
        match &self.jwt {
            Some(jwt) if !token.starts_with(api_keys::KEY_PREFIX) => {
                jwt.verify(token).map_err(|reason| {
                    tracing::debug!(%reason, "JWT refused");
                    Refusal::Invalid("jwt")
                })
            }
            // Anything that is not a JWT is checked as an API key, even
            // when malformed, so that it costs the same work.
            _ => self.keys.verify(token).map_err(|refusal| match refusal {
                api_keys::KeyRefusal::NotLoaded => Refusal::Unavailable,
                api_keys::KeyRefusal::Malformed => Refusal::Invalid("malformed_key"),
                api_keys::KeyRefusal::UnknownOrWrong => Refusal::Invalid("wrong_key"),
            }),
        }
    }
}

/// The layer of the API routes: authenticate, then rate-limit. Health
/// probes and the OpenAPI document are outside it (the controllers and
/// Route53 probe without credentials).
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let principal = match state
        .auth
        .authenticate(request.headers().get(header::AUTHORIZATION))
    {
        Ok(principal) => principal,
        Err(refusal) => {
            let reason = match &refusal {
                Refusal::Missing => "missing",
                Refusal::Invalid(reason) => reason,
                Refusal::Unavailable => "keys_not_loaded",
            };
            state
                .metrics
                .auth_refusals
                .with_label_values(&[reason])
                .inc();
            tracing::debug!(reason, "request not authenticated");
            return match refusal {
                Refusal::Missing => ApiError::Unauthenticated { invalid: false },
                Refusal::Invalid(_) => ApiError::Unauthenticated { invalid: true },
                Refusal::Unavailable => ApiError::Unavailable(
                    "the API-key snapshot has not been read from the database yet".into(),
                ),
            }
            .into_response();
        }
    };
    let mut limit_headers = None;
    if let Some(limit) = &state.rate_limit {
        match limit.check(&principal.name) {
            rate_limit::Decision::Allowed { policy, state } => {
                limit_headers = Some((policy, state))
            }
            rate_limit::Decision::Limited {
                policy,
                state: limit_state,
                retry_after_s,
            } => {
                state.metrics.rate_limited.inc();
                let mut response = ApiError::RateLimited { retry_after_s }.into_response();
                let headers = response.headers_mut();
                headers.insert(RATELIMIT_POLICY, policy);
                headers.insert(RATELIMIT, limit_state);
                return response;
            }
        }
    }
    request.extensions_mut().insert(principal);
    let mut response = next.run(request).await;
    if let Some((policy, limit_state)) = limit_headers {
        let headers = response.headers_mut();
        headers.insert(RATELIMIT_POLICY, policy);
        headers.insert(RATELIMIT, limit_state);
    }
    response
}

/// `RateLimit-Policy` (IETF draft): the bucket's size and refill window.
pub const RATELIMIT_POLICY: &str = "ratelimit-policy";
/// `RateLimit` (IETF draft): what is left and when it refills.
pub const RATELIMIT: &str = "ratelimit";

/// The authenticated caller, for handlers behind [`authenticate`].
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or(ApiError::Unauthenticated { invalid: false })
    }
}

/// Keeps the API-key snapshot and the JWKS fresh, and forgets idle rate
/// buckets, until `stop`.
#[derive(Debug)]
pub struct Refresher {
    pub auth: Authenticator,
    pub rate_limit: Option<rate_limit::RateLimit>,
    pub pool: crate::db::Pool,
    pub key_interval: Duration,
    pub query_timeout: Duration,
}

impl Refresher {
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut keys = tokio::time::interval(self.key_interval);
        keys.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let jwks_interval = self.auth.jwt.as_ref().map_or(
            Duration::from_secs(3600),
            jwt::JwtVerifier::refresh_interval,
        );
        let mut jwks = tokio::time::interval(jwks_interval);
        jwks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buckets = tokio::time::interval(Duration::from_secs(60));
        let mut jwks_loaded = false;
        loop {
            tokio::select! {
                _ = keys.tick() => {
                    match tokio::time::timeout(self.query_timeout, self.auth.keys.refresh(&self.pool)).await {
                        Ok(Ok(count)) => tracing::trace!(count, "API keys read"),
                        Ok(Err(error)) => tracing::warn!(%error, "cannot read the API keys; keeping the last snapshot"),
                        Err(_) => tracing::warn!("reading the API keys timed out; keeping the last snapshot"),
                    }
                }
                _ = jwks.tick(), if self.auth.jwt.is_some() => {
                    let jwt = self.auth.jwt.as_ref().expect("checked");
                    match jwt.load().await {
                        Ok(count) => {
                            if !jwks_loaded {
                                tracing::info!(count, "JWKS loaded");
                            }
                            jwks_loaded = true;
                        }
                        Err(error) => tracing::warn!(%error, "cannot load the JWKS; keeping the last one"),
                    }
                    // Until the first load succeeds, try again soon.
                    if !jwks_loaded {
                        jwks.reset_after(Duration::from_secs(1));
                    }
                }
                _ = buckets.tick() => {
                    if let Some(limit) = &self.rate_limit {
                        limit.forget_idle();
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }
}
