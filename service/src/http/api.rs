//! The ledger endpoints under `/v1`.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::error::{ApiError, Problem, PROBLEM_JSON};
use super::extract::{ApiJson, ApiQuery, IdempotencyKey, UuidPath};
use super::AppState;
use crate::auth::Caller;
use crate::db::ledger::{
    self, Account, Consistency, IdempotentRequest, LedgerSummary, Operation, Rejection,
    StoredResponse, Transfer,
};

/// Largest amount or opening balance, in minor units (10^15): large enough
/// for any real payment, small enough that sums stay far from overflow.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// Header on replayed idempotent answers.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// Body of `POST /v1/accounts`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountRequest {
    /// Who owns the account: 1 to 200 characters, not only spaces, no
    /// control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1F\\x7F]*\\S[^\\x00-\\x1F\\x7F]*$"
    )]
    pub owner: String,
    /// Opening balance in integer minor units, 0 to 10^15.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    #[serde(deserialize_with = "integral")]
    pub opening_balance: i64,
}

/// Body of `POST /v1/transfers`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTransferRequest {
    pub from: Uuid,
    pub to: Uuid,
    /// Amount in integer minor units, 1 to 10^15.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    #[serde(deserialize_with = "integral")]
    pub amount: i64,
}

/// Query of `GET /v1/accounts/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReadOptions {
    /// `strong` (default) reads the latest committed value. `stale` may be
    /// served by the nearest replica: on CockroachDB a follower read about
    /// 4.2 seconds stale (`AS OF SYSTEM TIME follower_read_timestamp()`); on
    /// PostgreSQL a plain read.
    #[serde(default)]
    pub consistency: Consistency,
}

#[utoipa::path(
    post, path = "/v1/accounts", tag = "ledger",
    params(("Idempotency-Key" = String, Header, pattern = "^[!-~]{1,255}$", min_length = 1, max_length = 255, description = "Unique key of 1 to 255 visible ASCII characters; a retry with the same key and body gets the original answer")),
    request_body = CreateAccountRequest,
    responses(
        (status = 201, description = "Account created (or the replay of its creation)", body = Account),
        (status = 400, description = "Invalid body or missing Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than the limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body not sent as application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Idempotency-Key reused with another body", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded or database unavailable; retry with the same key", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_account(
    State(state): State<AppState>,
    Caller(caller): Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request): ApiJson<CreateAccountRequest>,
) -> Result<Response, ApiError> {
    let owner = request.owner.trim();
    if owner.is_empty() || owner.chars().count() > 200 {
        return Err(ApiError::BadRequest(
            "`owner` must be 1 to 200 characters, not only spaces".into(),
        ));
    }
    if owner.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "`owner` must not contain control characters".into(),
        ));
    }
    check_amount("opening_balance", request.opening_balance, 0)?;
    let idempotent = idempotent_request(&state, &caller, Operation::CreateAccount, key, &request);
    let outcome = ledger::create_account(
        &state.transactor,
        &idempotent,
        owner,
        request.opening_balance,
        render_rejection,
    )
    .await?;
    if let Ok(created) = &outcome {
        remember_home(&state, &created.body);
    }
    Ok(stored_response(outcome?, "/v1/accounts"))
}

/// Notes the home region of an account this request created (or replayed).
fn remember_home(state: &AppState, account: &serde_json::Value) {
    if let (Some(id), Some(home)) = (
        account["id"].as_str().and_then(|id| id.parse().ok()),
        account["home_region"].as_str(),
    ) {
        state.homes.insert(id, home);
    }
}

#[utoipa::path(
    get, path = "/v1/accounts/{id}", tag = "ledger",
    params(("id" = Uuid, Path, description = "Account id"), ReadOptions),
    responses(
        (status = 200, description = "The account", body = Account),
        (status = 400, description = "Invalid id or query", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account, or not the caller's (an account that is not yours does not exist for you)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_account(
    State(state): State<AppState>,
    Caller(caller): Caller,
    UuidPath(id): UuidPath,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> Result<Json<Account>, ApiError> {
    // Someone else's account answers exactly as a missing one, so that
    // account ids cannot be probed.
    state
        .reads
        .read(id, options.consistency)
        .await?
        .filter(|account| caller.may_read(&account.principal))
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("account {id} does not exist")))
}

