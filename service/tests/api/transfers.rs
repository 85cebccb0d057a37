//! Transfers: the normal path, rejections that change nothing, and
//! idempotency across instances of different regions.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{create_database, problem, server_url, test_settings, TestApp};

#[tokio::test]
async fn a_transfer_moves_money_and_can_be_read_back() {
    let app = TestApp::spawn().await;
    let a = app.create_account("a", 100).await;
    let b = app.create_account("b", 0).await;
    let response = app.transfer("t-1", a, b, 40).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let transfer: Value = response.json().await.unwrap();
    assert_eq!(transfer["amount"], 40);
    assert_eq!(transfer["served_by_region"], "us-east-1");
    assert_eq!(
        location,
        format!("/v1/transfers/{}", transfer["id"].as_str().unwrap())
    );

    let read: Value = app.get(&location).await.json().await.unwrap();
    assert_eq!(read, transfer);
    let a_balance: Value = app
        .get(&format!("/v1/accounts/{a}"))
        .await
        .json()
        .await
        .unwrap();
    let b_balance: Value = app
        .get(&format!("/v1/accounts/{b}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (a_balance["balance"].as_i64(), b_balance["balance"].as_i64()),
        (Some(60), Some(40))
    );
    app.stop().await;
}

#[tokio::test]
async fn insufficient_funds_is_409_changes_nothing_and_is_replayed() {
    let app = TestApp::spawn().await;
    let a = app.create_account("a", 10).await;
    let b = app.create_account("b", 0).await;
    let before = app.database_snapshot().await;
    let (status, body) = problem(app.transfer("t-poor", a, b, 11).await).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["detail"].as_str().unwrap().contains("balance of 10"),
        "{body}"
    );
    // Nothing moved; the answer is stored under the key (one more key row).
    let (accounts, transfers, total, keys) = before;
    assert_eq!(
        app.database_snapshot().await,
        (accounts, transfers, total, keys + 1)
    );
    // The request was executed, so its key is spent, as at Stripe: once
    // funds arrive, a retry with the same key still gets the stored 409
    // (marked as a replay), and a new key makes the transfer.
    let c = app.create_account("c", 5).await;
    assert_eq!(
        app.transfer("t-top-up", c, a, 5).await.status(),
        StatusCode::CREATED
    );
    let replay = app.transfer("t-poor", a, b, 11).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let (status, replayed) = problem(replay).await;
    assert_eq!((status, &replayed), (StatusCode::CONFLICT, &body));
    assert_eq!(
        app.transfer("t-poor-again", a, b, 11).await.status(),
        StatusCode::CREATED
    );
    app.stop().await;
}

#[tokio::test]
async fn a_retry_gets_the_original_answer_and_a_different_body_is_422() {
    let app = TestApp::spawn().await;
    let a = app.create_account("a", 100).await;
    let b = app.create_account("b", 0).await;
    let first: Value = app.transfer("key-1", a, b, 5).await.json().await.unwrap();
    let retry = app.transfer("key-1", a, b, 5).await;
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    let (status, body) = problem(app.transfer("key-1", a, b, 6).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("different request body"));
    let (_, transfers, total, _) = app.database_snapshot().await;
    assert_eq!((transfers, total), (1, 100));
    app.stop().await;
}

#[tokio::test]
async fn the_same_key_at_two_regions_at_once_makes_one_transfer() {
    let url = create_database(&server_url()).await;
    let east = TestApp::spawn_on(test_settings("us-east-1", &url), true).await;
    let west = TestApp::spawn_on(test_settings("eu-west-1", &url), false).await;
    let a = east.create_account("a", 1_000).await;
    let b = west.create_account("b", 1_000).await;

    for round in 0..25 {
        let key = format!("race-{round}");
        let (from_east, from_west) =
            tokio::join!(east.transfer(&key, a, b, 1), west.transfer(&key, a, b, 1));
        assert_eq!(from_east.status(), StatusCode::CREATED, "round {round}");
        assert_eq!(from_west.status(), StatusCode::CREATED, "round {round}");
        assert_eq!(from_east.headers()["x-served-by-region"], "us-east-1");
        assert_eq!(from_west.headers()["x-served-by-region"], "eu-west-1");
        let east_body: Value = from_east.json().await.unwrap();
        let west_body: Value = from_west.json().await.unwrap();
        assert_eq!(
            east_body, west_body,
            "round {round}: both answers are identical"
        );
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM transfers WHERE idempotency_key = $1")
                .bind(&key)
                .fetch_one(&east.pool)
                .await
                .unwrap();
        assert_eq!(count, 1, "round {round}: exactly one transfer");
    }
    let (_, transfers, total, _) = east.database_snapshot().await;
    assert_eq!((transfers, total), (25, 2_000));
    east.stop().await;
    west.stop().await;
}

#[tokio::test]
async fn an_integral_number_written_with_a_zero_fraction_is_an_integer() {
    // JSON Schema counts 5.0 as an integer, so a client that writes it is right.
    let app = TestApp::spawn().await;
    let a = app.create_account("a", 10).await;
    let b = app.create_account("b", 0).await;
    let response = app
        .post(
            "/v1/transfers",
            Some("float-5"),
            &serde_json::json!({"from": a, "to": b, "amount": 5.0}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.json::<Value>().await.unwrap()["amount"], 5);
    app.stop().await;
}
