//! Account reads, batched under load.
//!
//! Each `GET /v1/accounts/{id}` is queued to one dispatcher, which answers
//! whatever is waiting (up to [`MAX_BATCH`]) with one `WHERE id = ANY($1)`
//! statement. A read that finds no statement in flight goes at once, alone.
//! Reads arriving while statements are in flight gather into the next one,
//! which starts when a statement finishes, when `min_fill` reads wait, or
//! when the oldest of them has waited `max_wait`, whichever is first (and
//! while fewer than `max_in_flight` statements run). So at low load nothing
//! waits; under load one statement serves many requests, which keeps the
//! database's work per read below a bare `SELECT`'s; and a slow statement
//! (a strong read of an account homed in a far region) delays the reads
//! behind it by at most `max_wait`, not by its whole round trip. Batch sizes
//! are in the `service_db_read_batch_size` histogram.
//!
//! Consistency is unchanged: a request's statement starts after the request
//! arrived, so a strong read sees every write committed before it; stale
//! reads are batched separately, with the follower-read clause.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use prometheus::Histogram;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
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
    queued_at: Instant,
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
        Self::start_with(batching, batch_sizes, move |group| {
            let (pool, dialect) = (pool.clone(), dialect.clone());
            async move { run_batch(&pool, &dialect, group).await }
        })
    }

    /// Starts the dispatcher with `run` answering each batch.
    fn start_with<R, F>(batching: Batching, batch_sizes: Histogram, run: R) -> Self
    where
        R: Fn(Vec<Pending>) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let (queue, receiver) = mpsc::channel::<Pending>(4 * MAX_BATCH);
        tokio::spawn(dispatch(receiver, batching, batch_sizes, run));
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
                queued_at: Instant::now(),
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
    /// While a statement is in flight, another starts once this many reads
    /// wait; with none in flight, a single read starts at once.
    pub min_fill: usize,
    /// While a statement is in flight, another starts once the oldest
    /// waiting read has waited this long, however few wait.
    pub max_wait: Duration,
}