#[utoipa::path(
    post, path = "/v1/transfers", tag = "ledger",
    params(("Idempotency-Key" = String, Header, pattern = "^[!-~]{1,255}$", min_length = 1, max_length = 255, description = "Unique key of 1 to 255 visible ASCII characters; a retry with the same key and body gets the original answer")),
    request_body = CreateTransferRequest,
    responses(
        (status = 201, description = "Transfer committed (or the replay of it)", body = Transfer),
        (status = 400, description = "Invalid body, from == to, amount <= 0, or missing Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than the limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body not sent as application/json", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "An account does not exist, or `from` is not the caller's; nothing changed (stored under the key and replayed)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Insufficient funds; nothing changed (stored under the key and replayed)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Idempotency-Key reused with another body, or the credit would take `to` past the balance limit (2^53 - 1; stored and replayed)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded or database unavailable; retry with the same key", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_transfer(
    State(state): State<AppState>,
    Caller(caller): Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request): ApiJson<CreateTransferRequest>,
) -> Result<Response, ApiError> {
    if request.from == request.to {
        return Err(ApiError::BadRequest(
            "`from` and `to` must be different accounts".into(),
        ));
    }
    check_amount("amount", request.amount, 1)?;
    let idempotent = idempotent_request(&state, &caller, Operation::Transfer, key, &request);
    // Writes that wait on one home region's rows (its leases moving after
    // the region's loss) hold a bounded share of the pool: db::bulkhead.
    let homes = state
        .homes
        .of(&[request.from, request.to], &state.reads)
        .await?;
    let _entered = state.bulkhead.enter(&homes).await;
    let outcome = ledger::transfer(
        &state.transactor,
        &idempotent,
        request.from,
        request.to,
        request.amount,
        render_rejection,
    )
    .await?;
    Ok(stored_response(outcome?, "/v1/transfers"))
}

#[utoipa::path(
    get, path = "/v1/transfers/{id}", tag = "ledger",
    params(("id" = Uuid, Path, description = "Transfer id")),
    responses(
        (status = 200, description = "The transfer", body = Transfer),
        (status = 400, description = "Invalid id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such transfer, or neither of its accounts is the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_transfer(
    State(state): State<AppState>,
    Caller(caller): Caller,
    UuidPath(id): UuidPath,
) -> Result<Json<Transfer>, ApiError> {
    // Visible to the owners of both accounts (payer and payee) and admins;
    // to anyone else it does not exist.
    ledger::get_transfer(&state.transactor.pool, id)
        .await?
        .filter(|visible| {
            caller.may_read(&visible.from_principal) || caller.may_read(&visible.to_principal)
        })
        .map(|visible| Json(visible.transfer))
        .ok_or_else(|| ApiError::NotFound(format!("transfer {id} does not exist")))
}

#[utoipa::path(
    get, path = "/v1/ledger/summary", tag = "ledger",
    responses(
        (status = 200, description = "Counts and the sum of balances, from one snapshot (a full scan: admin scope only)", body = LedgerSummary),
        (status = 403, description = "The caller lacks the admin scope", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn ledger_summary(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<LedgerSummary>, ApiError> {
    if !caller.admin {
        return Err(ApiError::Forbidden(format!(
            "the ledger summary needs the `{}` scope",
            crate::auth::ADMIN_SCOPE
        )));
    }
    Ok(Json(ledger::summary(&state.transactor.pool).await?))
}

/// An integer, also when written as a number with a zero fraction (`5.0`):
/// JSON Schema counts that as an integer, so clients that produce it are
/// right. Anything else is refused with the usual serde message.
fn integral<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let value = serde_json::Number::deserialize(deserializer)?;
    if let Some(integer) = value.as_i64() {
        return Ok(integer);
    }
    match value.as_f64() {
        Some(float) if float.fract() == 0.0 && float.abs() <= 9_007_199_254_740_992.0 => {
            Ok(float as i64)
        }
        _ => Err(serde::de::Error::custom(format!(
            "invalid value: {value}, expected an integer from -2^53 to 2^53 (minor units)"
        ))),
    }
}

fn check_amount(field: &str, value: i64, minimum: i64) -> Result<(), ApiError> {
    if value < minimum || value > MAX_AMOUNT {
        return Err(ApiError::BadRequest(format!(
            "`{field}` must be an integer from {minimum} to {MAX_AMOUNT} (minor units), got {value}"
        )));
    }
    Ok(())
}

/// The fingerprint of a request is the SHA-256 of its canonical JSON, so
/// that whitespace or field order in the retry does not matter.
fn idempotent_request<T: Serialize>(
    state: &AppState,
    caller: &crate::auth::Principal,
    operation: Operation,
    key: String,
    body: &T,
) -> IdempotentRequest {
    let canonical = serde_json::to_vec(body).expect("request serialises");
    IdempotentRequest {
        principal: caller.name.clone(),
        operation,
        key,
        request_hash: hex::encode(Sha256::digest(canonical)),
        region: state.region().to_owned(),
    }
}

/// The status and problem document of an executed request's rejection,
/// stored under its idempotency key.
fn render_rejection(rejection: &Rejection) -> (u16, serde_json::Value) {
    let error = ApiError::from(rejection.clone());
    let problem = error.problem();
    (
        problem.status,
        serde_json::to_value(problem).expect("a problem serialises"),
    )
}

fn stored_response(stored: StoredResponse, collection: &str) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let location = stored
        .body
        .get("id")
        .and_then(|id| id.as_str())
        .and_then(|id| HeaderValue::from_str(&format!("{collection}/{id}")).ok());
    let mut response = (status, Json(stored.body)).into_response();
    if status.is_client_error() {
        // A stored rejection: a problem document, as when it was first sent.
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    } else if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if stored.replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}
