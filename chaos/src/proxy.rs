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
//! between one prober's address and this region.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Delay(Duration),
    Hold,
    Down,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ProxyState {
    mode: Mode,
    blocked_sources: BTreeSet<IpAddr>,
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
        let listener = TcpListener::bind(listen).await?;
        let (state, receiver) = watch::channel(ProxyState {
            mode: Mode::Pass,
            blocked_sources: BTreeSet::new(),
        });
        tokio::spawn(serve(Some(listener), listen, upstream, receiver));
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

    pub fn block_source(&self, source: IpAddr) {
        self.state.send_modify(|state| {
            state.blocked_sources.insert(source);
        });
    }

    /// Back to pass-through with no partition.
    pub fn heal(&self) {
        self.state.send_modify(|state| {
            state.mode = Mode::Pass;
            state.blocked_sources.clear();
        });
    }
}

async fn serve(
    mut listener: Option<TcpListener>,
    listen: SocketAddr,
    upstream: SocketAddr,
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
                    connections.spawn(forward(client, peer.ip(), upstream, state.clone()));
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
    mut client: TcpStream,
    source: IpAddr,
    upstream: SocketAddr,
    mut state: watch::Receiver<ProxyState>,
) {
    if flowing(&mut state, source).await.is_none() {
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let mut up_state = state.clone();
    let upstream_direction = async {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = client_read.read(&mut buffer).await?;
            if n == 0 {
                server_write.shutdown().await?;
                return Ok::<_, std::io::Error>(());
            }
            if flowing(&mut up_state, source).await.is_none() {
                return Ok(());
            }
            server_write.write_all(&buffer[..n]).await?;
        }
    };
    let downstream_direction = async {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = server_read.read(&mut buffer).await?;
            if n == 0 {
                client_write.shutdown().await?;
                return Ok::<_, std::io::Error>(());
            }
            match flowing(&mut state, source).await {
                None => return Ok(()),
                Some(delay) if !delay.is_zero() => tokio::time::sleep(delay).await,
                Some(_) => {}
            }
            client_write.write_all(&buffer[..n]).await?;
        }
    };
    let _ = tokio::try_join!(upstream_direction, downstream_direction);
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
