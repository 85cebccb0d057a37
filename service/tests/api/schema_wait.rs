//! `service wait-for-schema`, the init container that keeps pods from
//! serving before the migrate Job has applied their schema.

use std::time::Duration;

use service::db;

use crate::helpers::{create_database, server_url, test_settings};

#[tokio::test]
async fn waits_until_the_migrations_are_applied_then_returns() {
    let url = create_database(&server_url()).await;
    let settings = test_settings("us-east-1", &url);
    let waiting = tokio::spawn({
        let settings = settings.clone();
        async move { db::wait_for_schema(&settings, Duration::from_secs(60)).await }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!waiting.is_finished(), "no migration ran yet: it must wait");

    db::migrate_database(&settings).await.expect("migrate");
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("returns within a retry after the migrations")
        .unwrap()
        .expect("the schema is ready");
}

#[tokio::test]
async fn gives_up_after_its_limit_naming_what_is_missing() {
    let url = create_database(&server_url()).await;
    let settings = test_settings("us-east-1", &url);
    let error = db::wait_for_schema(&settings, Duration::from_millis(300))
        .await
        .expect_err("nothing applies the migrations");
    let message = format!("{error:#}");
    assert!(message.contains("not applied"), "{message}");
    assert!(message.contains("service-migrate Job"), "{message}");
}
