//! The home-region bulkhead against a real PostgreSQL: the rows of one home
//! region locked as a lease transfer after its loss locks them (every
//! account homed there, `FOR UPDATE`), transfers touching them wait, and the
//! instance keeps serving reads and transfers between other regions'
//! accounts; once the lock goes, the waiting transfers all commit.
//! Seen to fail without the bulkhead (a share of 1).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sqlx::{Connection, Executor};

use crate::helpers::{create_database, server_url, test_settings, TestApp};

/// Locks every account homed in `region` until the connection ends its
/// transaction (the chaos deployment's lease transfer does the same).
async fn lock_home_region(database_url: &str, region: &str) -> sqlx::PgConnection {
    let mut locker = sqlx::PgConnection::connect(database_url).await.unwrap();
    locker.execute("BEGIN").await.unwrap();
    sqlx::query("SELECT id FROM accounts WHERE home_region = $1 ORDER BY id FOR UPDATE")
        .bind(region)
        .execute(&mut locker)
        .await
        .unwrap();
    locker
}

/// With `share` of a 4-connection pool for one home region's writes:
/// twelve transfers from an account homed in eu-west-1 wait on its locked
/// rows; meanwhile us-east-1's accounts are read and written. Returns the
/// statuses and slowest latency of those (a read, a transfer between two
/// of its accounts, one from an account homed in ap-southeast-1), and the
/// waiting transfers' statuses after the lock is released.
async fn serve_beside_a_locked_region(share: f64) -> (Vec<StatusCode>, Duration, Vec<StatusCode>) {
    let url = create_database(&server_url()).await;
    let mut settings = test_settings("us-east-1", &url);
    settings.database_pool_size = 4;
    settings.worker_threads = 1;
    settings.database_pool_home_region_share = share;
    let east = Arc::new(TestApp::spawn_on(settings, true).await);
    let west = TestApp::spawn_on(test_settings("eu-west-1", &url), false).await;
    let far = west.create_account("far", 1_000).await;
    let south = TestApp::spawn_on(test_settings("ap-southeast-1", &url), false).await;
    let other = south.create_account("other", 1_000).await;
    south.stop().await;
    // The waiting transfers pay into `payee`, which they lock while they
    // wait for `far` when its id sorts first (rows are locked in id order):
    // the requests beside them touch other accounts.
    let (payee, a, b) = (
        east.create_account("payee", 0).await,
        east.create_account("a", 1_000).await,
        east.create_account("b", 1_000).await,
    );
    west.stop().await;

    let mut locker = lock_home_region(&url, "eu-west-1").await;
    let waiting: Vec<_> = (0..12)
        .map(|n| {
            let east = Arc::clone(&east);
            tokio::spawn(async move {
                east.transfer(&format!("far-{n}"), far, payee, 1)
                    .await
                    .status()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        waiting.iter().all(|task| !task.is_finished()),
        "a transfer from the locked region's account did not wait"
    );

    let mut statuses = Vec::new();
    let mut slowest = Duration::ZERO;
    for n in 0..10 {
        let started = Instant::now();
        statuses.push(east.get(&format!("/v1/accounts/{b}")).await.status());
        statuses.push(east.transfer(&format!("near-{n}"), a, b, 1).await.status());
        statuses.push(
            east.transfer(&format!("other-{n}"), other, b, 1)
                .await
                .status(),
        );
        slowest = slowest.max(started.elapsed());
    }

    // The way back: the leases have moved, the waiting transfers commit.
    locker.execute("COMMIT").await.unwrap();
    let mut after = Vec::new();
    for task in waiting {
        after.push(task.await.unwrap());
    }
    Arc::into_inner(east).expect("sole owner").stop().await;
    (statuses, slowest, after)
}

#[tokio::test]
async fn transfers_waiting_on_a_lost_regions_rows_leave_connections_for_the_rest() {
    let (statuses, slowest, after) = serve_beside_a_locked_region(0.75).await;
    println!("beside 12 waiting transfers: {statuses:?}, slowest read + transfer {slowest:?}");
    assert!(
        statuses
            .iter()
            .all(|status| *status == StatusCode::OK || *status == StatusCode::CREATED),
        "requests that touch no row of the locked region failed: {statuses:?}"
    );
    // Without the bulkhead each waits the acquire timeout (2 s), then 503.
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
    assert!(
        after.iter().all(|status| *status == StatusCode::CREATED),
        "the waiting transfers after the lock went: {after:?}"
    );
}
