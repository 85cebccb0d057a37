//! Least privilege: `service migrate`, run as the owner of the schema,
//! grants `database_runtime_role` what the service needs and nothing more;
//! the service then serves as that role.

use std::str::FromStr;

use reqwest::StatusCode;
use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};
use uuid::Uuid;

use crate::helpers::{create_database, server_url, test_settings, TestApp};

#[tokio::test]
async fn the_service_serves_as_the_runtime_role_which_cannot_change_the_schema_or_delete() {
    let owner_url = create_database(&server_url()).await;
    let role = format!("service_rt_{}", &Uuid::new_v4().simple().to_string()[..12]);
    let mut owner = sqlx::PgConnection::connect(&owner_url).await.unwrap();
    owner
        .execute(format!("CREATE ROLE {role} LOGIN").as_str())
        .await
        .unwrap();
    let mut migrate_settings = test_settings("us-east-1", &owner_url);
    migrate_settings.database_runtime_role = role.clone();
    service::db::migrate_database(&migrate_settings)
        .await
        .expect("migrate and grant");
    // Twice: grants are idempotent, like the migrations.
    service::db::migrate_database(&migrate_settings)
        .await
        .expect("migrate and grant again");

    let runtime_url = PgConnectOptions::from_str(&owner_url)
        .unwrap()
        .username(&role)
        .to_url_lossy()
        .to_string();
    let app = TestApp::spawn_on(test_settings("us-east-1", &runtime_url), false).await;
    let from = app.create_account("alice", 100).await;
    let to = app.create_account("bob", 0).await;
    let response = app
        .transfer(&Uuid::new_v4().to_string(), from, to, 40)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = app.get(&format!("/v1/accounts/{from}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["balance"], json!(60));
    app.stop().await;

    let mut runtime = sqlx::PgConnection::connect(&runtime_url).await.unwrap();
    for forbidden in [
        "DELETE FROM accounts",
        "DELETE FROM idempotency_keys",
        "UPDATE transfers SET amount = 1",
        "UPDATE region_state SET drained = true",
        "DROP TABLE accounts",
        "CREATE TABLE intruder (id INT)",
        "ALTER TABLE accounts ADD COLUMN x INT",
    ] {
        let error = runtime
            .execute(forbidden)
            .await
            .expect_err(forbidden)
            .to_string();
        assert!(
            error.contains("permission denied") || error.contains("must be owner"),
            "{forbidden}: {error}"
        );
    }
}
