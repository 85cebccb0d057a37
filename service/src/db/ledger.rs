//! The ledger's queries. Writes run inside [`Transactor::serializable`] and
//! store their response with the idempotency key in the same transaction, so
//! that a retry, on any instance of any region, gets the original answer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Row};
use utoipa::ToSchema;
use uuid::Uuid;

use super::retry::{Transactor, TxError};
use super::Pool;

/// An account as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Account {
    pub id: Uuid,
    pub owner: String,
    /// The principal the account belongs to (who created it): only it
    /// (and admins) can read it, only it can debit it.
    pub principal: String,
    /// Balance in integer minor units, 0 to 2^53 - 1 (exact in any JSON
    /// client's IEEE double).
    #[schema(minimum = 0, maximum = 9_007_199_254_740_991_i64)]
    pub balance: i64,
    /// The region that served the request that created the account.
    pub home_region: String,
    pub created_at: DateTime<Utc>,
}

/// A committed transfer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Transfer {
    pub id: Uuid,
    pub from: Uuid,
    pub to: Uuid,
    /// Amount in integer minor units.
    pub amount: i64,
    /// The region that committed the transfer.
    pub served_by_region: String,
    pub created_at: DateTime<Utc>,
}

/// Largest balance of an account: 2^53 - 1, so that every balance is an
/// exact integer in a JavaScript client (and the database's CHECK agrees).
pub const MAX_BALANCE: i64 = (1 << 53) - 1;

/// Totals read in one snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct LedgerSummary {
    pub accounts: i64,
    pub transfers: i64,
    /// Sum of all balances, in minor units, as a decimal string: it can
    /// exceed 2^53, beyond which JSON numbers lose digits in most clients.
    /// Transfers conserve it.
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    #[serde(with = "decimal_string")]
    pub total_balance: i128,
    /// Smallest balance (0 when there is no account); never negative.
    pub min_balance: i64,
}

/// Which idempotent operation a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CreateAccount,
    Transfer,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::CreateAccount => "create_account",
            Operation::Transfer => "transfer",
        }
    }
}

/// An idempotent request: who sent it, the key, the fingerprint of its
/// body, who serves it. Keys are scoped to the principal: two principals'
/// equal keys are two keys.
#[derive(Debug, Clone)]
pub struct IdempotentRequest {
    pub principal: std::sync::Arc<str>,
    pub operation: Operation,
    pub key: String,
    pub request_hash: String,
    pub region: String,
}

/// The answer of an idempotent write: the stored status and body.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: serde_json::Value,
    /// True when the answer comes from an earlier request with the same key.
    pub replayed: bool,
}

/// Why a write changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The key was used before with another body.
    KeyReusedWithDifferentBody,
    /// No such account, or (for the debited account) not the caller's: an
    /// account that is not yours does not exist for you.
    UnknownAccount(Uuid),
    InsufficientFunds {
        account: Uuid,
        balance: i64,
        amount: i64,
    },
    /// The credit would push the destination balance past [`MAX_BALANCE`].
    BalanceLimit(Uuid),
}

/// A write ends as a stored response, a rejection, or a database error.
pub type WriteOutcome = Result<Result<StoredResponse, Rejection>, TxError>;

/// The status and body a rejection is answered with, so that it can be
/// stored under the idempotency key (the API layer's problem documents).
pub type RenderRejection = fn(&Rejection) -> (u16, serde_json::Value);

/// Creates an account homed in `request.region`.
pub async fn create_account(
    transactor: &Transactor,
    request: &IdempotentRequest,
    owner: &str,
    opening_balance: i64,
    render: RenderRejection,
) -> WriteOutcome {
    let owner = owner.to_owned();
    run_idempotent(transactor, request, render, move |connection, request| {
        let owner = owner.clone();
        Box::pin(async move {
            let row = sqlx::query(
                "INSERT INTO accounts (owner, principal, balance, home_region) VALUES ($1, $2, $3, $4) \
                 RETURNING id, owner, principal, balance, home_region, created_at",
            )
            .bind(&owner)
            .bind(&*request.principal)
            .bind(opening_balance)
            .bind(&request.region)
            .fetch_one(&mut *connection)
            .await?;
            let account = account_from_row(&row)?;
            Ok(Ok((
                201,
                serde_json::to_value(&account).expect("account serialises"),
            )))
        })
    })
    .await
}

