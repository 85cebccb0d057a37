//! Serving the public API: thread per core.
//!
//! `worker_threads` threads (one per CPU by default) each run a
//! single-threaded tokio runtime with their own share of the request pool
//! and their own read batcher. One acceptor hands every accepted connection
//! to the thread with the fewest open connections; from then on the
//! connection, its requests and their database work stay on that thread:
//! a request never wakes a task on another thread, and a database
//! connection is only ever polled by the thread whose reactor it is
//! registered with. On the read benchmark that is about a quarter less CPU
//! per request than tokio's work-stealing runtime, whose wake-ups crossed
//! threads at every step (request, batcher, database connection).
//!
//! The price: a connection waits whenever its thread is off the CPU, where
//! a work-stealing runtime would run it on another.
//! `thread_per_core = false` serves everything from one
//! work-stealing runtime with `worker_threads` workers and the whole pool,
//! through the same code below (one "thread" whose runtime has several
//! workers).
//!
//! What stays process-wide: the settings, metrics, the admission limit, the
//! region gate and the health pool ([`SharedState`]), and the acceptor, the
//! admin port, the region-gate refresher and the shutdown sequence, which
//! run on the runtime that called [`crate::startup::Application`].
//!
//! Shutdown: [`Threads::finish`] makes every thread stop taking
//! connections and ask each of its connections to finish the request in
//! flight and close (HTTP/1 graceful shutdown), waits for that within the
//! grace bound, then abandons what is left.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{mpsc, oneshot, watch};

use crate::db::reads::AccountReader;
use crate::db::retry::{RetryPolicy, Transactor};
use crate::db::Pool;
use crate::http::SharedState;

/// The serving threads, as the acceptor sees them.
#[derive(Debug)]
pub(crate) struct Threads {
    threads: Vec<ServingThread>,
    /// Where the search for the least loaded thread starts, so that ties
    /// rotate.
    next: usize,
    close: watch::Sender<bool>,
}

#[derive(Debug)]
struct ServingThread {
    connections: mpsc::UnboundedSender<std::net::TcpStream>,
    /// Connections handed to the thread and not closed yet.
    open: Arc<AtomicUsize>,
    /// Resolves (with an error, the sender being dropped) when the thread's
    /// runtime ends, whether it finished or failed.
    finished: oneshot::Receiver<()>,
    abandon: oneshot::Sender<()>,
    handle: JoinHandle<()>,
}

/// A serving thread stopped taking connections before shutdown.
#[derive(Debug, thiserror::Error)]
#[error("serving thread {0} has stopped")]
pub(crate) struct ThreadStopped(usize);

