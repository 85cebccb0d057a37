//! A user-space TCP proxy per address, the switch board of network faults.
//!
//! Every service instance, and every region's database connections, are
//! reached through one of these. Faults change the proxy's mode instead of
//! touching the kernel: this needs no root, leaves nothing behind when the
//! process dies, and gives the same behaviour on every machine.
//!
//! - `Pass`: bytes flow.
//! - `Delay(d)`: each chunk towards the client waits `d` (added latency).
//! - `Hold`: nothing flows; new connections are accepted and then ignored,
//!   so clients time out instead of being refused (a blackhole, or a
//!   database stall while it lasts: held bytes flow again once healed).
//! - `Down`: the listener is closed and open connections are cut, so
//!   clients are refused (the region's machines are gone).
//!
//! Independently, connections from `blocked_sources` are held: a partition
//! between one prober's address and this region; and on a database path, a
//! share of the chunks carrying `COMMIT` reach the server while the
//! connection is cut before the answer reaches the client (the
//! `commit-reset` fault: a commit whose outcome the client cannot know).
//!
//! Under every mode, a [`Wan`] link gives the proxy the geography of the
//! wide-area network between the source's region and the proxied one: the
//! connection's set-up is held for one round trip, and every chunk in each
//! direction is delayed by half of one (with jitter, and, for a lost
//! segment, a retransmission timeout), queued so that the delay is paid once
//! per round trip, not once per chunk. A request on a fresh connection then
//! costs two round trips and a TLS 1.3 handshake one more, as on the WAN;
//! `tc netem` would do the same in the kernel, which this machine lacks.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

mod pg_wire;

/// The smallest retransmission timeout of Linux TCP: what a lost segment
/// costs at least.
const MIN_RTO: Duration = Duration::from_millis(200);

/// The wide-area link between the sources and the proxied region.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Wan {
    /// Round trip by the source's region: the `R` of a source address
    /// `127.0.R.x`.
    pub rtt_by_region: BTreeMap<u8, Duration>,
    /// Round trip for sources of no listed region (and every source of a
    /// link with no list, such as a region's database path).
    pub default_rtt: Duration,
    /// Each one-way delay varies uniformly by up to this much either way.
    pub jitter: Duration,
    /// Share of chunks that stand for a lost segment: they wait a
    /// retransmission timeout (the round trip, at least 200 ms) more.
    pub loss: f64,
    /// On a database path: a chunk towards the server that carries a
    /// `COMMIT`, or executes a write outside any transaction block (which
    /// the server commits on its own), waits this much more (the consensus
    /// round trip of a write on a multi-region cluster, whose SQL gateway
    /// is in the region). The proxy follows the PostgreSQL protocol of such
    /// a link to tell them ([`pg_wire`]).
    pub commit_rtt: Duration,
}

impl Wan {
    /// The round trip from `source`.
    pub fn rtt(&self, source: IpAddr) -> Duration {
        let region = match source {
            IpAddr::V4(v4) => Some(v4.octets()[2]),
            IpAddr::V6(_) => None,
        };
        region
            .and_then(|r| self.rtt_by_region.get(&r))
            .copied()
            .unwrap_or(self.default_rtt)
    }

    /// One direction's delay for one chunk from `source`.
    fn one_way(&self, source: IpAddr) -> Duration {
        let rtt = self.rtt(source);
        let mut rng = rand::thread_rng();
        let half = rtt.as_secs_f64() / 2.0;
        let jitter = self.jitter.as_secs_f64();
        let mut delay = if jitter > 0.0 {
            (half + rng.gen_range(-jitter..=jitter)).max(0.0)
        } else {
            half
        };
        if self.loss > 0.0 && rng.gen_bool(self.loss.min(1.0)) {
            delay += rtt.max(MIN_RTO).as_secs_f64();
        }
        Duration::from_secs_f64(delay)
    }
}

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Delay(Duration),
    Hold,
    Down,
}

#[derive(Debug, Clone)]
struct ProxyState {
    mode: Mode,
    blocked_sources: BTreeSet<IpAddr>,
    wan: Option<Arc<Wan>>,
    /// Share of `COMMIT` chunks whose answer is cut (0: none).
    commit_reset_share: f64,
    /// Commits cut so far, over the proxy's life.
    commits_cut: Arc<AtomicU64>,
}

/// Handle to a running proxy.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub listen: SocketAddr,
    pub upstream: SocketAddr,
    state: watch::Sender<ProxyState>,
}

