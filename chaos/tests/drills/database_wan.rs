//! The database path's WAN on a real PostgreSQL: a write pays the
//! consensus round trip of a multi-region commit when it commits, whether
//! by its transaction's `COMMIT` or on its own (a statement outside any
//! transaction block, as the controller's votes, lease and drain flags
//! are), and a read or a write inside a block does not.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chaos::proxy::{Proxy, Wan};
use tokio_postgres::{Client, NoTls};

const COMMIT_RTT: Duration = Duration::from_millis(300);

/// A connection to the test server through a database proxy whose link
/// charges commits `COMMIT_RTT` (and nothing else).
async fn through_proxy() -> (Proxy, Client) {
    let server = std::env::var("TEST_DATABASE_URL")
        .expect("TEST_DATABASE_URL must point at a PostgreSQL server (scripts/test.sh sets it)");
    let mut url = url::Url::parse(&server).unwrap();
    let host = url.host_str().unwrap().to_owned();
    let upstream: SocketAddr = tokio::net::lookup_host((host.as_str(), url.port().unwrap_or(5432)))
        .await
        .unwrap()
        .next()
        .unwrap();
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = Proxy::start(listen, upstream).await.unwrap();
    proxy.set_wan(Some(Wan {
        commit_rtt: COMMIT_RTT,
        ..Wan::default()
    }));
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(listen.port())).unwrap();
    let (client, connection) = tokio_postgres::connect(url.as_str(), NoTls).await.unwrap();
    tokio::spawn(connection);
    (proxy, client)
}

async fn timed<F: std::future::Future>(what: F) -> Duration {
    let started = Instant::now();
    what.await;
    started.elapsed()
}

#[tokio::test]
async fn a_write_pays_the_commit_round_trip_once_when_it_commits() {
    let (_proxy, client) = through_proxy().await;
    client
        .batch_execute("CREATE TEMP TABLE votes (id int PRIMARY KEY, up bool)")
        .await
        .unwrap();
    let insert = "INSERT INTO votes VALUES ($1, true) ON CONFLICT (id) DO UPDATE SET up = true";
    // On its own, prepared once and executed again by name: each commits.
    for id in [1i32, 2, 1] {
        let took = timed(async { client.execute(insert, &[&id]).await.unwrap() }).await;
        assert!(took >= COMMIT_RTT, "a write on its own took {took:?}");
    }
    let took = timed(async { client.query("SELECT * FROM votes", &[]).await.unwrap() }).await;
    assert!(took < COMMIT_RTT, "a read took {took:?}");

    // In a transaction block the writes wait for the COMMIT, which pays.
    let mut in_block = Duration::ZERO;
    client.batch_execute("BEGIN").await.unwrap();
    for id in [3i32, 4] {
        in_block += timed(async { client.execute(insert, &[&id]).await.unwrap() }).await;
    }
    let commit = timed(async { client.batch_execute("COMMIT").await.unwrap() }).await;
    assert!(
        in_block < COMMIT_RTT,
        "two writes inside a block took {in_block:?}"
    );
    assert!(commit >= COMMIT_RTT, "the COMMIT took {commit:?}");

    // The way back out of a block: writes on their own pay again.
    let took = timed(async { client.execute(insert, &[&5i32]).await.unwrap() }).await;
    assert!(took >= COMMIT_RTT, "a write after the block took {took:?}");
    let rows = client
        .query("SELECT count(*) FROM votes", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 5);
}