impl Threads {
    /// Starts one serving thread per pool and waits until each is ready.
    pub(crate) async fn start(shared: &SharedState, pools: &[Pool]) -> anyhow::Result<Self> {
        let (close, closed) = watch::channel(false);
        let mut threads = Vec::with_capacity(pools.len());
        for (index, pool) in pools.iter().enumerate() {
            let (connections, incoming) = mpsc::unbounded_channel();
            let open = Arc::new(AtomicUsize::new(0));
            let (ready, is_ready) = oneshot::channel();
            let (finished_tx, finished) = oneshot::channel();
            let (abandon, abandoned) = oneshot::channel();
            let thread = Thread {
                index,
                shared: shared.clone(),
                pool: pool.clone(),
                incoming,
                open: Arc::clone(&open),
                closed: closed.clone(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("serve-{index}"))
                .spawn(move || thread.run(ready, finished_tx, abandoned))
                .with_context(|| format!("cannot start serving thread {index}"))?;
            threads.push(ServingThread {
                connections,
                open,
                finished,
                abandon,
                handle,
            });
            is_ready
                .await
                .map_err(|_| anyhow::anyhow!("serving thread {index} stopped while starting"))??;
        }
        Ok(Self {
            threads,
            next: 0,
            close,
        })
    }

    /// Connections open on every thread.
    fn open_connections(&self) -> usize {
        self.threads
            .iter()
            .map(|thread| thread.open.load(Ordering::Relaxed))
            .sum()
    }

    /// Hands a connection to the thread with the fewest open connections.
    pub(crate) fn dispatch(&mut self, stream: std::net::TcpStream) -> Result<(), ThreadStopped> {
        let count = self.threads.len();
        let chosen = (0..count)
            .map(|offset| (self.next + offset) % count)
            .min_by_key(|&index| self.threads[index].open.load(Ordering::Relaxed))
            .expect("at least one serving thread");
        self.next = (chosen + 1) % count;
        let thread = &self.threads[chosen];
        let open = thread.open.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(
            thread = chosen,
            open,
            "connection handed to a serving thread"
        );
        thread.connections.send(stream).map_err(|_| {
            thread.open.fetch_sub(1, Ordering::Relaxed);
            ThreadStopped(chosen)
        })
    }

    /// Every thread stops taking connections and asks each of its
    /// connections to close once its request in flight is answered; waits
    /// up to `grace` for them to end and for the threads to close their
    /// pools, then abandons the rest (their requests are dropped). True
    /// when all finished in time.
    pub(crate) async fn finish(self, grace: Duration) -> bool {
        let _ = self.close.send(true);
        let (finished, rest): (Vec<_>, Vec<_>) = self
            .threads
            .into_iter()
            .map(|thread| (thread.finished, (thread.abandon, thread.handle)))
            .unzip();
        let all_finished = tokio::time::timeout(grace, futures_util::future::join_all(finished))
            .await
            .is_ok();
        let handles: Vec<_> = rest
            .into_iter()
            .map(|(abandon, handle)| {
                let _ = abandon.send(());
                handle
            })
            .collect();
        // Joining blocks; the threads end promptly once abandoned.
        let _ = tokio::task::spawn_blocking(move || {
            for handle in handles {
                let _ = handle.join();
            }
        })
        .await;
        all_finished
    }
}

/// What a serving thread starts with.
struct Thread {
    index: usize,
    shared: SharedState,
    pool: Pool,
    incoming: mpsc::UnboundedReceiver<std::net::TcpStream>,
    open: Arc<AtomicUsize>,
    closed: watch::Receiver<bool>,
}

/// Opens the thread's pool (on the thread's runtime, whose reactor its
/// connections then belong to), retrying with backoff while the database
/// is unreachable, and counts the pool warm.
async fn warm(pool: Pool, cold_pools: Arc<AtomicUsize>, thread: usize) {
    let started = std::time::Instant::now();
    let mut backoff = Duration::from_millis(100);
    loop {
        match pool.warm().await {
            Ok(connections) => {
                cold_pools.fetch_sub(1, Ordering::AcqRel);
                tracing::info!(
                    thread,
                    connections,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "request pool warm"
                );
                return;
            }
            Err(error) => {
                tracing::warn!(thread, %error, "cannot warm the request pool yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

impl Thread {
    fn run(
        self,
        ready: oneshot::Sender<anyhow::Result<()>>,
        finished: oneshot::Sender<()>,
        abandoned: oneshot::Receiver<()>,
    ) {
        let workers = self.shared.settings.serving_runtimes().1;
        let mut builder = if workers == 1 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder
                .worker_threads(workers)
                .thread_name(format!("serve-{}-worker", self.index));
            builder
        };
        let runtime = match builder.enable_all().build() {
            Ok(runtime) => runtime,
            Err(error) => {
                let _ = ready.send(Err(anyhow::Error::new(error).context(format!(
                    "cannot start the runtime of serving thread {}",
                    self.index
                ))));
                return;
            }
        };
        runtime.block_on(async move {
            let Self {
                index,
                shared,
                pool,
                incoming,
                open,
                closed,
            } = self;
            let settings = Arc::clone(&shared.settings);
            // Started on this thread's runtime, so that the batcher and the
            // connections it opens stay on this thread.
            let reads = AccountReader::start(
                pool.clone(),
                Arc::clone(&shared.dialect),
                settings.read_batching(pool.state().max_size),
                shared.metrics.db_read_batch_size.clone(),
            );
            let transactor = Transactor {
                pool: pool.clone(),
                policy: RetryPolicy::new(settings.transaction_max_retries),
                metrics: shared.metrics.clone(),
            };
            if settings.database_pool_warm {
                tokio::spawn(warm(
                    pool.clone(),
                    Arc::clone(&shared.cold_pools),
                    index,
                ));
            }
            let drained = shared.region_gate.drained_changes();
            let router = crate::http::router(shared.with_pool(transactor, reads));
            tokio::spawn(keep_a_timer_pending(settings.request_timeout()));
            let _ = ready.send(Ok(()));
            tracing::debug!(
                thread = index,
                pool = pool.state().max_size,
                "serving thread started"
            );
            tokio::select! {
                () = serve(router, incoming, open, closed, drained, settings.header_read_timeout()) => {
                    pool.close().await;
                    let _ = finished.send(());
                }
                _ = abandoned => {}
            }
        });
        // Dropping the runtime cancels whatever was abandoned.
    }
}

/// Keeps a timer that is always due sooner than any request's deadline.
///
/// Every request arms a deadline timer (`request_timeout_ms`). Tokio wakes
/// its I/O driver, a write to an eventfd and one more pass through
/// `epoll_wait`, whenever a new timer is due sooner than every timer that
/// was pending when the driver last parked; on a busy thread with no timer
/// pending that was more than half of all requests (a syscall each, in the
/// read benchmark). With this one always due within a fraction of the
/// request timeout, new deadlines are never the earliest.
async fn keep_a_timer_pending(request_timeout: Duration) {
    let period = (request_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
    }
}

/// Serves the connections handed to this thread until closed, then waits
/// for them to end.
async fn serve(
    router: Router,
    mut incoming: mpsc::UnboundedReceiver<std::net::TcpStream>,
    open: Arc<AtomicUsize>,
    mut closed: watch::Receiver<bool>,
    drained: watch::Receiver<bool>,
    header_read_timeout: Duration,
) {
    // Every connection task holds a clone; `recv` answers `None` once all
    // of them have ended.
    let (alive, mut all_ended) = mpsc::channel::<()>(1);
    let for_connections = closed.clone();
    loop {
        tokio::select! {
            stream = incoming.recv() => match stream {
                Some(stream) => {
                    let connection = Connection { open: Arc::clone(&open), _alive: alive.clone() };
                    tokio::spawn(connection.serve(
                        stream,
                        router.clone(),
                        for_connections.clone(),
                        drained.clone(),
                        header_read_timeout,
                    ));
                }
                None => break,
            },
            _ = closed.wait_for(|closed| *closed) => break,
        }
    }
    drop(alive);
    let _ = all_ended.recv().await;
}

/// One HTTP/1 connection on a serving thread.
struct Connection {
    open: Arc<AtomicUsize>,
    _alive: mpsc::Sender<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connection {
    async fn serve(
        self,
        stream: std::net::TcpStream,
        router: Router,
        mut closed: watch::Receiver<bool>,
        mut drained: watch::Receiver<bool>,
        header_read_timeout: Duration,
    ) {
        let stream = match tokio::net::TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "cannot register an accepted connection");
                return;
            }
        };
        // The header-read timeout bounds a slow request head (slowloris)
        // and, since hyper starts it whenever it waits for a head, an idle
        // keep-alive connection too.
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            _ = closed.wait_for(|closed| *closed) => {}
            // The region was drained while this connection was open: a
            // pooled client would keep using it (and the region) for as
            // long as it stays open, whatever DNS says now.
            () = becomes_drained(&mut drained) => {}
        }
        // Finish the request in flight (if any), then close.
        connection.as_mut().graceful_shutdown();
        if let Err(error) = connection.await {
            tracing::debug!(%error, "connection ended with an error");
        }
    }
}

/// Resolves when the drain flag turns on (not when it is already on: a
/// connection opened to a drained region is served, one request at a time,
/// with `Connection: close`).
async fn becomes_drained(drained: &mut watch::Receiver<bool>) {
    drained.borrow_and_update();
    loop {
        if drained.changed().await.is_err() {
            // The gate is gone (shutting down): never.
            std::future::pending::<()>().await;
        }
        if *drained.borrow_and_update() {
            return;
        }
    }
}

/// Accepts connections on `listener` and hands them to `threads` until
/// `stop` resolves; fails only when a serving thread has stopped.
pub(crate) async fn accept(
    listener: tokio::net::TcpListener,
    threads: &mut Threads,
    limits: AcceptLimits,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), ThreadStopped> {
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => return Ok(()),
        };
        match accepted {
            Ok((stream, _)) if threads.open_connections() >= limits.max_connections => {
                // Closed at once (each open connection costs a task and
                // its buffers): the client sees a close, not a hang.
                limits.refused.inc();
                drop(stream);
            }
            Ok((stream, _)) => {
                // TCP_NODELAY: a response is one write; Nagle would hold a
                // write that follows an unacknowledged one.
                let _ = stream.set_nodelay(true);
                match stream.into_std() {
                    Ok(stream) => threads.dispatch(stream)?,
                    Err(error) => tracing::warn!(%error, "cannot hand over an accepted connection"),
                }
            }
            // The peer gave up before we took the connection: nothing to do.
            Err(error) if is_connection_error(&error) => {}
            // Out of file descriptors and the like: wait instead of spinning,
            // as hyper's and axum's servers do.
            Err(error) => {
                tracing::error!(%error, "accept failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// What the acceptor enforces.
#[derive(Debug, Clone)]
pub(crate) struct AcceptLimits {
    /// Open connections beyond which new ones are closed at once.
    pub(crate) max_connections: usize,
    pub(crate) refused: prometheus::IntCounter,
}

fn is_connection_error(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