impl Proxy {
    /// Binds `listen` and forwards to `upstream` until the handle's last
    /// clone is dropped.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<Self> {
        Self::start_with_tls(listen, upstream, None).await
    }

    /// Like [`Proxy::start`], terminating TLS with `tls` when given, as a
    /// load balancer does: the WAN's delays apply to the encrypted bytes
    /// between the client and the proxy (so a handshake costs its round
    /// trips), the upstream gets plain HTTP.
    pub async fn start_with_tls(
        listen: SocketAddr,
        upstream: SocketAddr,
        tls: Option<TlsAcceptor>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let (state, receiver) = watch::channel(ProxyState {
            mode: Mode::Pass,
            blocked_sources: BTreeSet::new(),
            wan: None,
            commit_reset_share: 0.0,
            commits_cut: Arc::default(),
        });
        tokio::spawn(serve(Some(listener), listen, upstream, tls, receiver));
        Ok(Self {
            listen,
            upstream,
            state,
        })
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.send_modify(|state| state.mode = mode);
    }

    pub fn mode(&self) -> Mode {
        self.state.borrow().mode
    }

    /// The WAN link of new connections (`None`: the loopback's). Healing a
    /// fault keeps it: it is the geography, not a fault.
    pub fn set_wan(&self, wan: Option<Wan>) {
        self.state
            .send_modify(|state| state.wan = wan.map(Arc::new));
    }

    pub fn wan(&self) -> Option<Wan> {
        self.state.borrow().wan.as_deref().cloned()
    }

    pub fn block_source(&self, source: IpAddr) {
        self.state.send_modify(|state| {
            state.blocked_sources.insert(source);
        });
    }

    /// Cuts the answer of this share of the commits (0: none).
    pub fn set_commit_reset(&self, share: f64) {
        self.state
            .send_modify(|state| state.commit_reset_share = share);
    }

    /// Commits whose answer was cut so far.
    pub fn commits_cut(&self) -> u64 {
        self.state.borrow().commits_cut.load(Ordering::Relaxed)
    }

    /// Back to pass-through with no partition and no commit cut.
    pub fn heal(&self) {
        self.state.send_modify(|state| {
            state.mode = Mode::Pass;
            state.blocked_sources.clear();
            state.commit_reset_share = 0.0;
        });
    }
}

