//! Account reads, batched under load.
//!
//! Each `GET /v1/accounts/{id}` is queued; a few workers each take whatever
//! is waiting (up to [`MAX_BATCH`]) and answer it with one
//! `WHERE id = ANY($1)` query. At low load a batch is one request and nothing
//! waits; under load, one statement serves many requests, which is what
//! keeps the database's work per read close to a bare `SELECT`.
//!
//! Consistency is unchanged: a request's statement starts after the request
//! arrived, so a strong read sees every write committed before it; stale
//! reads are batched separately, with the follower-read clause.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

use super::cockroach::FOLLOWER_READ_CLAUSE;
use super::ledger::{account_from_row, Account, Consistency};
use super::{Dialect, Pool};

/// Largest number of reads answered by one statement.
pub const MAX_BATCH: usize = 64;

/// Why a read failed; the API maps it to 503 or 500.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

type Reply = oneshot::Sender<Result<Option<Account>, ReadError>>;

struct Pending {
    id: Uuid,
    consistency: Consistency,
    reply: Reply,
}

/// Handle to the read queue; cheap to clone.
#[derive(Debug, Clone)]
pub struct AccountReader {
    queue: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("id", &self.id).finish()
    }
}

impl AccountReader {
    /// Starts `workers` workers on `pool`; they stop when every handle is
    /// dropped.
    pub fn start(pool: Pool, dialect: Arc<std::sync::OnceLock<Dialect>>, workers: usize) -> Self {
        let (queue, receiver) = mpsc::channel::<Pending>(4 * MAX_BATCH * workers.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..workers.max(1) {
            tokio::spawn(work(pool.clone(), dialect.clone(), receiver.clone()));
        }
        Self { queue }
    }

    /// Reads one account.
    pub async fn read(
        &self,
        id: Uuid,
        consistency: Consistency,
    ) -> Result<Option<Account>, ReadError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending {
                id,
                consistency,
                reply,
            })
            .await
            .map_err(|_| ReadError::Unavailable("the read workers have stopped".into()))?;
        answer
            .await
            .map_err(|_| ReadError::Internal("a read worker dropped the request".into()))?
    }
}

async fn work(
    pool: Pool,
    dialect: Arc<std::sync::OnceLock<Dialect>>,
    receiver: Arc<Mutex<mpsc::Receiver<Pending>>>,
) {
    loop {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
        }
        // Requests whose caller went away (timeout, disconnect) need no answer.
        batch.retain(|pending| !pending.reply.is_closed());
        let dialect = dialect.get().copied().unwrap_or(Dialect::Postgres);
        let (stale, strong): (Vec<Pending>, Vec<Pending>) =
            batch.into_iter().partition(|pending| {
                pending.consistency == Consistency::Stale && dialect == Dialect::Cockroach
            });
        for (group, follower_read) in [(strong, false), (stale, true)] {
            if !group.is_empty() {
                answer(&pool, group, follower_read).await;
            }
        }
    }
}

async fn answer(pool: &Pool, group: Vec<Pending>, follower_read: bool) {
    let ids: Vec<Uuid> = group.iter().map(|pending| pending.id).collect();
    let sql = if follower_read {
        format!(
            "SELECT id, owner, balance, home_region, created_at FROM accounts {FOLLOWER_READ_CLAUSE} WHERE id = ANY($1)"
        )
    } else {
        "SELECT id, owner, balance, home_region, created_at FROM accounts WHERE id = ANY($1)"
            .to_owned()
    };
    let result = pool
        .run(move |connection| {
            Box::pin(async move {
                let rows = sqlx::query(&sql).bind(ids).fetch_all(connection).await?;
                rows.iter()
                    .map(account_from_row)
                    .collect::<Result<Vec<_>, _>>()
            })
        })
        .await;
    match result {
        Ok(accounts) => {
            let mut by_id: HashMap<Uuid, Account> =
                accounts.into_iter().map(|a| (a.id, a)).collect();
            for pending in group {
                // Duplicate ids in one batch each get their own copy.
                let account = by_id.get(&pending.id).cloned();
                let _ = pending.reply.send(Ok(account));
            }
            by_id.clear();
        }
        Err(error) => {
            let failure = classify(&error);
            for pending in group {
                let _ = pending.reply.send(Err(failure.clone()));
            }
        }
    }
}

fn classify(error: &sqlx::Error) -> ReadError {
    let unavailable = super::pool::leaves_connection_unusable(error)
        || matches!(error, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
        || matches!(error, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("57") || c == "40001"));
    if unavailable {
        ReadError::Unavailable(error.to_string())
    } else {
        ReadError::Internal(error.to_string())
    }
}
