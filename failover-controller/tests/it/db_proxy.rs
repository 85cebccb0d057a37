//! A TCP proxy between a controller and the test's PostgreSQL that a test
//! cuts and restores: the controller's real database path, cut for real
//! (its driver sees closed connections or silence, not a mock).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with the controller's database traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Forwards every byte both ways.
    Pass,
    /// Closes every open connection and every new one at once, as a
    /// database that is down (or a firewall that rejects) does.
    Refuse,
    /// Forwards nothing and closes nothing: open connections and new ones
    /// hang, as behind a blackhole. Held bytes flow again on `Pass`.
    Hold,
}

/// The proxy; stops when dropped.
pub struct DbProxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Cut>,
    task: tokio::task::JoinHandle<()>,
}

impl DbProxy {
    /// Listens on 127.0.0.1 and forwards to the server of `db_url`.
    pub async fn start(db_url: &str, initial: Cut) -> Self {
        let url = reqwest::Url::parse(db_url).expect("database URL");
        let upstream = format!(
            "{}:{}",
            url.host_str().expect("database host"),
            url.port().unwrap_or(5432)
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let (mode, _) = watch::channel(initial);
        let modes = mode.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let mut cut = modes.subscribe();
                if *cut.borrow_and_update() == Cut::Refuse {
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    // Held connections wait here before reaching the server.
                    if !wait_for_pass(&mut cut).await {
                        return;
                    }
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    let up = tokio::spawn(pump(client_read, server_write, cut.clone()));
                    pump(server_read, client_write, cut).await;
                    let _ = up.await;
                });
            }
        });
        Self { addr, mode, task }
    }

    /// The database URL through the proxy.
    pub fn url(&self, db_url: &str) -> String {
        let mut url = reqwest::Url::parse(db_url).expect("database URL");
        url.set_host(Some(&self.addr.ip().to_string())).unwrap();
        url.set_port(Some(self.addr.port())).unwrap();
        url.to_string()
    }

    pub fn set(&self, cut: Cut) {
        self.mode.send_replace(cut);
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.mode.send_replace(Cut::Refuse);
        self.task.abort();
    }
}

/// Waits until the proxy passes traffic; false when it refuses (close).
async fn wait_for_pass(cut: &mut watch::Receiver<Cut>) -> bool {
    loop {
        match *cut.borrow_and_update() {
            Cut::Pass => return true,
            Cut::Refuse => return false,
            Cut::Hold => {}
        }
        if cut.changed().await.is_err() {
            return false;
        }
    }
}

/// Copies one direction while the proxy passes; holds while it holds;
/// closes (dropping both halves) when it refuses or either side closes.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut cut: watch::Receiver<Cut>) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if !wait_for_pass(&mut cut).await {
            return;
        }
        tokio::select! {
            read = from.read(&mut buffer) => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                // Bytes read just as the cut began are held with the rest.
                if !wait_for_pass(&mut cut).await {
                    return;
                }
                if to.write_all(&buffer[..n]).await.is_err() {
                    return;
                }
            }
            changed = cut.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}