/// Groups queued reads into statements: the first read of an idle reader
/// goes at once; reads that arrive while statements are in flight wait for
/// one to finish, for `min_fill` of them to gather, or for the oldest to
/// have waited `max_wait`, whichever is first.
async fn dispatch<R, F>(
    mut receiver: mpsc::Receiver<Pending>,
    batching: Batching,
    batch_sizes: Histogram,
    run: R,
) where
    R: Fn(Vec<Pending>) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
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
        // When the oldest waiting read may no longer wait for a statement to finish.
        let overdue_at = batch
            .first()
            .map(|oldest| oldest.queued_at + batching.max_wait);
        let slot_free = in_flight < batching.max_in_flight;
        let may_start = slot_free
            && !batch.is_empty()
            && (in_flight == 0
                || batch.len() >= batching.min_fill
                || overdue_at.is_some_and(|at| at <= Instant::now()));
        if may_start {
            in_flight += 1;
            batch_sizes.observe(batch.len() as f64);
            let group = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
            let (work, finished) = (run(group), finished.clone());
            tokio::spawn(async move {
                work.await;
                let _ = finished.send(());
            });
            continue;
        }
        if !open && batch.is_empty() && in_flight == 0 {
            return;
        }
        // Only a free slot makes the wait bound worth a timer.
        let deadline = overdue_at.filter(|_| slot_free);
        tokio::select! {
            biased;
            Some(()) = finished_rx.recv(), if in_flight > 0 => in_flight -= 1,
            next = receiver.recv(), if open && batch.len() < MAX_BATCH => match next {
                Some(next) => batch.push(next),
                None => open = false,
            },
            () = sleep_until(deadline), if deadline.is_some() => {}
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
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
            "SELECT id, owner, principal, balance, home_region, created_at FROM accounts {FOLLOWER_READ_CLAUSE} WHERE id = ANY($1)"
        )
    } else {
        "SELECT id, owner, principal, balance, home_region, created_at FROM accounts WHERE id = ANY($1)"
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
        || matches!(error, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("57") || c.starts_with("53") || c == "40001"));
    if unavailable {
        ReadError::Unavailable(error.to_string())
    } else {
        ReadError::Internal(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    //! The batching policy against a fake database whose statements take a
    //! set time, on tokio's paused clock (so the times are exact).
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use prometheus::HistogramOpts;

    use super::*;

    /// Statements as the fake database saw them.
    #[derive(Default)]
    struct Log {
        /// (start, number of reads) of each statement.
        starts: Mutex<Vec<(Duration, usize)>>,
        running: AtomicUsize,
        most_running: AtomicUsize,
    }

    fn reader(batching: Batching, statement: Duration) -> (AccountReader, Arc<Log>, Instant) {
        let log = Arc::new(Log::default());
        let epoch = Instant::now();
        let sizes = Histogram::with_opts(HistogramOpts::new("sizes", "batch sizes")).unwrap();
        let fake = Arc::clone(&log);
        let reader = AccountReader::start_with(batching, sizes, move |group: Vec<Pending>| {
            let log = Arc::clone(&fake);
            async move {
                log.starts
                    .lock()
                    .unwrap()
                    .push((epoch.elapsed(), group.len()));
                let now = log.running.fetch_add(1, Ordering::SeqCst) + 1;
                log.most_running.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(statement).await;
                log.running.fetch_sub(1, Ordering::SeqCst);
                for pending in group {
                    let _ = pending.reply.send(Ok(None));
                }
            }
        });
        (reader, log, epoch)
    }

    /// Reads one account at `at` (from the epoch); answers when it finished.
    fn read_at(
        reader: &AccountReader,
        epoch: Instant,
        at: Duration,
    ) -> tokio::task::JoinHandle<Duration> {
        let reader = reader.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(epoch + at).await;
            let answer = reader.read(Uuid::new_v4(), Consistency::Strong).await;
            assert!(matches!(answer, Ok(None)), "{answer:?}");
            epoch.elapsed()
        })
    }

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test(start_paused = true)]
    async fn a_slow_statement_holds_later_reads_back_by_the_wait_bound_only() {
        let batching = Batching {
            max_in_flight: 8,
            min_fill: 64,
            max_wait: 2 * MS,
        };
        let (reader, log, epoch) = reader(batching, 100 * MS);
        let first = read_at(&reader, epoch, Duration::ZERO);
        let second = read_at(&reader, epoch, 10 * MS);
        assert_eq!(first.await.unwrap(), 100 * MS);
        // Started at 12 ms (10 + the 2 ms bound), not when the first ended.
        assert_eq!(second.await.unwrap(), 112 * MS);
        assert_eq!(
            *log.starts.lock().unwrap(),
            vec![(Duration::ZERO, 1), (12 * MS, 1)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn near_the_database_one_statement_answers_many_reads() {
        let batching = Batching {
            max_in_flight: 8,
            min_fill: 64,
            max_wait: 2 * MS,
        };
        let (reader, log, _) = reader(batching, MS);
        // 16 clients, each reading again as soon as it has its answer.
        let clients: Vec<_> = (0..16u32)
            .map(|client| {
                let reader = reader.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_micros(u64::from(client) * 37)).await;
                    for _ in 0..50 {
                        let answer = reader.read(Uuid::new_v4(), Consistency::Strong).await;
                        assert!(matches!(answer, Ok(None)), "{answer:?}");
                    }
                })
            })
            .collect();
        for client in clients {
            client.await.unwrap();
        }
        let starts = log.starts.lock().unwrap();
        let reads: usize = starts.iter().map(|(_, size)| size).sum();
        assert_eq!(reads, 16 * 50);
        // A statement finishes within the wait bound, so one is ever in flight...
        assert_eq!(log.most_running.load(Ordering::SeqCst), 1);
        // ...and it answers everything that queued meanwhile.
        assert!(
            starts.len() < reads / 8,
            "{} statements for {reads} reads",
            starts.len()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn statements_in_flight_stay_within_the_bound() {
        let batching = Batching {
            max_in_flight: 2,
            min_fill: 64,
            max_wait: MS,
        };
        let (reader, log, epoch) = reader(batching, 100 * MS);
        let reads: Vec<_> = (0..10u32)
            .map(|n| read_at(&reader, epoch, n * 5 * MS))
            .collect();
        let mut finished = Vec::new();
        for read in reads {
            finished.push(read.await.unwrap());
        }
        assert_eq!(log.most_running.load(Ordering::SeqCst), 2);
        let starts = log.starts.lock().unwrap();
        // The first alone, the second 1 ms after the read at 5 ms, the rest
        // (8 reads) once the first statement finished.
        assert_eq!(
            starts[..3],
            [(Duration::ZERO, 1), (6 * MS, 1), (100 * MS, 8)]
        );
        assert_eq!(finished.iter().max(), Some(&(200 * MS)));
    }

    #[tokio::test(start_paused = true)]
    async fn enough_waiting_reads_start_a_statement_before_the_wait_bound() {
        let batching = Batching {
            max_in_flight: 8,
            min_fill: 4,
            max_wait: Duration::from_secs(1),
        };
        let (reader, log, epoch) = reader(batching, 50 * MS);
        let mut reads = vec![read_at(&reader, epoch, Duration::ZERO)];
        reads.extend((0..4).map(|_| read_at(&reader, epoch, MS)));
        for read in reads {
            read.await.unwrap();
        }
        assert_eq!(
            *log.starts.lock().unwrap(),
            vec![(Duration::ZERO, 1), (MS, 4)]
        );
    }
}
