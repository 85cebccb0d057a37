//! The commit cut of the database proxies, against a server that records
//! what reached it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::proxy::Proxy;

/// Answers every chunk with `ok` and keeps what it received.
async fn recording_server() -> (std::net::SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let keep = received.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let keep = keep.clone();
            tokio::spawn(async move {
                let mut buffer = [0u8; 256];
                while let Ok(n) = socket.read(&mut buffer).await {
                    if n == 0 {
                        return;
                    }
                    keep.lock().unwrap().extend_from_slice(&buffer[..n]);
                    if socket.write_all(b"ok").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (address, received)
}

async fn exchange(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(message).await?;
    let mut buffer = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut buffer))
        .await
        .map_err(|_| std::io::Error::other("timed out"))??;
    Ok(buffer.to_vec())
}

#[tokio::test]
async fn a_cut_commit_reaches_the_server_and_its_answer_never_the_client() {
    let (server, received) = recording_server().await;
    let free = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = Proxy::start(free, server).await.unwrap();
    proxy.set_commit_reset(1.0);

    let mut stream = TcpStream::connect(free).await.unwrap();
    assert_eq!(
        exchange(&mut stream, b"Q\0\0\0\x0dSELECT 1\0")
            .await
            .unwrap(),
        b"ok"
    );
    let cut = exchange(&mut stream, b"Q\0\0\0\x0bCOMMIT\0").await;
    assert!(
        cut.is_err(),
        "the commit's answer reached the client: {cut:?}"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        received.lock().unwrap().windows(6).any(|w| w == b"COMMIT"),
        "the commit never reached the server"
    );
    assert_eq!(proxy.commits_cut(), 1);

    // Healed: commits answer again.
    proxy.heal();
    let mut stream = TcpStream::connect(free).await.unwrap();
    assert_eq!(
        exchange(&mut stream, b"Q\0\0\0\x0bCOMMIT\0").await.unwrap(),
        b"ok"
    );
    assert_eq!(proxy.commits_cut(), 1);
}

#[test]
fn the_outage_faults_have_a_readable_wire_form() {
    use crate::deployment::FaultAction;
    let cases = [
        (
            r#"{"kind": "db-crash", "on": true}"#,
            FaultAction::DbCrash { on: true },
        ),
        (
            r#"{"kind": "commit-reset", "target": "eu-west-1", "on": true, "share": 0.3}"#,
            FaultAction::CommitReset {
                target: "eu-west-1".into(),
                on: true,
                share: Some(0.3),
            },
        ),
        (
            r#"{"kind": "controller-db-cut", "target": "eu-west-1", "on": false}"#,
            FaultAction::ControllerDbCut {
                target: "eu-west-1".into(),
                on: false,
            },
        ),
        (
            r#"{"kind": "route53-throttle", "on": true}"#,
            FaultAction::Route53Throttle { on: true },
        ),
    ];
    for (wire, action) in cases {
        assert_eq!(
            serde_json::from_str::<FaultAction>(wire).unwrap(),
            action,
            "{wire}"
        );
    }
    assert_eq!(FaultAction::DbCrash { on: true }.target(), None);
    assert!(
        serde_json::from_str::<FaultAction>(r#"{"kind": "db-crash", "on": true, "target": "x"}"#)
            .is_err(),
        "a deployment-wide fault names no region"
    );
}
