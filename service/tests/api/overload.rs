//! The overload guards: beyond the concurrency limit a request is shed at
//! once with 503 and Retry-After (health probes are not limited); past the
//! request deadline a request is cancelled with 503 and its transaction
//! rolled back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sqlx::Executor;

use crate::helpers::{
    create_database, lock_row, metric_value, problem, server_url, spawn_transfers, test_settings,
    TestApp,
};

#[tokio::test]
async fn requests_beyond_the_concurrency_limit_are_shed_at_once() {
    let url = create_database(&server_url()).await;
    let mut settings = test_settings("us-east-1", &url);
    settings.max_concurrent_requests = 2;
    let app = Arc::new(TestApp::spawn_on(settings, true).await);
    let a = app.create_account("a", 100).await;
    let b = app.create_account("b", 0).await;

    // Two transfers wait on a row lock and take both slots.
    let mut locker = lock_row(&url, a).await;
    let blocked = spawn_transfers(&app, "slot", 2, a, b);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(blocked.iter().all(|task| !task.is_finished()));

    // A third is refused at once, not queued.
    let started = Instant::now();
    let response = app.get(&format!("/v1/accounts/{b}")).await;
    let waited = started.elapsed();
    assert_eq!(response.headers()["retry-after"], "1");
    let (status, body) = problem(response).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["type"].as_str().unwrap().ends_with("overloaded"),
        "{body}"
    );
    assert!(waited < Duration::from_secs(1), "shed after {waited:?}");
    // Health probes are outside the limit.
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/healthz/region").await.status(), StatusCode::OK);
    assert_eq!(
        metric_value(&app.metrics().await, "service_requests_shed_total"),
        1.0
    );

    // The admitted requests finish normally, and their slots come back.
    locker.execute("COMMIT").await.unwrap();
    for task in blocked {
        assert_eq!(task.await.unwrap(), StatusCode::CREATED);
    }
    assert_eq!(
        app.get(&format!("/v1/accounts/{b}")).await.status(),
        StatusCode::OK
    );
    Arc::into_inner(app).expect("sole owner").stop().await;
}

#[tokio::test]
async fn a_request_past_its_deadline_is_cancelled_and_changes_nothing() {
    let url = create_database(&server_url()).await;
    let mut settings = test_settings("us-east-1", &url);
    settings.request_timeout_ms = 400;
    let app = TestApp::spawn_on(settings, true).await;
    let a = app.create_account("a", 100).await;
    let b = app.create_account("b", 0).await;

    let mut locker = lock_row(&url, a).await;
    let started = Instant::now();
    let (status, body) = problem(app.transfer("late", a, b, 10).await).await;
    let waited = started.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["type"].as_str().unwrap().ends_with("timeout"),
        "{body}"
    );
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(3),
        "answered after {waited:?}"
    );
    locker.execute("COMMIT").await.unwrap();

    // The cancelled transaction was rolled back: no transfer, no key, the
    // balances as they were; the same key then works.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (accounts, transfers, total, keys) = app.database_snapshot().await;
    assert_eq!(
        (accounts, transfers, total, keys),
        (2, 0, 100, 2),
        "only the two accounts and their keys"
    );
    assert_eq!(
        app.transfer("late", a, b, 10).await.status(),
        StatusCode::CREATED
    );
    app.stop().await;
}
