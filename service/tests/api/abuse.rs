//! Hostile and careless clients against the running service: a flood of
//! health probes while the database is slow does not drain the region; a
//! storm of clients that disconnect mid-request never takes more database
//! connections than the pool's size; thousands of half-open connections
//! (slowloris) against the real binary leave legitimate requests served
//! within their p99 target.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{
    create_database, database_url, metric_value, server_url, test_settings, TestApp,
};

/// A TCP proxy to `upstream` that delays everything the server sends by
/// `delay`: a slow database (every query takes at least that long).
async fn slow_proxy(upstream: std::net::SocketAddr, delay: Duration) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let upstream = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                let mut buffer = vec![0u8; 64 * 1024];
                while let Ok(n) = server_read.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    if client_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
                upstream.abort();
            });
        }
    });
    address
}

fn socket_of(url: &str) -> std::net::SocketAddr {
    let url = url::Url::parse(url).unwrap();
    let host = url.host_str().unwrap();
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{}", url.port().unwrap_or(5432))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_health_flood_with_a_slow_database_does_not_drain_the_region() {
    let url = create_database(&server_url()).await;
    let proxy = slow_proxy(socket_of(&url), Duration::from_millis(100)).await;
    let slow_url = url.replacen(&socket_of(&url).to_string(), &proxy.to_string(), 1);
    let mut settings = test_settings("us-east-1", &slow_url);
    // Opening a connection takes seven round trips through the proxy.
    settings.readiness_timeout_ms = 2000;
    let app = Arc::new(TestApp::spawn_on(settings, true).await);
    let metrics_before = metric_value(&app.metrics().await, "service_readiness_db_checks_total");

    let started = Instant::now();
    let flood = Duration::from_secs(3);
    let tasks: Vec<_> = (0..96)
        .map(|n| {
            let app = app.clone();
            tokio::spawn(async move {
                let path = ["/readyz", "/healthz/region", "/healthz/instance"][n % 3];
                let mut statuses = Vec::new();
                while started.elapsed() < flood {
                    let response = app
                        .anonymous
                        .get(format!("{}{path}", app.address))
                        .send()
                        .await
                        .unwrap();
                    statuses.push(response.status());
                }
                (path, statuses)
            })
        })
        .collect();
    let mut answered = 0;
    for task in tasks {
        let (path, statuses) = task.await.unwrap();
        answered += statuses.len();
        let failed = statuses
            .iter()
            .filter(|status| **status != StatusCode::OK)
            .count();
        assert_eq!(failed, 0, "{path}: {failed} of {} not 200", statuses.len());
    }
    let checks =
        metric_value(&app.metrics().await, "service_readiness_db_checks_total") - metrics_before;
    println!("{answered} health answers in 3 s with a 100 ms database; {checks} database checks for /readyz");
    // One check per readiness_cache_ms (250 ms) at most, each at least 100 ms.
    assert!(checks <= 3000.0 / 250.0 + 2.0, "{checks} database checks");
    Arc::into_inner(app).expect("sole owner").stop().await;
}

/// The database a URL names.
fn database_name(url: &str) -> String {
    let path = url.rsplit('/').next().unwrap();
    path.split('?').next().unwrap().to_owned()
}

/// Server processes of `database` that match `condition` (SQL over
/// `pg_stat_activity`).
async fn activity(pool: &sqlx::PgPool, database: &str, condition: &str) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND {condition}"
    ))
    .bind(database)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Server processes of the service's connections to `database`.
async fn backends(pool: &sqlx::PgPool, database: &str) -> i64 {
    activity(pool, database, "application_name LIKE 'ledger-service/%'").await
}

