//! Limits: the per-principal rate limit (429, Retry-After, the IETF
//! RateLimit headers; a refused request's key stays usable), bounded
//! metrics labels, and the connection limit.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::AsyncReadExt;

use crate::helpers::{create_database, metric_value, problem, server_url, test_settings, TestApp};

#[tokio::test]
async fn a_principal_beyond_its_rate_is_refused_with_429_and_its_key_stays_usable() {
    let url = create_database(&server_url()).await;
    let mut settings = test_settings("us-east-1", &url);
    settings.rate_limit_per_second = 1.0;
    settings.rate_limit_burst = 3;
    let app = TestApp::spawn_on(settings, true).await;
    let alice = app.principal("alice", "").await;
    let bob = app.principal("bob", "").await;
    // `principal` spent some of Alice's tokens; wait for a full bucket.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let body = json!({"owner": "alice", "opening_balance": 1});
    for n in 0..3 {
        let response = app
            .post_as(&alice, "/v1/accounts", &format!("ok-{n}"), &body)
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(
            response.headers()["ratelimit-policy"],
            "\"per-principal\";q=3;w=3"
        );
        assert!(response.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"per-principal\";r="));
    }
    let refused = app.post_as(&alice, "/v1/accounts", "limited", &body).await;
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(refused.headers()["ratelimit"], "\"per-principal\";r=0;t=1");
    let (status, problem_body) = problem(refused).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem_body}");
    // Another principal is not affected.
    assert_eq!(
        app.post_as(
            &bob,
            "/v1/accounts",
            "bob-1",
            &json!({"owner": "bob", "opening_balance": 1})
        )
        .await
        .status(),
        StatusCode::CREATED
    );
    // The refused request stored nothing: after Retry-After, the same key
    // creates the account (not a replay).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let retried = app.post_as(&alice, "/v1/accounts", "limited", &body).await;
    assert_eq!(retried.status(), StatusCode::CREATED);
    assert!(!retried.headers().contains_key("idempotent-replayed"));
    assert_eq!(
        metric_value(&app.metrics().await, "service_rate_limited_total"),
        1.0
    );
    app.stop().await;
}

#[tokio::test]
async fn unknown_methods_and_paths_fold_into_bounded_metric_labels() {
    let app = TestApp::spawn().await;
    for n in 0..300 {
        let method = reqwest::Method::from_bytes(format!("M{n}").as_bytes()).unwrap();
        let _ = app
            .anonymous
            .request(method, format!("{}/random/{n}", app.address))
            .send()
            .await
            .unwrap();
        let _ = app.get(&format!("/v1/nothing-{n}")).await;
    }
    let metrics = app.metrics().await;
    let series: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("service_http_requests_total{"))
        .collect();
    assert!(
        series.len() <= 10,
        "{} series:\n{}",
        series.len(),
        series.join("\n")
    );
    assert!(series
        .iter()
        .any(|line| line.contains("method=\"OTHER\"") && line.contains("route=\"unmatched\"")));
    app.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_at_once() {
    let url = create_database(&server_url()).await;
    let mut settings = test_settings("us-east-1", &url);
    settings.max_connections = 20;
    let app = TestApp::spawn_on(settings, true).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    // Let the acceptor hand them over before the next arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut extra = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(2), extra.read(&mut buffer)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the extra connection was not closed: {read:?}"
    );
    // (The test clients' own pooled connection counts too.)
    assert!(metric_value(&app.metrics().await, "service_connections_refused_total") >= 1.0);
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.get("/livez").await.status(), StatusCode::OK);
    app.stop().await;
}
