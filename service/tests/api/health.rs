//! Health endpoints and the region gate: the database going away and coming
//! back, and the drain flag written by the failover controller.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{create_database, eventually, test_settings, DedicatedPostgres, TestApp};

#[tokio::test]
async fn a_healthy_instance_is_live_ready_and_serving() {
    let app = TestApp::spawn().await;
    for path in ["/livez", "/readyz", "/healthz/region", "/healthz/instance"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ok");
        assert_eq!(body["region"], "us-east-1");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_drain_flag_turns_region_health_503_within_a_second() {
    let app = TestApp::spawn().await;
    sqlx::query(
        "INSERT INTO region_state (region, drained, reason, actor, fencing_epoch) \
         VALUES ('us-east-1', true, 'region-kill drill', 'failover-controller', 1)",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let took = eventually(Duration::from_secs(1), || async {
        app.get("/healthz/region").await.status() == StatusCode::SERVICE_UNAVAILABLE
    })
    .await
    .expect("region health turned 503 within one second");
    let body: Value = app.get("/healthz/region").await.json().await.unwrap();
    assert_eq!(body["status"], "drained");
    assert!(body["reason"]
        .as_str()
        .unwrap()
        .contains("region-kill drill"));
    // Draining is not a readiness failure: the instance still serves anyone
    // who reaches it, while DNS moves users away.
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    // Nor a health failure: the controllers probe /healthz/instance, so a
    // drained region can prove it is well and return after the hold-down.
    let response = app.get("/healthz/instance").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["drained"], true);
    assert!(body["reason"]
        .as_str()
        .unwrap()
        .contains("region-kill drill"));

    sqlx::query("UPDATE region_state SET drained = false WHERE region = 'us-east-1'")
        .execute(&app.pool)
        .await
        .unwrap();
    eventually(Duration::from_secs(1), || async {
        app.get("/healthz/region").await.status() == StatusCode::OK
    })
    .await
    .expect("region health back to 200 within one second");
    let body: Value = app.get("/healthz/instance").await.json().await.unwrap();
    assert_eq!(body["drained"], false);
    println!("drain visible after {took:?}");
    app.stop().await;
}

#[tokio::test]
async fn health_follows_the_database_down_and_back() {
    let server = DedicatedPostgres::start();
    let url = create_database(&server.url()).await;
    let app = TestApp::spawn_on(test_settings("eu-west-1", &url), true).await;
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/healthz/region").await.status(), StatusCode::OK);

    server.halt();
    for path in ["/readyz", "/healthz/region", "/healthz/instance"] {
        eventually(Duration::from_secs(5), || async {
            app.get(path).await.status() == StatusCode::SERVICE_UNAVAILABLE
        })
        .await
        .unwrap_or_else(|| panic!("{path} turned 503 while the database is down"));
    }
    let body: Value = app.get("/healthz/region").await.json().await.unwrap();
    assert_eq!(body["status"], "database_unreachable");
    // The API answers 503 with Retry-After, not a 500.
    let response = app.get("/v1/ledger/summary").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(
        app.get("/livez").await.status(),
        StatusCode::OK,
        "still alive"
    );

    server.resume();
    for path in ["/readyz", "/healthz/region", "/healthz/instance"] {
        eventually(Duration::from_secs(10), || async {
            app.get(path).await.status() == StatusCode::OK
        })
        .await
        .unwrap_or_else(|| panic!("{path} back to 200 when the database returns"));
    }
    app.stop().await;
}

#[tokio::test]
async fn health_stays_green_while_every_request_connection_is_busy() {
    use sqlx::Executor;
    let url = crate::helpers::create_database(&crate::helpers::server_url()).await;
    let mut settings = test_settings("us-east-1", &url);
    settings.database_pool_size = 2;
    let app = std::sync::Arc::new(TestApp::spawn_on(settings, true).await);
    let a = app.create_account("a", 100).await;
    let b = app.create_account("b", 0).await;

    // Hold a row lock so that two transfers take both pool connections and wait.
    let mut locker = crate::helpers::lock_row(&url, a).await;
    let blocked = crate::helpers::spawn_transfers(&app, "busy", 2, a, b);
    // Longer than a gate refresh plus its timeout: the gate has re-read the
    // drain flag with the request pool exhausted.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        blocked.iter().all(|task| !task.is_finished()),
        "both transfers hold their connections"
    );
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/healthz/region").await.status(), StatusCode::OK);

    locker.execute("COMMIT").await.unwrap();
    for task in blocked {
        assert_eq!(task.await.unwrap(), StatusCode::CREATED);
    }
    std::sync::Arc::into_inner(app)
        .expect("sole owner")
        .stop()
        .await;
}

/// One `GET /livez` on an open connection; the response head, lowercased.
async fn get_livez(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.unwrap();
        assert!(
            n > 0,
            "closed before the response: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    head
}

/// Whether the server closes `stream` within `limit` (end of file).
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(limit, stream.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// Clients with pooled keep-alive connections (every SDK's default) never
/// resolve the name again while a connection lives: a drained region must
/// close them, or they keep using it whatever DNS says.
#[tokio::test]
async fn a_drained_region_closes_pooled_connections_and_keeps_them_after_it_returns() {
    let app = TestApp::spawn().await;
    let address = app.address.trim_start_matches("http://").to_string();
    let mut pooled = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = get_livez(&mut pooled).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");

    sqlx::query(
        "INSERT INTO region_state (region, drained, reason, actor, fencing_epoch) \
         VALUES ('us-east-1', true, 'pooled clients test', 'failover-controller', 1)",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    // The idle pooled connection is closed once the gate reads the flag.
    let started = std::time::Instant::now();
    assert!(
        closed_within(&mut pooled, Duration::from_secs(3)).await,
        "an idle keep-alive connection stayed open in a drained region"
    );
    println!(
        "idle connection closed {:?} after the drain",
        started.elapsed()
    );
    // A client that still reaches the region is served, told to reconnect,
    // and the connection ends with the response.
    let mut late = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = get_livez(&mut late).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(closed_within(&mut late, Duration::from_secs(2)).await);

    // The way back: undrained, connections are kept alive again.
    sqlx::query("UPDATE region_state SET drained = false WHERE region = 'us-east-1'")
        .execute(&app.pool)
        .await
        .unwrap();
    eventually(Duration::from_secs(2), || async {
        app.get("/healthz/region").await.status() == StatusCode::OK
    })
    .await
    .expect("region serving again");
    let mut pooled = tokio::net::TcpStream::connect(&address).await.unwrap();
    for _ in 0..3 {
        let head = get_livez(&mut pooled).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(!head.contains("connection: close"), "{head}");
    }
    assert!(
        !closed_within(&mut pooled, Duration::from_millis(1500)).await,
        "a serving region closed an idle keep-alive connection"
    );
    app.stop().await;
}

/// An instance reports ready only with its request pool open, so that the
/// first burst of requests does not wait for connections to be set up.
#[tokio::test]
async fn an_instance_is_ready_only_once_its_request_pool_is_open() {
    let url = create_database(&crate::helpers::server_url()).await;
    let mut settings = test_settings("us-east-1", &url);
    settings.database_pool_size = 6;
    let app = TestApp::spawn_on(settings, true).await;
    let (open,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'ledger-service/us-east-1'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    // The request pool's six, and the health pool's one or two.
    assert!(
        open >= 6,
        "ready with {open} connections open, fewer than the pool's 6"
    );
    app.stop().await;
}