#[tokio::test]
async fn a_disconnect_storm_never_takes_more_connections_than_the_pool() {
    let url = create_database(&server_url()).await;
    let database = database_name(&url);
    let mut settings = test_settings("us-east-1", &url);
    settings.database_pool_size = 4;
    let app = Arc::new(TestApp::spawn_on(settings, true).await);
    let a = app.create_account("a", 1_000).await;
    let b = app.create_account("b", 0).await;
    let observer = sqlx::PgPool::connect(&database_url(&server_url(), "postgres"))
        .await
        .unwrap();

    // Transfers from a locked row wait in the database; their clients give
    // up after 200 ms and disconnect, three waves of forty.
    let mut locker = crate::helpers::lock_row(&url, a).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .default_headers({
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(
                "authorization",
                format!("Bearer {}", app.key).parse().unwrap(),
            );
            headers
        })
        .build()
        .unwrap();
    let mut most = 0;
    for wave in 0..3 {
        let requests: Vec<_> = (0..40)
            .map(|n| {
                let (client, address) = (impatient.clone(), app.address.clone());
                tokio::spawn(async move {
                    let _ = client
                        .post(format!("{address}/v1/transfers"))
                        .header("Idempotency-Key", format!("storm-{wave}-{n}"))
                        .json(&serde_json::json!({"from": a, "to": b, "amount": 1}))
                        .send()
                        .await;
                })
            })
            .collect();
        for _ in 0..10 {
            most = most.max(backends(&observer, &database).await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for request in requests {
            request.await.unwrap();
        }
    }
    use sqlx::Executor;
    locker.execute("ROLLBACK").await.unwrap();
    for _ in 0..20 {
        most = most.max(backends(&observer, &database).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let opened = metric_value(&app.metrics().await, "service_db_connections_opened_total");
    println!(
        "at most {most} server connections (pool 4 + health 2, and a canceller each); {opened} \
         opened by the request pools"
    );
    assert!(
        most <= 4 + 2 + 2,
        "{most} server connections for a pool of 4 and a health pool of 2, a canceller each"
    );
    // The cancelled requests' connections were rolled back and reused, not replaced.
    assert!(opened <= 4.0, "{opened} connections opened");
    // And the service still serves.
    assert_eq!(
        app.transfer("after-the-storm", a, b, 1).await.status(),
        StatusCode::CREATED
    );
    Arc::into_inner(app).expect("sole owner").stop().await;
}

/// Backends of `database` waiting for a lock.
async fn lock_waiters(pool: &sqlx::PgPool, database: &str) -> i64 {
    activity(pool, database, "wait_event_type = 'Lock'").await
}

/// A client that gives up while its transfer waits for a row lock (behind
/// another transaction, as behind a lease transfer of a dead region) takes
/// its statement out of the lock queue at once, not at the statement
/// timeout (5 s): its retry is not queued behind its own abandoned attempt,
/// nor is anyone else's. Once the lock is gone, transfers go through.
#[tokio::test]
async fn a_cancelled_request_leaves_the_lock_queue_at_once() {
    let url = create_database(&server_url()).await;
    let database = database_name(&url);
    let settings = test_settings("us-east-1", &url);
    assert!(settings.database_statement_timeout_ms >= 5_000);
    let app = TestApp::spawn_on(settings, true).await;
    let a = app.create_account("a", 1_000).await;
    let b = app.create_account("b", 0).await;
    let observer = sqlx::PgPool::connect(&database_url(&server_url(), "postgres"))
        .await
        .unwrap();
    let mut locker = crate::helpers::lock_row(&url, a).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    for n in 0..3 {
        let gave_up = impatient
            .post(format!("{}/v1/transfers", app.address))
            .header("authorization", format!("Bearer {}", app.key))
            .header("Idempotency-Key", format!("abandoned-{n}"))
            .json(&serde_json::json!({"from": a, "to": b, "amount": 1}))
            .send()
            .await;
        assert!(gave_up.is_err_and(|e| e.is_timeout()));
    }
    let gone = Instant::now();
    loop {
        let waiting = lock_waiters(&observer, &database).await;
        if waiting == 0 {
            break;
        }
        assert!(
            gone.elapsed() < Duration::from_secs(2),
            "{waiting} abandoned statements still wait for the lock {:?} after their clients left",
            gone.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "the abandoned transfers left the lock queue {:?} after the last client gave up",
        gone.elapsed()
    );
    // The way back: the lock released, a transfer goes through at once.
    use sqlx::Executor;
    locker.execute("ROLLBACK").await.unwrap();
    let started = Instant::now();
    assert_eq!(
        app.transfer("after-the-lock", a, b, 1).await.status(),
        StatusCode::CREATED
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    app.stop().await;
}

const BINARY: &str = env!("CARGO_BIN_EXE_service");

#[tokio::test]
async fn slowloris_does_not_stop_legitimate_requests() {
    let url = create_database(&server_url()).await;
    let seeder = TestApp::spawn_on(test_settings("us-east-1", &url), true).await;
    let account = seeder.create_account("a", 1).await;
    let key = seeder.key.clone();
    seeder.stop().await;

    let port = crate::helpers::free_port();
    let _child = tokio::process::Command::new(BINARY)
        .env("SERVICE_REGION", "us-east-1")
        .env("SERVICE_DATABASE_URL", &url)
        .env("SERVICE_LISTEN_ADDRESS", format!("127.0.0.1:{port}"))
        .env(
            "SERVICE_ADMIN_ADDRESS",
            format!("127.0.0.1:{}", crate::helpers::free_port()),
        )
        .env("SERVICE_HTTP_HEADER_READ_TIMEOUT_MS", "3000")
        .env("SERVICE_RATE_LIMIT_PER_SECOND", "0")
        .env("SERVICE_LOG_FILTER", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = crate::helpers::client_with_key(&key);
    let ready = crate::helpers::eventually(Duration::from_secs(10), || async {
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    })
    .await;
    assert!(ready.is_some(), "the service did not become ready");

    // Thousands of connections that send half a request head and stall.
    let mut attackers = Vec::new();
    for _ in 0..3000 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream
            .write_all(b"GET /v1/accounts HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        attackers.push(stream);
    }
    let opened = Instant::now();
    let mut latencies = Vec::new();
    while opened.elapsed() < Duration::from_secs(2) {
        let started = Instant::now();
        let response = client
            .get(format!("{base}/v1/accounts/{account}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    println!(
        "slowloris: 3000 half-open connections; {} reads, p99 {p99:?}",
        latencies.len()
    );
    assert!(p99 < Duration::from_millis(100), "p99 {p99:?}");
    // The header-read timeout closes every half-open connection.
    let mut closed = 0;
    for mut stream in attackers {
        let mut buffer = [0u8; 1024];
        let deadline = Duration::from_secs(6)
            .saturating_sub(opened.elapsed())
            .max(Duration::from_millis(10));
        if let Ok(Ok(_)) = tokio::time::timeout(deadline, async {
            // A 408 or nothing, then the end of the stream.
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return Ok::<_, std::io::Error>(()),
                    Ok(_) => continue,
                }
            }
        })
        .await
        {
            closed += 1;
        }
    }
    assert_eq!(
        closed, 3000,
        "half-open connections still open after the header timeout"
    );
}
