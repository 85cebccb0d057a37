//! The admin API: manual overrides behind a bearer token compared in
//! constant time. Unauthenticated calls get 401 and change nothing.

use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::json;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::HttpContext;
use crate::audit::{self, AuditEntry, AuditKind};
use crate::overrides::{self, NewOverride};
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
    #[error("internal error")]
    Internal(#[from] crate::db::DbError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Internal(cause) => {
                tracing::error!(error = %cause, "admin API internal error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let mut response = (status, Json(json!({ "error": self.to_string() }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert("www-authenticate", "Bearer".parse().expect("static header"));
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
    if bool::from(given.ct_eq(expected)) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
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
