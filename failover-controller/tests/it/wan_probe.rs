//! HTTPS probes across a WAN: a TLS health server behind a proxy that
//! holds each connection's set-up for one round trip and delays every
//! chunk by half of one each way, as a 220 ms path (us-east-1 to
//! ap-southeast-1) does. A cold probe there costs three round trips (TCP,
//! TLS 1.3, the request) and more than a 400 ms timeout: without the round
//! trip in `probe.round_trip_ms` every reconnect fails the region; with it,
//! the region's timeout is a cold connection's and the probe succeeds.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use failover_controller::config;
use failover_controller::metrics::Metrics;
use failover_controller::probe::Prober;
use failover_controller::verdict::Verdict;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::tls_probe::{
    probe_settings_toml, vote, ClientAuth, ProbeTlsFiles, TempFile, TestCa, TlsHealthServer,
    Validity,
};

/// Forwards 127.0.0.1:<port> to `upstream` across a path of `rtt`.
async fn wan_proxy(upstream: SocketAddr, rtt: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                // SYN, SYN-ACK: the set-up's round trip.
                tokio::time::sleep(rtt).await;
                let Ok(server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(one_way(client_read, server_write, rtt / 2));
                one_way(server_read, client_write, rtt / 2).await;
            });
        }
    });
    address
}

/// Copies chunk by chunk, each delivered `delay` after it was read
/// (chunks in flight together arrive together, as on a wire).
async fn one_way(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 16384];
        while let Ok(n) = from.read(&mut buffer).await {
            if n == 0
                || sender
                    .send((Instant::now() + delay, buffer[..n].to_vec()))
                    .is_err()
            {
                break;
            }
        }
    });
    while let Some((due, chunk)) = receiver.recv().await {
        tokio::time::sleep_until(due.into()).await;
        if to.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[tokio::test]
async fn a_far_region_is_probed_with_the_time_of_a_cold_connection() {
    let ca = TestCa::new();
    let ca_file = TempFile::new("pem", &ca.pem);
    let near = TlsHealthServer::start(
        ca.server_identity("localhost", Validity::Current),
        ClientAuth::None,
    )
    .await;
    let far_server = TlsHealthServer::start(
        ca.server_identity("localhost", Validity::Current),
        ClientAuth::None,
    )
    .await;
    let far_port: u16 = far_server
        .url()
        .split(':')
        .nth(2)
        .and_then(|rest| rest.split('/').next())
        .and_then(|port| port.parse().ok())
        .unwrap();
    let far = wan_proxy(
        SocketAddr::from(([127, 0, 0, 1], far_port)),
        Duration::from_millis(220),
    )
    .await;
    let regions = [
        ("us-east-1", near.url()),
        (
            "ap-southeast-1",
            format!("https://localhost:{}/healthz/instance", far.port()),
        ),
    ];
    let tls = ProbeTlsFiles {
        ca_file: Some(&ca_file),
        ..Default::default()
    };
    let prober = |round_trips: &str| {
        let text = probe_settings_toml(&regions, &tls)
            .replace("timeout_ms = 1500", "timeout_ms = 400")
            .replace("[dns]", &format!("{round_trips}[dns]"));
        let file = TempFile::new("toml", &text);
        let env = vec![("FAILOVER_REGION".to_string(), "us-east-1".to_string())];
        let settings = config::load(Some(&file.0), env, &Default::default()).expect("settings");
        Prober::new(&settings, Metrics::new()).expect("prober")
    };

    // The LAN's timeout for every region: the cold probe of the far one
    // (about 660 ms) times out, and the region is down from here.
    let mut lan = prober("");
    let votes = lan.round().await;
    assert_eq!(vote(&votes, "us-east-1").verdict, Verdict::Up, "{votes:?}");
    let far_vote = vote(&votes, "ap-southeast-1");
    assert_eq!(far_vote.verdict, Verdict::Down, "{far_vote:?}");
    assert_eq!(far_vote.last_error, "timeout", "{far_vote:?}");

    // With its round trip: 3 x 220 ms + 200 ms = 860 ms for that region,
    // 400 ms still for the near one; the cold probe succeeds.
    let mut wan = prober("[probe.round_trip_ms.us-east-1]\n\"ap-southeast-1\" = 220.0\n");
    assert_eq!(wan.timeouts()["ap-southeast-1"], Duration::from_millis(860));
    assert_eq!(wan.timeouts()["us-east-1"], Duration::from_millis(400));
    let started = Instant::now();
    let votes = wan.round().await;
    let cold = started.elapsed();
    let far_vote = vote(&votes, "ap-southeast-1");
    assert_eq!(far_vote.verdict, Verdict::Up, "{far_vote:?}");
    assert!(
        cold > Duration::from_millis(600),
        "a cold probe across 220 ms took only {cold:?}: the proxy does not model the WAN"
    );
    println!("cold HTTPS probe across a 220 ms round trip: {cold:?}");
}
