//! A transaction whose session the server ended before `COMMIT` (here the
//! idle-in-transaction timeout, FATAL 25P03) never committed: like a lost
//! connection, it is re-run on a fresh connection rather than answered 500.
//! Seen in a drill: one account creation over a slow WAN path came back
//! "terminating connection due to idle-in-transaction timeout" as a 500.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use service::db::pool::opened_counter;
use service::db::retry::{RetryPolicy, Transactor};
use service::metrics::Metrics;

use crate::helpers::{create_database, server_url, test_settings};

#[tokio::test]
async fn a_session_the_server_ended_before_commit_is_run_again() {
    let url = create_database(&server_url()).await;
    let mut settings = test_settings("us-east-1", &url);
    settings.database_idle_in_transaction_timeout_ms = 200;
    let pool = service::db::connect(&settings, 2, opened_counter()).unwrap();
    let transactor = Transactor {
        pool,
        policy: RetryPolicy::new(3),
        metrics: Metrics::new("us-east-1", "test", opened_counter()),
    };
    let attempts = AtomicUsize::new(0);
    let result = transactor
        .serializable(|connection| {
            let attempt = attempts.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                sqlx::query("SELECT 1").execute(&mut *connection).await?;
                if attempt == 0 {
                    // Idle in the transaction past the server's bound.
                    tokio::time::sleep(Duration::from_millis(600)).await;
                }
                sqlx::query("SELECT 2").execute(&mut *connection).await?;
                Ok(Ok::<usize, ()>(attempt))
            })
        })
        .await;
    match result {
        Ok(Ok(attempt)) => assert_eq!(attempt, 1, "committed on the second attempt"),
        Ok(Err(())) => unreachable!(),
        Err(error) => panic!("not re-run: {error:?}"),
    }
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}
