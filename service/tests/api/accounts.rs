//! Accounts: creation, reads, idempotent replay, placement headers.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{problem, TestApp};

#[tokio::test]
async fn create_and_read_an_account() {
    let app = TestApp::spawn().await;
    let response = app
        .post(
            "/v1/accounts",
            Some("acct-1"),
            &json!({"owner": "alice", "opening_balance": 1000}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["x-served-by-region"], "us-east-1");
    assert!(response.headers().contains_key("x-served-by-instance"));
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["owner"], "alice");
    assert_eq!(created["balance"], 1000);
    assert_eq!(created["home_region"], "us-east-1");
    let id = created["id"].as_str().unwrap();

    for query in ["", "?consistency=strong", "?consistency=stale"] {
        let response = app.get(&format!("/v1/accounts/{id}{query}")).await;
        assert_eq!(response.status(), StatusCode::OK, "{query}");
        let read: Value = response.json().await.unwrap();
        assert_eq!(read, created, "{query}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_home_region_is_stored_in_the_database() {
    let app = TestApp::spawn().await;
    let id = app.create_account("bob", 5).await;
    let home: String = sqlx::query_scalar("SELECT home_region FROM accounts WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(home, "us-east-1");
    app.stop().await;
}

#[tokio::test]
async fn a_retried_creation_returns_the_original_account() {
    let app = TestApp::spawn().await;
    let body = json!({"owner": "carol", "opening_balance": 7});
    let first = app.post("/v1/accounts", Some("same-key"), &body).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let second = app.post("/v1/accounts", Some("same-key"), &body).await;
    assert_eq!(second.status(), StatusCode::CREATED);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let second: Value = second.json().await.unwrap();
    assert_eq!(first, second);
    assert_eq!(
        app.database_snapshot().await.0,
        1,
        "exactly one account exists"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_account_is_404() {
    let app = TestApp::spawn().await;
    let (status, body) = problem(
        app.get(&format!("/v1/accounts/{}", uuid::Uuid::new_v4()))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["detail"].as_str().unwrap().contains("does not exist"));
    app.stop().await;
}

#[tokio::test]
async fn the_summary_counts_and_sums_in_one_snapshot() {
    let app = TestApp::spawn().await;
    let a = app.create_account("a", 100).await;
    let b = app.create_account("b", 50).await;
    assert_eq!(
        app.transfer("t", a, b, 30).await.status(),
        StatusCode::CREATED
    );
    let summary: Value = app.get("/v1/ledger/summary").await.json().await.unwrap();
    assert_eq!(
        summary,
        json!({"accounts": 2, "transfers": 1, "total_balance": "150", "min_balance": 70})
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_are_batched_and_each_gets_its_own_answer() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let mut accounts = Vec::new();
    for balance in 0..8 {
        accounts.push((
            app.create_account(&format!("r{balance}"), balance).await,
            balance,
        ));
    }
    let unknown = uuid::Uuid::new_v4();
    let reads = (0..400).map(|n| {
        let app = app.clone();
        let target = if n % 9 == 8 {
            None
        } else {
            Some(accounts[n % 8])
        };
        async move {
            let id = target.map_or(unknown, |(id, _)| id);
            let response = app.get(&format!("/v1/accounts/{id}")).await;
            (
                target,
                response.status(),
                response.json::<Value>().await.unwrap(),
            )
        }
    });
    for (target, status, body) in futures_util::future::join_all(reads).await {
        match target {
            Some((id, balance)) => {
                assert_eq!(status, StatusCode::OK);
                assert_eq!(body["id"], id.to_string());
                assert_eq!(body["balance"], balance);
            }
            None => assert_eq!(status, StatusCode::NOT_FOUND, "{body}"),
        }
    }
    // Batched: fewer statements than reads (every read is in one batch).
    let metrics = app.metrics().await;
    let statements = crate::helpers::metric_value(&metrics, "service_db_read_batch_size_count");
    let reads = crate::helpers::metric_value(&metrics, "service_db_read_batch_size_sum");
    assert_eq!(reads, 400.0, "each read answered by exactly one statement");
    assert!(
        statements < reads,
        "{statements} statements for {reads} reads"
    );
    println!("{reads} reads in {statements} statements");
    std::sync::Arc::into_inner(app)
        .expect("sole owner")
        .stop()
        .await;
}