/// Moves `amount` from `from` (which must be the caller's) to `to` (anyone's)
/// in one serializable transaction.
pub async fn transfer(
    transactor: &Transactor,
    request: &IdempotentRequest,
    from: Uuid,
    to: Uuid,
    amount: i64,
    render: RenderRejection,
) -> WriteOutcome {
    run_idempotent(transactor, request, render, move |connection, request| {
        Box::pin(async move {
            // Lock both rows in id order so that concurrent transfers queue
            // instead of deadlocking.
            let rows = sqlx::query(
                "SELECT id, balance, principal FROM accounts WHERE id = $1 OR id = $2 ORDER BY id FOR UPDATE",
            )
            .bind(from)
            .bind(to)
            .fetch_all(&mut *connection)
            .await?;
            let balance_of = |id: Uuid| {
                rows.iter()
                    .find(|row| row.get::<Uuid, _>("id") == id)
                    .map(|row| (row.get::<i64, _>("balance"), row.get::<String, _>("principal")))
            };
            // Every rejection comes before the first write, so that storing
            // it under the key and committing changes nothing else.
            let Some((from_balance, owner)) = balance_of(from) else {
                return Ok(Err(Rejection::UnknownAccount(from)));
            };
            if owner != *request.principal {
                return Ok(Err(Rejection::UnknownAccount(from)));
            }
            let Some((to_balance, _)) = balance_of(to) else {
                return Ok(Err(Rejection::UnknownAccount(to)));
            };
            if from_balance < amount {
                return Ok(Err(Rejection::InsufficientFunds {
                    account: from,
                    balance: from_balance,
                    amount,
                }));
            }
            if to_balance.checked_add(amount).is_none_or(|balance| balance > MAX_BALANCE) {
                return Ok(Err(Rejection::BalanceLimit(to)));
            }
            sqlx::query(
                "UPDATE accounts SET balance = CASE WHEN id = $1 THEN balance - $3 ELSE balance + $3 END \
                 WHERE id = $1 OR id = $2",
            )
            .bind(from)
            .bind(to)
            .bind(amount)
            .execute(&mut *connection)
            .await?;
            let row = sqlx::query(
                "INSERT INTO transfers (from_account, to_account, amount, idempotency_key, principal, served_by_region) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, created_at",
            )
            .bind(from)
            .bind(to)
            .bind(amount)
            .bind(&request.key)
            .bind(&*request.principal)
            .bind(&request.region)
            .fetch_one(&mut *connection)
            .await?;
            let transfer = Transfer {
                id: row.try_get("id")?,
                from,
                to,
                amount,
                served_by_region: request.region.clone(),
                created_at: row.try_get("created_at")?,
            };
            Ok(Ok((201, serde_json::to_value(&transfer).expect("transfer serialises"))))
        })
    })
    .await
}

type Body<'c> =
    super::retry::BoxFuture<'c, Result<Result<(u16, serde_json::Value), Rejection>, sqlx::Error>>;

/// The idempotency protocol around a write, keys scoped to the principal:
/// 1. in the transaction, a stored answer for the key is replayed (or the
///    request rejected when its body differs);
/// 2. otherwise the write runs and its answer is stored with the key,
///    rejections included (insufficient funds, an unknown account: the
///    request was executed, so its retry gets the same answer, as Stripe
///    does); a request refused before it reaches here (malformed,
///    unauthenticated, rate-limited, overloaded) stores nothing and its key
///    stays usable;
/// 3. when the commit outcome is unknown, the key is looked up outside the
///    transaction: found means committed (replay), absent means not (re-run once).
async fn run_idempotent<F>(
    transactor: &Transactor,
    request: &IdempotentRequest,
    render: RenderRejection,
    write: F,
) -> WriteOutcome
where
    F: for<'c> Fn(&'c mut PgConnection, &'c IdempotentRequest) -> Body<'c>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let attempt = || {
        let write = write.clone();
        transactor.serializable(move |connection| {
            let write = write.clone();
            let request = request.clone();
            Box::pin(async move {
                if let Some(stored) = lookup_key(&mut *connection, &request).await? {
                    return Ok(stored);
                }
                let (status, body) = match write(&mut *connection, &request).await? {
                    Ok(answer) => answer,
                    Err(rejection) => render(&rejection),
                };
                sqlx::query(
                    "INSERT INTO idempotency_keys \
                     (principal, operation, idempotency_key, request_hash, response_status, response_body, served_by_region) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&*request.principal)
                .bind(request.operation.as_str())
                .bind(&request.key)
                .bind(&request.request_hash)
                .bind(i32::from(status))
                .bind(&body)
                .bind(&request.region)
                .execute(&mut *connection)
                .await?;
                Ok(Ok(StoredResponse {
                    status,
                    body,
                    replayed: false,
                }))
            })
        })
    };
    match attempt().await {
        Err(TxError::CommitOutcomeUnknown(error)) => {
            tracing::warn!(%error, key = %request.key, "commit outcome unknown; resolving through the idempotency key");
            let owned = request.clone();
            let lookup = transactor
                .pool
                .run(move |connection| {
                    Box::pin(async move { lookup_key(connection, &owned).await })
                })
                .await;
            match lookup {
                Ok(Some(stored)) => Ok(stored.map(|stored| StoredResponse {
                    replayed: false,
                    ..stored
                })),
                Ok(None) => attempt().await,
                Err(lookup_error) => Err(TxError::Database(lookup_error)),
            }
        }
        other => other,
    }
}

