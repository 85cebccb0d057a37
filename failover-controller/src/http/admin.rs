//! The admin API: manual overrides behind a bearer token. The token is
//! compared as SHA-256 digests in constant time, so the time an answer
//! takes says nothing about the configured token, its length included.
//! Unauthenticated calls get 401 and change nothing. A drain that a safety
//! rule would block is refused up front with 409, and nothing is stored
//! (the refusal is in the audit log). Every error is an RFC 9457 problem
//! document.

use std::collections::BTreeSet;

use axum::extract::{Path, State as AxumState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::HttpContext;
use crate::actions::drain_flag;
use crate::audit::{self, AuditEntry, AuditKind};
use crate::overrides::{self, NewOverride, OverrideKind};
use crate::planner::RuleCheck;
use crate::quorum::QuorumVerdict;
use crate::safety;
use crate::state::Event;

/// Errors of the admin API: 4xx say what was wrong, 5xx say nothing inside.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("no active override with that id")]
    NotFound,
    /// A safety rule blocks the override now; nothing was stored.
    #[error("refused by {}: {}", .0.rule, .0.detail)]
    Refused(RuleCheck),
    /// This replica cannot judge the override yet (no decision round has
    /// read the votes since it started); retrying shortly helps.
    #[error("{0}")]
    Unavailable(&'static str),
    #[error("internal error")]
    Internal(#[from] crate::db::DbError),
}

/// An RFC 9457 problem document; `rule` names the safety rule behind a 409.
#[derive(Debug, Serialize)]
struct Problem {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = match &self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::Refused(_) => (
                StatusCode::CONFLICT,
                "refused-by-safety-rule",
                "Refused by a safety rule",
            ),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready"),
            ApiError::Internal(cause) => {
                tracing::error!(error = %cause, "admin API internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                )
            }
        };
        let problem = Problem {
            kind: format!("/problems/{slug}"),
            title,
            status: status.as_u16(),
            detail: self.to_string(),
            rule: match &self {
                ApiError::Refused(check) => Some(check.rule.clone()),
                _ => None,
            },
        };
        let mut response = (status, Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// Checks the bearer token; an empty configured token disables the API.
fn authorize(ctx: &HttpContext, headers: &HeaderMap) -> Result<(), ApiError> {
    let expected = ctx.admin_token.expose().as_bytes();
    if expected.is_empty() {
        return Err(ApiError::Unauthorized);
    }
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .as_bytes();
    if token_matches(given, expected) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Compares two tokens as SHA-256 digests, in constant time: both digests
/// have the same length whatever the tokens', so a wrong guess of any
/// length takes as long as one of the right length.
fn token_matches(given: &[u8], expected: &[u8]) -> bool {
    let given = Sha256::digest(given);
    let expected = Sha256::digest(expected);
    given.as_slice().ct_eq(expected.as_slice()).into()
}

/// Refuses a drain of `region` that `min_healthy_regions` would block now:
/// counted against the drain flags, the other drain overrides in force and
/// the regions this replica's last round saw up (a region without quorum
/// is unknown and does not count). The planner still checks every drain
/// when it acts; this tells the operator at once instead of storing an
/// override that would only be reported as `drain_blocked`.
async fn admit_drain(ctx: &HttpContext, region: &str) -> Result<(), ApiError> {
    let status = ctx.state.status();
    if status.generated_at.is_none() {
        return Err(ApiError::Unavailable(
            "this replica has not read the votes since it started; retry in a second",
        ));
    }
    let seen_up: BTreeSet<String> = status
        .regions
        .into_iter()
        .filter(|r| r.verdict == QuorumVerdict::Up)
        .map(|r| r.region)
        .collect();
    let drained: BTreeSet<String> = drain_flag::read_all(&ctx.pool)
        .await?
        .into_iter()
        .filter(|(_, flag)| flag.drained)
        .map(|(r, _)| r)
        .collect();
    let requested: BTreeSet<String> = overrides::active(&ctx.pool)
        .await?
        .into_iter()
        .filter(|o| o.kind == OverrideKind::Drain)
        .filter_map(|o| o.region)
        .collect();
    safety::admit_manual_drain(
        region,
        &ctx.regions,
        &drained,
        &seen_up,
        &requested,
        ctx.min_healthy_regions,
    )
    .map_err(ApiError::Refused)
}

/// `GET /v1/admin/overrides`: the overrides in force.
pub async fn list(
    AxumState(ctx): AxumState<HttpContext>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers)?;
    let active = overrides::active(&ctx.pool).await?;
    Ok(Json(json!({ "overrides": active })).into_response())
}

/// `POST /v1/admin/overrides`: drain, undrain, freeze or unfreeze.
pub async fn create(
    AxumState(ctx): AxumState<HttpContext>,
    headers: HeaderMap,
    body: Result<Json<NewOverride>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers)?;
    let Json(new) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if new.reason.trim().is_empty() {
        return Err(ApiError::BadRequest("reason: must not be empty".into()));
    }
    if new.actor.trim().is_empty() {
        return Err(ApiError::BadRequest("actor: must not be empty".into()));
    }
    if new.ttl_seconds == 0 || new.ttl_seconds > 7 * 24 * 3600 {
        return Err(ApiError::BadRequest(
            "ttl_seconds: must be between 1 and 604800".into(),
        ));
    }
    match (&new.region, new.kind.needs_region()) {
        (Some(region), true) if ctx.regions.contains(region) => {}
        (Some(region), true) => {
            return Err(ApiError::BadRequest(format!(
                "region: {region:?} is not a configured region"
            )))
        }
        (None, true) => {
            return Err(ApiError::BadRequest(format!(
                "region: required for {}",
                new.kind.as_str()
            )))
        }
        (Some(_), false) => {
            return Err(ApiError::BadRequest(format!(
                "region: not allowed for {}",
                new.kind.as_str()
            )))
        }
        (None, false) => {}
    }
    if let (OverrideKind::Drain, Some(region)) = (new.kind, &new.region) {
        match admit_drain(&ctx, region).await {
            Ok(()) => {}
            Err(refused @ ApiError::Refused(_)) => {
                record_refusal(&ctx, &new, &refused).await?;
                return Err(refused);
            }
            Err(other) => return Err(other),
        }
    }
    let created = overrides::create(&ctx.pool, &new).await?;
    let entry = AuditEntry {
        controller_id: ctx.controller_id.clone(),
        lease_epoch: ctx.state.lease().epoch,
        kind: AuditKind::Override,
        region: new.region.clone(),
        name: new.kind.as_str().into(),
        actor: new.actor.clone(),
        outcome: "created".into(),
        votes: json!({}),
        rules: json!([]),
        detail: format!(
            "{} (until {}, id {})",
            new.reason,
            created.expires_at.to_rfc3339(),
            created.id
        ),
    };
    audit::append(&ctx.pool, &entry).await?;
    ctx.state.push_event(Event {
        at: Utc::now(),
        region: new.region.clone(),
        kind: "override".into(),
        name: new.kind.as_str().into(),
        actor: new.actor.clone(),
        outcome: "created".into(),
        detail: new.reason.clone(),
        duration_ms: None,
    });
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Audits a refused override (the audit log is the only place it is kept).
async fn record_refusal(
    ctx: &HttpContext,
    new: &NewOverride,
    refused: &ApiError,
) -> Result<(), ApiError> {
    let rules = match refused {
        ApiError::Refused(check) => json!([check]),
        _ => json!([]),
    };
    let entry = AuditEntry {
        controller_id: ctx.controller_id.clone(),
        lease_epoch: ctx.state.lease().epoch,
        kind: AuditKind::Override,
        region: new.region.clone(),
        name: new.kind.as_str().into(),
        actor: new.actor.clone(),
        outcome: "refused".into(),
        votes: json!({}),
        rules,
        detail: format!("{}; {refused}", new.reason),
    };
    audit::append(&ctx.pool, &entry).await?;
    ctx.state.push_event(Event {
        at: Utc::now(),
        region: new.region.clone(),
        kind: "override".into(),
        name: new.kind.as_str().into(),
        actor: new.actor.clone(),
        outcome: "refused".into(),
        detail: refused.to_string(),
        duration_ms: None,
    });
    Ok(())
}

/// `DELETE /v1/admin/overrides/{id}`: clears an override early.
pub async fn clear(
    AxumState(ctx): AxumState<HttpContext>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&ctx, &headers)?;
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::BadRequest("id: not a UUID".into()))?;
    let actor = headers
        .get("x-actor")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("admin-api")
        .to_string();
    if !overrides::clear(&ctx.pool, id, &actor).await? {
        return Err(ApiError::NotFound);
    }
    let entry = AuditEntry {
        controller_id: ctx.controller_id.clone(),
        lease_epoch: ctx.state.lease().epoch,
        kind: AuditKind::Override,
        region: None,
        name: "clear".into(),
        actor,
        outcome: "cleared".into(),
        votes: json!({}),
        rules: json!([]),
        detail: id.to_string(),
    };
    audit::append(&ctx.pool, &entry).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn only_the_right_token_matches() {
        assert!(token_matches(b"secret-token", b"secret-token"));
        assert!(!token_matches(b"secret-tokeN", b"secret-token"));
        assert!(!token_matches(b"secret", b"secret-token"));
        assert!(!token_matches(b"", b"secret-token"));
    }

    fn time(given: &[u8], expected: &[u8]) -> Duration {
        let started = Instant::now();
        assert!(!token_matches(std::hint::black_box(given), expected));
        started.elapsed()
    }

    /// A wrong guess of the right length must take as long as one a byte
    /// longer: a comparison that stops at a length mismatch answers the
    /// second at once (tens of nanoseconds against milliseconds for this
    /// 256 KiB token, a ratio near 100,000), and so tells the token's
    /// length. The two guesses alternate and each keeps its fastest run, so
    /// a busy machine slows both alike; the bound (a factor of 5) is far
    /// from what a leak shows and far from the noise.
    #[test]
    fn the_answer_time_does_not_tell_the_token_length() {
        let expected = vec![b'a'; 256 * 1024];
        let same_length = vec![b'b'; expected.len()];
        let one_longer = vec![b'b'; expected.len() + 1];
        let (mut same, mut longer) = (Duration::MAX, Duration::MAX);
        for _ in 0..15 {
            same = same.min(time(&same_length, &expected));
            longer = longer.min(time(&one_longer, &expected));
        }
        let ratio = same.as_secs_f64() / longer.as_secs_f64().max(1e-9);
        assert!(
            (0.2..5.0).contains(&ratio),
            "same length {same:?}, one byte longer {longer:?}"
        );
    }
}
