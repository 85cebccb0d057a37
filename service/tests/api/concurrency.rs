//! Hot accounts under concurrent transfers: money is conserved, no balance
//! goes negative, every acknowledged transfer exists, and the serialization
//! retries show in the metrics.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_among_hot_accounts_conserve_money() {
    let app = Arc::new(TestApp::spawn().await);
    let mut accounts = Vec::new();
    for index in 0..4 {
        accounts.push(app.create_account(&format!("hot-{index}"), 100).await);
    }
    let total_before = 400;

    // 600 transfers, all in flight at once; amounts large enough that some
    // would overdraw, so the insufficient-funds path races too.
    let requests = (0..600).map(|n| {
        let app = app.clone();
        let from = accounts[n % 4];
        let to = accounts[(n / 4 + 1 + n) % 4];
        let to = if to == from {
            accounts[(n + 1) % 4]
        } else {
            to
        };
        let amount = 1 + (n as i64 * 7) % 40;
        async move {
            // A well-behaved client: on 503 it retries with the same key.
            // Load shedding answers at once rather than after the acquire
            // timeout, so a client retries more often in the same time.
            let mut unavailable = 0;
            loop {
                let response = app.transfer(&format!("hot-{n}"), from, to, amount).await;
                let status = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if status == StatusCode::SERVICE_UNAVAILABLE && unavailable < 200 {
                    unavailable += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
                return (status, body, unavailable);
            }
        }
    });
    let results = join_all(requests).await;

    let mut acknowledged = Vec::new();
    let client_retries: u32 = results.iter().map(|(_, _, retries)| retries).sum();
    for (status, body, _) in &results {
        match *status {
            StatusCode::CREATED => acknowledged.push(body["id"].as_str().unwrap().to_owned()),
            StatusCode::CONFLICT => {}
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert!(
        acknowledged.len() > 100,
        "only {} transfers succeeded",
        acknowledged.len()
    );

    let summary: Value = app.get("/v1/ledger/summary").await.json().await.unwrap();
    assert_eq!(
        summary["total_balance"],
        total_before.to_string(),
        "money is conserved (a decimal string: totals can pass 2^53)"
    );
    assert!(
        summary["min_balance"].as_i64().unwrap() >= 0,
        "no negative balance"
    );
    assert_eq!(
        summary["transfers"],
        acknowledged.len() as u64,
        "every acknowledged transfer, no other"
    );
    let stored: Vec<String> = sqlx::query_scalar("SELECT id::TEXT FROM transfers")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let mut stored = stored;
    stored.sort();
    acknowledged.sort();
    assert_eq!(
        stored, acknowledged,
        "each acknowledged transfer exists exactly once"
    );

    let metrics = app.metrics().await;
    let retries: f64 = metrics
        .lines()
        .filter(|line| line.starts_with("service_db_transaction_retries_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        retries > 0.0,
        "serialization retries are counted:\n{metrics}"
    );
    // A serialization failure, at a statement or at COMMIT, rolls back and
    // keeps the connection: the pool never had to open more than its size.
    let opened = crate::helpers::metric_value(&metrics, "service_db_connections_opened_total");
    assert!(
        opened <= 16.0,
        "{opened} connections opened by a pool of 16 after {retries} re-runs: connections were discarded"
    );
    println!(
        "{} acknowledged, {retries} transaction re-runs, {client_retries} client retries after 503, {opened} connections opened",
        acknowledged.len()
    );
    Arc::into_inner(app).expect("sole owner").stop().await;
}

/// An instance frozen in the middle of a transfer (SIGSTOP, a partition)
/// holds its rows' locks while its connection lives; every transfer of
/// every region that touches those rows would queue behind it. The
/// server ends a transaction left idle for
/// `database_idle_in_transaction_timeout_ms`, so the locks go.
#[tokio::test]
async fn a_transaction_left_open_loses_its_locks_after_the_idle_timeout() {
    use sqlx::Executor;
    let app = TestApp::spawn().await;
    let account = app.create_account("frozen", 100).await;
    let mut settings = crate::helpers::test_settings("us-east-1", &database_url_of(&app).await);
    settings.database_idle_in_transaction_timeout_ms = 500;
    let pool = service::db::connect(&settings, 1, service::db::pool::opened_counter()).unwrap();
    let mut frozen = pool.acquire().await.unwrap();
    frozen.execute("BEGIN").await.unwrap();
    frozen
        .execute(sqlx::query("SELECT balance FROM accounts WHERE id = $1 FOR UPDATE").bind(account))
        .await
        .unwrap();
    // The instance freezes here: no statement, no COMMIT.
    let started = std::time::Instant::now();
    let update = sqlx::query("UPDATE accounts SET balance = balance WHERE id = $1")
        .bind(account)
        .execute(&app.pool);
    tokio::time::timeout(Duration::from_secs(5), update)
        .await
        .expect("the frozen transaction still holds its lock after 5 s")
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "the lock was held {waited:?}"
    );
    assert!(
        waited >= Duration::from_millis(400),
        "the lock was never held ({waited:?})"
    );
    app.stop().await;
}

async fn database_url_of(app: &TestApp) -> String {
    let name: (String,) = sqlx::query_as("SELECT current_database()")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    crate::helpers::database_url(&crate::helpers::server_url(), &name.0)
}
