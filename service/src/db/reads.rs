//! Account reads, batched under load.
//!
//! Each `GET /v1/accounts/{id}` is queued to one dispatcher, which answers
//! whatever is waiting (up to [`MAX_BATCH`]) with one `WHERE id = ANY($1)`
//! statement. A read that finds no statement in flight goes at once, alone;
//! reads arriving while statements are in flight gather into the next one,
//! which starts when a statement finishes or when `min_fill` reads wait (and
//! fewer than `max_in_flight` statements run). So at low load nothing waits,
//! and under load one statement serves many requests, which keeps the
//! database's work per read below a bare `SELECT`'s. Batch sizes are in the
//! `service_db_read_batch_size` histogram.
//!
//! Consistency is unchanged: a request's statement starts after the request
//! arrived, so a strong read sees every write committed before it; stale
//! reads are batched separately, with the follower-read clause.

use std::collections::HashMap;
use std::sync::Arc;

use prometheus::Histogram;
use tokio::sync::{mpsc, oneshot};
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
    /// Starts the dispatcher on `pool`; it stops when every handle is
    /// dropped and the statements in flight have answered.
    pub fn start(
        pool: Pool,
        dialect: Arc<std::sync::OnceLock<Dialect>>,
        batching: Batching,
        batch_sizes: Histogram,
    ) -> Self {
        let (queue, receiver) = mpsc::channel::<Pending>(4 * MAX_BATCH);
        tokio::spawn(dispatch(pool, dialect, receiver, batching, batch_sizes));
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
            .map_err(|_| ReadError::Unavailable("the read dispatcher has stopped".into()))?;
        answer
            .await
            .map_err(|_| ReadError::Internal("the read dispatcher dropped the request".into()))?
    }
}

/// How reads are grouped into statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Statements in flight at most.
    pub max_in_flight: usize,
    /// While a statement is in flight, another starts only once this many
    /// reads wait; with none in flight, a single read starts at once.
    pub min_fill: usize,
}

/// Groups queued reads into statements: the first read of an idle reader
/// goes at once; reads that arrive while statements are in flight wait for
/// one to finish, or for `min_fill` of them to gather, whichever is first.
async fn dispatch(
    pool: Pool,
    dialect: Arc<std::sync::OnceLock<Dialect>>,
    mut receiver: mpsc::Receiver<Pending>,
    batching: Batching,
    batch_sizes: Histogram,
) {
    let (finished, mut finished_rx) = mpsc::unbounded_channel::<()>();
    let mut in_flight = 0usize;
    let mut open = true;
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    loop {
        while open && batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        // Requests whose caller went away (timeout, disconnect) need no answer.
        batch.retain(|pending| !pending.reply.is_closed());
        let may_start = !batch.is_empty()
            && in_flight < batching.max_in_flight
            && (in_flight == 0 || batch.len() >= batching.min_fill);
        if may_start {
            in_flight += 1;
            batch_sizes.observe(batch.len() as f64);
            let group = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
            let (pool, dialect, finished) = (pool.clone(), dialect.clone(), finished.clone());
            tokio::spawn(async move {
                run_batch(&pool, &dialect, group).await;
                let _ = finished.send(());
            });
            continue;
        }
        if !open && batch.is_empty() && in_flight == 0 {
            return;
        }
        tokio::select! {
            biased;
            Some(()) = finished_rx.recv(), if in_flight > 0 => in_flight -= 1,
            next = receiver.recv(), if open && batch.len() < MAX_BATCH => match next {
                Some(next) => batch.push(next),
                None => open = false,
            },
        }
    }
}

async fn run_batch(pool: &Pool, dialect: &std::sync::OnceLock<Dialect>, batch: Vec<Pending>) {
    let dialect = dialect.get().copied().unwrap_or(Dialect::Postgres);
    let (stale, strong): (Vec<Pending>, Vec<Pending>) = batch.into_iter().partition(|pending| {
        pending.consistency == Consistency::Stale && dialect == Dialect::Cockroach
    });
    for (group, follower_read) in [(strong, false), (stale, true)] {
        if !group.is_empty() {
            answer(pool, group, follower_read).await;
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