async fn serve(
    mut listener: Option<TcpListener>,
    listen: SocketAddr,
    upstream: SocketAddr,
    tls: Option<TlsAcceptor>,
    mut state: watch::Receiver<ProxyState>,
) {
    let mut connections = JoinSet::new();
    loop {
        let mode = state.borrow().mode;
        match (mode, listener.is_some()) {
            (Mode::Down, true) => {
                listener = None;
                connections.abort_all();
            }
            (Mode::Down, false) => {}
            (_, false) => match TcpListener::bind(listen).await {
                Ok(bound) => listener = Some(bound),
                Err(error) => {
                    tracing::warn!(%listen, %error, "proxy cannot re-bind; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            (_, true) => {}
        }
        tokio::select! {
            changed = state.changed() => {
                if changed.is_err() {
                    // Every handle dropped: stop.
                    connections.abort_all();
                    return;
                }
            }
            accepted = accept(listener.as_ref()) => {
                if let Ok((client, peer)) = accepted {
                    connections.spawn(forward(client, peer.ip(), upstream, tls.clone(), state.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Waits until traffic from `source` may flow; returns the delay to add.
async fn flowing(state: &mut watch::Receiver<ProxyState>, source: IpAddr) -> Option<Duration> {
    loop {
        let (mode, blocked) = {
            let current = state.borrow_and_update();
            (current.mode, current.blocked_sources.contains(&source))
        };
        match mode {
            Mode::Pass if !blocked => return Some(Duration::ZERO),
            Mode::Delay(delay) if !blocked => return Some(delay),
            _ => {}
        }
        if state.changed().await.is_err() {
            return None;
        }
    }
}

async fn forward(
    client: TcpStream,
    source: IpAddr,
    upstream: SocketAddr,
    tls: Option<TlsAcceptor>,
    mut state: watch::Receiver<ProxyState>,
) {
    if flowing(&mut state, source).await.is_none() {
        return;
    }
    // The link of the connection's whole life: the geography does not move.
    let wan = state.borrow().wan.clone();
    if let Some(wan) = &wan {
        // The handshake: SYN, SYN-ACK, then the first bytes can leave.
        tokio::time::sleep(wan.rtt(source)).await;
    }
    let _ = client.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    // A link that charges commits follows the protocol to find them.
    let session = wan
        .as_ref()
        .filter(|wan| !wan.commit_rtt.is_zero() && tls.is_none())
        .map(|_| Arc::new(std::sync::Mutex::new(pg_wire::Session::default())));
    let link = Link {
        source,
        wan,
        commit_cut: Arc::default(),
        session,
    };
    let Some(tls) = tls else {
        let Ok(server) = TcpStream::connect(upstream).await else {
            return;
        };
        let _ = server.set_nodelay(true);
        let (server_read, server_write) = server.into_split();
        let _ = tokio::try_join!(
            link.relay(client_read, server_write, state.clone(), false),
            link.relay(server_read, client_write, state, true),
        );
        return;
    };
    // The WAN (and every fault) sits between the client and the load
    // balancer; TLS ends at the load balancer, on the far side of an
    // in-memory pipe, and plain bytes go on to the instance.
    let (near, far) = tokio::io::duplex(64 * 1024);
    let (near_read, near_write) = tokio::io::split(near);
    let terminate = async move {
        let mut decrypted = tls.accept(far).await?;
        let mut server = TcpStream::connect(upstream).await?;
        let _ = server.set_nodelay(true);
        tokio::io::copy_bidirectional(&mut decrypted, &mut server)
            .await
            .map(|_| ())
    };
    let _ = tokio::try_join!(
        link.relay(client_read, near_write, state.clone(), false),
        link.relay(near_read, client_write, state, true),
        terminate,
    );
}

/// Whether a chunk of the PostgreSQL protocol from a client carries a
/// `COMMIT` (a simple query or a statement to parse; sqlx commits with the
/// former). Nothing else a client of the ledger sends spells it.
fn carries_commit(chunk: &[u8]) -> bool {
    chunk.windows(6).any(|w| w.eq_ignore_ascii_case(b"COMMIT"))
}

/// One connection's path: who it comes from and over what.
#[derive(Clone)]
struct Link {
    source: IpAddr,
    wan: Option<Arc<Wan>>,
    /// Set when a `COMMIT` went to the server whose answer must be lost:
    /// nothing more reaches the client, and the connection is closed.
    commit_cut: Arc<AtomicBool>,
    /// The PostgreSQL session, on a link that charges commits.
    session: Option<Arc<std::sync::Mutex<pg_wire::Session>>>,
}

impl Link {
    /// Follows the session with a chunk; true when the chunk, from the
    /// client, executes a write outside any transaction block.
    fn follow(&self, chunk: &[u8], towards_client: bool) -> bool {
        let Some(session) = &self.session else {
            return false;
        };
        let mut session = session.lock().unwrap_or_else(|e| e.into_inner());
        if towards_client {
            session.read_server(chunk);
            false
        } else {
            session.read_client(chunk)
        }
    }

    /// Copies `from` to `to`, each chunk held until it is due: the WAN's
    /// one-way delay (and, towards the client, a `Delay` fault's) after it
    /// arrived, never before the chunk ahead of it. Reading goes on while
    /// chunks wait, so a delay costs each round trip once.
    async fn relay(
        &self,
        mut from: impl AsyncRead + Unpin,
        mut to: impl AsyncWrite + Unpin,
        mut state: watch::Receiver<ProxyState>,
        towards_client: bool,
    ) -> std::io::Result<()> {
        // Each chunk with the time it is due and whether it is a commit
        // whose answer is cut.
        let (queue, mut due) = mpsc::channel::<(Instant, Vec<u8>, bool)>(256);
        let commits_cut = state.borrow().commits_cut.clone();
        let reading = async move {
            let mut buffer = vec![0u8; 16 * 1024];
            let mut last = Instant::now();
            loop {
                let n = from.read(&mut buffer).await?;
                if n == 0 {
                    return Ok::<_, std::io::Error>(());
                }
                let Some(fault_delay) = flowing(&mut state, self.source).await else {
                    return Ok(());
                };
                let autocommit_write = self.follow(&buffer[..n], towards_client);
                let mut at = Instant::now();
                if let Some(wan) = &self.wan {
                    at += wan.one_way(self.source);
                    if !towards_client
                        && !wan.commit_rtt.is_zero()
                        && (autocommit_write || carries_commit(&buffer[..n]))
                    {
                        at += wan.commit_rtt;
                    }
                }
                if towards_client {
                    at += fault_delay;
                }
                let share = state.borrow().commit_reset_share;
                let cut = !towards_client
                    && share > 0.0
                    && carries_commit(&buffer[..n])
                    && rand::thread_rng().gen_bool(share.min(1.0));
                // TCP delivers in order.
                at = at.max(last);
                last = at;
                if queue.send((at, buffer[..n].to_vec(), cut)).await.is_err() {
                    return Ok(());
                }
            }
        };
        let writing = async move {
            while let Some((at, bytes, cut)) = due.recv().await {
                tokio::time::sleep_until(at).await;
                if towards_client && self.commit_cut.load(Ordering::SeqCst) {
                    // The server answered a cut commit: drop the answer and
                    // the connection (both directions end with this error).
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "commit answer cut",
                    ));
                }
                if cut {
                    // Marked before the commit leaves, so that its answer,
                    // however fast, never reaches the client.
                    self.commit_cut.store(true, Ordering::SeqCst);
                    commits_cut.fetch_add(1, Ordering::Relaxed);
                }
                to.write_all(&bytes).await?;
            }
            to.shutdown().await
        };
        tokio::try_join!(reading, writing).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buffer = [0u8; 64];
                    while let Ok(n) = socket.read(&mut buffer).await {
                        if n == 0 || socket.write_all(&buffer[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        address
    }

    async fn round_trip(address: SocketAddr) -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect(address).await?;
        stream.write_all(b"ping").await?;
        let mut buffer = [0u8; 4];
        stream.read_exact(&mut buffer).await?;
        Ok(buffer.to_vec())
    }

    async fn free_address() -> SocketAddr {
        TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
    }

    /// A fresh connection through a WAN link of round trip R costs two
    /// round trips for one exchange (set-up, then the request and its
    /// answer); an exchange on a warm connection costs one, however many
    /// chunks it takes; the source's region picks the round trip.
    #[tokio::test]
    async fn a_wan_link_costs_round_trips_not_chunks() {
        let upstream = echo_server().await;
        let proxy = Proxy::start(free_address().await, upstream).await.unwrap();
        let rtt = Duration::from_millis(120);
        proxy.set_wan(Some(Wan {
            rtt_by_region: BTreeMap::from([(0, rtt), (9, Duration::from_millis(10))]),
            default_rtt: Duration::from_millis(500),
            ..Wan::default()
        }));
        // 127.0.0.1: region 0.
        let started = std::time::Instant::now();
        let mut stream = TcpStream::connect(proxy.listen).await.unwrap();
        stream.write_all(b"ping").await.unwrap();
        let mut buffer = [0u8; 4];
        stream.read_exact(&mut buffer).await.unwrap();
        let cold = started.elapsed();
        assert!(cold >= rtt * 2, "cold exchange {cold:?}");
        assert!(
            cold < rtt * 2 + Duration::from_millis(80),
            "cold exchange {cold:?}"
        );
        // Warm: 256 KiB (many chunks each way) come back about one round
        // trip after they left: the delay is paid per round trip, not per
        // chunk (16 KiB at a time, one chunk per one-way delay, would take
        // seconds).
        let (mut reader, mut writer) = stream.into_split();
        let started = std::time::Instant::now();
        let sending = tokio::spawn(async move {
            writer.write_all(&vec![7u8; 256 * 1024]).await.unwrap();
            writer
        });
        let mut buffer = vec![0u8; 256 * 1024];
        reader.read_exact(&mut buffer).await.unwrap();
        let warm = started.elapsed();
        let _writer = sending.await.unwrap();
        assert!(warm >= rtt, "warm exchange {warm:?}");
        assert!(
            warm < rtt + Duration::from_millis(500),
            "warm exchange {warm:?}"
        );
        assert_eq!(
            proxy.wan().unwrap().rtt("127.0.9.200".parse().unwrap()),
            Duration::from_millis(10)
        );
        assert_eq!(
            proxy.wan().unwrap().rtt("127.0.5.200".parse().unwrap()),
            Duration::from_millis(500)
        );
        // Healing a fault keeps the geography; removing the link restores
        // the loopback.
        proxy.heal();
        assert!(proxy.wan().is_some());
        proxy.set_wan(None);
        let started = std::time::Instant::now();
        assert_eq!(round_trip(proxy.listen).await.unwrap(), b"ping");
        assert!(started.elapsed() < Duration::from_millis(60));
    }

    async fn exchange(stream: &mut TcpStream, message: &[u8]) -> Duration {
        let started = std::time::Instant::now();
        stream.write_all(message).await.unwrap();
        let mut buffer = vec![0u8; message.len()];
        stream.read_exact(&mut buffer).await.unwrap();
        started.elapsed()
    }

    /// An HTTP/1.1 server that answers every request with a short 200 on
    /// the same connection.
    async fn http_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    let mut request = Vec::new();
                    while let Ok(n) = socket.read(&mut buffer).await {
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buffer[..n]);
                        if request.windows(4).any(|w| w == b"\r\n\r\n") {
                            request.clear();
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if socket.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        address
    }

    /// Terminating TLS behind the WAN: a first request over HTTPS costs
    /// three round trips (TCP set-up, the TLS 1.3 handshake, the request),
    /// as a cold HTTPS connection across regions does; the next one on the
    /// same connection costs one.
    #[tokio::test]
    async fn an_https_handshake_through_the_wan_costs_its_round_trips() {
        let dir = std::env::temp_dir().join(format!("proxy-tls-{}", uuid::Uuid::new_v4()));
        let listen = free_address().await;
        let tls =
            crate::deployment::tls::DeploymentTls::create(&dir, "api.test.", &[listen]).unwrap();
        let proxy = Proxy::start_with_tls(listen, http_server().await, Some(tls.acceptor.clone()))
            .await
            .unwrap();
        let rtt = Duration::from_millis(100);
        proxy.set_wan(Some(Wan {
            default_rtt: rtt,
            ..Wan::default()
        }));
        let client = crate::deployment::tls::client_builder(&tls.ca_pem)
            .build()
            .unwrap();
        let url = format!("https://{listen}/");
        let started = std::time::Instant::now();
        let answer = client.get(&url).send().await.unwrap();
        assert_eq!(answer.text().await.unwrap(), "ok");
        let cold = started.elapsed();
        assert!(cold >= rtt * 3, "cold HTTPS request {cold:?}");
        assert!(
            cold < rtt * 3 + Duration::from_millis(150),
            "cold HTTPS request {cold:?}"
        );
        let started = std::time::Instant::now();
        client.get(&url).send().await.unwrap().text().await.unwrap();
        let warm = started.elapsed();
        assert!(warm >= rtt, "warm HTTPS request {warm:?}");
        assert!(warm < rtt * 2, "warm HTTPS request {warm:?}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_commit_waits_the_consensus_round_trip() {
        let upstream = echo_server().await;
        let proxy = Proxy::start(free_address().await, upstream).await.unwrap();
        proxy.set_wan(Some(Wan {
            default_rtt: Duration::from_millis(2),
            commit_rtt: Duration::from_millis(150),
            ..Wan::default()
        }));
        let mut stream = TcpStream::connect(proxy.listen).await.unwrap();
        let read = exchange(&mut stream, b"Q\0\0\0\x0dSELECT 1\0").await;
        assert!(read < Duration::from_millis(100), "a read took {read:?}");
        let commit = exchange(&mut stream, b"Q\0\0\0\x0bCOMMIT\0").await;
        assert!(
            commit >= Duration::from_millis(150),
            "a commit took {commit:?}"
        );
    }

    #[tokio::test]
    async fn lost_segments_wait_a_retransmission_timeout() {
        let upstream = echo_server().await;
        let proxy = Proxy::start(free_address().await, upstream).await.unwrap();
        proxy.set_wan(Some(Wan {
            default_rtt: Duration::from_millis(10),
            loss: 1.0,
            ..Wan::default()
        }));
        let started = std::time::Instant::now();
        assert_eq!(round_trip(proxy.listen).await.unwrap(), b"ping");
        // Set-up, then both directions lost once: 10 + 2 x (5 + 200).
        assert!(
            started.elapsed() >= Duration::from_millis(420),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn modes_behave_like_the_faults_they_stand_for() {
        let upstream = echo_server().await;
        let proxy = Proxy::start(free_address().await, upstream).await.unwrap();
        assert_eq!(round_trip(proxy.listen).await.unwrap(), b"ping");

        proxy.set_mode(Mode::Hold);
        let held = tokio::time::timeout(Duration::from_millis(300), round_trip(proxy.listen)).await;
        assert!(
            held.is_err(),
            "a held connection times out instead of failing fast"
        );

        proxy.set_mode(Mode::Down);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused = round_trip(proxy.listen).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

        proxy.set_mode(Mode::Delay(Duration::from_millis(200)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        assert_eq!(round_trip(proxy.listen).await.unwrap(), b"ping");
        assert!(started.elapsed() >= Duration::from_millis(200));

        proxy.heal();
        proxy.block_source("127.0.0.1".parse().unwrap());
        let partitioned =
            tokio::time::timeout(Duration::from_millis(300), round_trip(proxy.listen)).await;
        assert!(partitioned.is_err(), "a blocked source is held");
        proxy.heal();
        assert_eq!(round_trip(proxy.listen).await.unwrap(), b"ping");
    }
}
