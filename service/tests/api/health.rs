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
