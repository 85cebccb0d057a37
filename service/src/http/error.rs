//! Every error the API answers with, as RFC 9457 `application/problem+json`.
//!
//! 4xx details say exactly what was wrong with the request; 5xx details say
//! nothing internal (the cause is logged with the request id).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::ledger::Rejection;
use crate::db::retry::TxError;

/// The media type of error bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

/// The API's error type.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// No credential (`invalid: false`) or a wrong one: the same body.
    #[error("this operation needs credentials: send `Authorization: Bearer <API key or JWT>`; the ones sent, if any, are missing or not valid")]
    Unauthenticated { invalid: bool },
    /// Authenticated, but not allowed (a scope is missing).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    InsufficientFunds(String),
    #[error("{0}")]
    IdempotencyKeyReused(String),
    #[error("{0}")]
    Unprocessable(String),
    /// The principal's rate limit is exhausted.
    #[error("the rate limit of this principal is exhausted; retry after {retry_after_s} s (see the RateLimit header)")]
    RateLimited { retry_after_s: u64 },
    /// Too many requests in flight; the client should retry shortly.
    #[error("the service is at its concurrency limit; retry after a second")]
    Overloaded,
    #[error("the request did not complete within the per-request deadline; retry with the same Idempotency-Key")]
    Timeout,
    /// The database is unreachable or too slow; safe to retry.
    #[error("the database is unavailable; retry with the same Idempotency-Key")]
    Unavailable(String),
    /// A bug or an unexpected database error; the cause is logged.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "Invalid request",
            ),
            UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            Unauthenticated { .. } => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Missing or invalid credentials",
            ),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Rate limit exhausted",
            ),
            NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            InsufficientFunds(_) => (
                StatusCode::CONFLICT,
                "insufficient-funds",
                "Insufficient funds",
            ),
            IdempotencyKeyReused(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key reused with a different request",
            ),
            Unprocessable(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable",
                "Unprocessable request",
            ),
            Overloaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "Service overloaded",
            ),
            Timeout => (
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "Request timed out",
            ),
            Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Database unavailable",
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }
}

impl ApiError {
    /// The problem document of this error.
    pub fn problem(&self) -> Problem {
        let (status, slug, title) = self.parts();
        Problem {
            kind: format!("/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _, _) = self.parts();
        match &self {
            ApiError::Internal(cause) => tracing::error!(%cause, "internal error"),
            ApiError::Unavailable(cause) => tracing::warn!(%cause, "database unavailable"),
            _ => {}
        }
        let problem = self.problem();
        let mut response = (status, axum::Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        match self {
            // RFC 6750: the scheme and realm always; `invalid_token` when a
            // credential was sent (the body stays the same).
            ApiError::Unauthenticated { invalid } => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(if invalid {
                        r#"Bearer realm="ledger", error="invalid_token""#
                    } else {
                        r#"Bearer realm="ledger""#
                    }),
                );
            }
            ApiError::RateLimited { retry_after_s } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
            }
            _ => {}
        }
        response
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::KeyReusedWithDifferentBody => ApiError::IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request body; use a new key for a new request"
                    .into(),
            ),
            Rejection::UnknownAccount(id) => ApiError::NotFound(format!("account {id} does not exist")),
            Rejection::InsufficientFunds {
                account,
                balance,
                amount,
            } => ApiError::InsufficientFunds(format!(
                "account {account} has a balance of {balance}, less than the amount {amount}; nothing was changed"
            )),
            Rejection::BalanceLimit(account) => ApiError::Unprocessable(format!(
                "crediting account {account} would take its balance past the limit of {} (2^53 - 1, minor units); nothing was changed",
                crate::db::ledger::MAX_BALANCE
            )),
        }
    }
}

impl From<crate::db::reads::ReadError> for ApiError {
    fn from(error: crate::db::reads::ReadError) -> Self {
        match error {
            crate::db::reads::ReadError::Unavailable(cause) => ApiError::Unavailable(cause),
            crate::db::reads::ReadError::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

impl From<TxError> for ApiError {
    fn from(error: TxError) -> Self {
        match error {
            TxError::PoolTimeout
            | TxError::RetriesExhausted { .. }
            | TxError::CommitOutcomeUnknown(_) => ApiError::Unavailable(error.to_string()),
            TxError::Database(inner) => ApiError::from(inner),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => ApiError::Unavailable(error.to_string()),
            sqlx::Error::Database(db)
                // 53: insufficient resources (53300: too many connections).
                if db.code().is_some_and(|c| {
                    c.starts_with("08")
                        || c.starts_with("57")
                        || c.starts_with("53")
                        || c == "40001"
                }) =>
            {
                ApiError::Unavailable(error.to_string())
            }
            _ => ApiError::Internal(error.to_string()),
        }
    }
}