async fn lookup_key(
    connection: &mut PgConnection,
    request: &IdempotentRequest,
) -> Result<Option<Result<StoredResponse, Rejection>>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT request_hash, response_status, response_body FROM idempotency_keys \
         WHERE principal = $1 AND operation = $2 AND idempotency_key = $3",
    )
    .bind(&*request.principal)
    .bind(request.operation.as_str())
    .bind(&request.key)
    .fetch_optional(&mut *connection)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let stored_hash: String = row.try_get("request_hash")?;
    if stored_hash != request.request_hash {
        return Ok(Some(Err(Rejection::KeyReusedWithDifferentBody)));
    }
    let status: i32 = row.try_get("response_status")?;
    Ok(Some(Ok(StoredResponse {
        status: u16::try_from(status).unwrap_or(500),
        body: row.try_get("response_body")?,
        replayed: true,
    })))
}

/// Whether a read must see the latest write or may be served by a follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    #[default]
    Strong,
    Stale,
}

/// A transfer, with the principals of its two accounts (who may see it).
#[derive(Debug, Clone)]
pub struct VisibleTransfer {
    pub transfer: Transfer,
    pub from_principal: String,
    pub to_principal: String,
}

pub async fn get_transfer(pool: &Pool, id: Uuid) -> Result<Option<VisibleTransfer>, sqlx::Error> {
    let row = pool
        .run(move |connection| {
            Box::pin(
                sqlx::query(
                    "SELECT t.id, t.from_account, t.to_account, t.amount, t.served_by_region, t.created_at, \
                            f.principal AS from_principal, d.principal AS to_principal \
                     FROM transfers AS t \
                     JOIN accounts AS f ON f.id = t.from_account \
                     JOIN accounts AS d ON d.id = t.to_account \
                     WHERE t.id = $1",
                )
                .bind(id)
                .fetch_optional(connection),
            )
        })
        .await?;
    row.map(|row| {
        let transfer = Transfer {
            id: row.try_get("id")?,
            from: row.try_get("from_account")?,
            to: row.try_get("to_account")?,
            amount: row.try_get("amount")?,
            served_by_region: row.try_get("served_by_region")?,
            created_at: row.try_get("created_at")?,
        };
        Ok(VisibleTransfer {
            transfer,
            from_principal: row.try_get("from_principal")?,
            to_principal: row.try_get("to_principal")?,
        })
    })
    .transpose()
}

/// One statement, hence one snapshot, for every figure.
pub async fn summary(pool: &Pool) -> Result<LedgerSummary, sqlx::Error> {
    let row = pool
        .run(|connection| {
            Box::pin(
                sqlx::query(
                    "SELECT (SELECT count(*) FROM accounts) AS accounts, \
                            (SELECT count(*) FROM transfers) AS transfers, \
                            (SELECT COALESCE(sum(balance), 0)::TEXT FROM accounts) AS total_balance, \
                            (SELECT COALESCE(min(balance), 0) FROM accounts) AS min_balance",
                )
                .fetch_one(connection),
            )
        })
        .await?;
    let total: String = row.try_get("total_balance")?;
    Ok(LedgerSummary {
        accounts: row.try_get("accounts")?,
        transfers: row.try_get("transfers")?,
        total_balance: total
            .parse()
            .map_err(|e| sqlx::Error::Decode(format!("total_balance {total:?}: {e}").into()))?,
        min_balance: row.try_get("min_balance")?,
    })
}

pub(super) fn account_from_row(row: &sqlx::postgres::PgRow) -> Result<Account, sqlx::Error> {
    Ok(Account {
        id: row.try_get("id")?,
        owner: row.try_get("owner")?,
        principal: row.try_get("principal")?,
        balance: row.try_get("balance")?,
        home_region: row.try_get("home_region")?,
        created_at: row.try_get("created_at")?,
    })
}

/// `i128` as a JSON string of decimal digits.
mod decimal_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &i128, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<i128, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}
