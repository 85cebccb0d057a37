//! Extractors whose rejections are problem documents that say exactly what
//! was wrong (axum's defaults answer in plain text).

use axum::body::Body;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use futures_util::StreamExt;

use super::error::ApiError;
use super::AppState;

/// Header that makes a write safe to retry anywhere.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A JSON body; unknown fields are refused by the target types.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// Bytes of an oversized body that are read and thrown away before the 413
/// is sent. A server that closes a connection with unread data in it makes
/// the kernel answer with a reset, which can destroy the 413 before the
/// client has read it; reading the rest first lets an honest client see why
/// it was refused. Beyond this, the connection is closed at once.
const OVERSIZED_BODY_DRAIN_BYTES: u64 = 1 << 20;

impl<T> FromRequest<AppState> for ApiJson<T>
where
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.settings.max_request_body_bytes;
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        if let Some(length) = declared.filter(|&length| length > limit as u64) {
            if length <= OVERSIZED_BODY_DRAIN_BYTES {
                drain(request.into_body()).await;
            }
            return Err(ApiError::PayloadTooLarge(format!(
                "the request body ({length} bytes) is larger than the limit of this service ({limit} bytes)"
            )));
        }
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// Reads a body to its end (or its first error), at most
/// [`OVERSIZED_BODY_DRAIN_BYTES`] of it.
async fn drain(body: Body) {
    let mut chunks = body.into_data_stream();
    let mut read = 0u64;
    while let Some(Ok(chunk)) = chunks.next().await {
        read += chunk.len() as u64;
        if read > OVERSIZED_BODY_DRAIN_BYTES {
            break;
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(error) => ApiError::BadRequest(format!(
            "the JSON body does not match the schema: {}",
            source_text(&error)
        )),
        JsonRejection::JsonSyntaxError(error) => ApiError::BadRequest(format!(
            "the body is not valid JSON: {}",
            source_text(&error)
        )),
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
            "send the body as JSON with `Content-Type: application/json`".into(),
        ),
        JsonRejection::BytesRejection(error) => {
            // The only byte rejection for a buffered body is the length limit.
            if error.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(
                    "the request body is larger than the limit of this service".into(),
                )
            } else {
                ApiError::BadRequest(format!(
                    "cannot read the request body: {}",
                    error.body_text()
                ))
            }
        }
        other => ApiError::BadRequest(other.body_text()),
    }
}

/// The innermost error message, which names the field and position.
fn source_text(error: &dyn std::error::Error) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// The `Idempotency-Key` header: required on every write.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(IDEMPOTENCY_KEY) else {
            return Err(ApiError::BadRequest(
                "the Idempotency-Key header is required on this request (a unique string of 1 to 255 visible ASCII characters, e.g. a UUID)"
                    .into(),
            ));
        };
        let key = value
            .to_str()
            .ok()
            .filter(|key| !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "the Idempotency-Key header must be 1 to 255 visible ASCII characters without spaces".into(),
                )
            })?;
        Ok(Self(key.to_owned()))
    }
}

/// A UUID path segment, named for the error message.
#[derive(Debug, Clone, Copy)]
pub struct UuidPath(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for UuidPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|rejection: PathRejection| ApiError::BadRequest(rejection.body_text()))?;
        Uuid::parse_str(&raw)
            .map(Self)
            .map_err(|error| ApiError::BadRequest(format!("{raw:?} is not a valid UUID: {error}")))
    }
}

/// Query parameters; unknown parameters are refused by the target types.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection: QueryRejection| {
                ApiError::BadRequest(format!("invalid query string: {}", source_text(&rejection)))
            })
    }
}
