//! A table of bad requests: each gets the right 4xx with a detail that says
//! what was wrong, as a problem document, and the ledger is unchanged (the
//! two requests that were executed, to unknown accounts, store their 404
//! under their keys, as every executed request does).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::TestApp;

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    key: Option<&'static str>,
    content_type: Option<&'static str>,
    body: Option<String>,
    status: StatusCode,
    detail: &'static str,
}

fn case(
    name: &'static str,
    path: &str,
    body: &str,
    status: StatusCode,
    detail: &'static str,
) -> Case {
    Case {
        name,
        method: Method::POST,
        path: path.to_owned(),
        key: Some("bad-input-key"),
        content_type: Some("application/json"),
        body: Some(body.to_owned()),
        status,
        detail,
    }
}

#[tokio::test]
async fn bad_inputs_get_clear_4xx_and_change_nothing() {
    let app = TestApp::spawn().await;
    let a = app.create_account("a", 100).await;
    let b = app.create_account("b", 100).await;
    // A key used once, to test reuse with another body.
    assert_eq!(
        app.transfer("used-key", a, b, 1).await.status(),
        StatusCode::CREATED
    );
    let before = app.database_snapshot().await;

    let ghost = Uuid::new_v4();
    let transfer = |body: Value| body.to_string();
    let huge_owner = "x".repeat(64 * 1024);
    let cases = vec![
        case(
            "malformed JSON",
            "/v1/transfers",
            "{\"from\": ",
            StatusCode::BAD_REQUEST,
            "not valid JSON",
        ),
        case(
            "not an object",
            "/v1/transfers",
            "[1,2,3]",
            StatusCode::BAD_REQUEST,
            "does not match",
        ),
        case(
            "amount of the wrong type",
            "/v1/transfers",
            &transfer(json!({"from": a, "to": b, "amount": "10"})),
            StatusCode::BAD_REQUEST,
            "amount: invalid type",
        ),
        case(
            "fractional amount",
            "/v1/transfers",
            &transfer(json!({"from": a, "to": b, "amount": 1.5})),
            StatusCode::BAD_REQUEST,
            "amount",
        ),
        case(
            "missing field",
            "/v1/transfers",
            &transfer(json!({"from": a, "amount": 10})),
            StatusCode::BAD_REQUEST,
            "missing field `to`",
        ),
        case(
            "unknown field",
            "/v1/transfers",
            &transfer(json!({"from": a, "to": b, "amount": 10, "memo": "hi"})),
            StatusCode::BAD_REQUEST,
            "unknown field `memo`",
        ),
        case(
            "zero amount",
            "/v1/transfers",
            &transfer(json!({"from": a, "to": b, "amount": 0})),
            StatusCode::BAD_REQUEST,
            "`amount` must be an integer from 1",
        ),
        case(
            "negative amount",
            "/v1/transfers",
            &transfer(json!({"from": a, "to": b, "amount": -5})),
            StatusCode::BAD_REQUEST,
            "got -5",
        ),
        case(
            "amount above the maximum",
            "/v1/transfers",
            &transfer(json!({"from": a, "to": b, "amount": 1_000_000_000_000_001_i64})),
            StatusCode::BAD_REQUEST,
            "`amount` must be",
        ),
        case(
            "amount overflowing 64 bits",
            "/v1/transfers",
            &format!(r#"{{"from":"{a}","to":"{b}","amount":92233720368547758070}}"#),
            StatusCode::BAD_REQUEST,
            "amount",
        ),
        case(
            "invalid UUID in body",
            "/v1/transfers",
            &transfer(json!({"from": "not-a-uuid", "to": b, "amount": 1})),
            StatusCode::BAD_REQUEST,
            "from: UUID parsing failed",
        ),
        case(
            "same account",
            "/v1/transfers",
            &transfer(json!({"from": a, "to": a, "amount": 1})),
            StatusCode::BAD_REQUEST,
            "must be different accounts",
        ),
        Case {
            key: Some("unknown-source"),
            ..case(
                "unknown source account",
                "/v1/transfers",
                &transfer(json!({"from": ghost, "to": b, "amount": 1})),
                StatusCode::NOT_FOUND,
                "does not exist",
            )
        },
        Case {
            key: Some("unknown-destination"),
            ..case(
                "unknown destination account",
                "/v1/transfers",
                &transfer(json!({"from": a, "to": ghost, "amount": 1})),
                StatusCode::NOT_FOUND,
                "does not exist",
            )
        },
        Case {
            key: Some("used-key"),
            ..case(
                "reused key, other body",
                "/v1/transfers",
                &transfer(json!({"from": a, "to": b, "amount": 2})),
                StatusCode::UNPROCESSABLE_ENTITY,
                "different request body",
            )
        },
        Case {
            key: None,
            ..case(
                "missing Idempotency-Key",
                "/v1/transfers",
                &transfer(json!({"from": a, "to": b, "amount": 1})),
                StatusCode::BAD_REQUEST,
                "Idempotency-Key header is required",
            )
        },
        Case {
            key: Some(""),
            ..case(
                "empty Idempotency-Key",
                "/v1/transfers",
                &transfer(json!({"from": a, "to": b, "amount": 1})),
                StatusCode::BAD_REQUEST,
                "1 to 255 visible ASCII",
            )
        },
        Case {
            content_type: None,
            ..case(
                "no content type",
                "/v1/transfers",
                &transfer(json!({"from": a, "to": b, "amount": 1})),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type: application/json",
            )
        },
        case(
            "oversized body",
            "/v1/accounts",
            &json!({"owner": huge_owner, "opening_balance": 1}).to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than the limit",
        ),
        case(
            "negative opening balance",
            "/v1/accounts",
            &json!({"owner": "x", "opening_balance": -1}).to_string(),
            StatusCode::BAD_REQUEST,
            "`opening_balance` must be",
        ),
        case(
            "blank owner",
            "/v1/accounts",
            &json!({"owner": "   ", "opening_balance": 1}).to_string(),
            StatusCode::BAD_REQUEST,
            "`owner` must be",
        ),
        case(
            "control character in owner",
            "/v1/accounts",
            &json!({"owner": "a\u{0000}b", "opening_balance": 1}).to_string(),
            StatusCode::BAD_REQUEST,
            "control characters",
        ),
        case(
            "amount with a fraction",
            "/v1/transfers",
            &transfer(json!({"from": a, "to": b, "amount": 2.5})),
            StatusCode::BAD_REQUEST,
            "expected an integer",
        ),
        case(
            "owner of the wrong type",
            "/v1/accounts",
            &json!({"owner": 12, "opening_balance": 1}).to_string(),
            StatusCode::BAD_REQUEST,
            "owner: invalid type",
        ),
        Case {
            key: None,
            ..case(
                "account without Idempotency-Key",
                "/v1/accounts",
                &json!({"owner": "x", "opening_balance": 1}).to_string(),
                StatusCode::BAD_REQUEST,
                "Idempotency-Key header is required",
            )
        },
        Case {
            method: Method::GET,
            body: None,
            ..case(
                "invalid UUID in path",
                "/v1/accounts/12345",
                "",
                StatusCode::BAD_REQUEST,
                "is not a valid UUID",
            )
        },
        Case {
            method: Method::GET,
            body: None,
            ..case(
                "invalid transfer id",
                "/v1/transfers/%00",
                "",
                StatusCode::BAD_REQUEST,
                "not a valid UUID",
            )
        },
        Case {
            method: Method::GET,
            body: None,
            ..case(
                "unknown consistency",
                &format!("/v1/accounts/{a}?consistency=eventual"),
                "",
                StatusCode::BAD_REQUEST,
                "unknown variant `eventual`",
            )
        },
        Case {
            method: Method::GET,
            body: None,
            ..case(
                "unknown transfer",
                &format!("/v1/transfers/{ghost}"),
                "",
                StatusCode::NOT_FOUND,
                "does not exist",
            )
        },
        Case {
            method: Method::DELETE,
            body: None,
            ..case(
                "wrong method",
                "/v1/transfers",
                "",
                StatusCode::METHOD_NOT_ALLOWED,
                "DELETE is not allowed",
            )
        },
        Case {
            method: Method::GET,
            body: None,
            ..case(
                "unknown route",
                "/v2/anything",
                "",
                StatusCode::NOT_FOUND,
                "no route for GET /v2/anything",
            )
        },
    ];

    let mut failures = Vec::new();
    for case in &cases {
        let mut request = app
            .client
            .request(case.method.clone(), format!("{}{}", app.address, case.path));
        if let Some(key) = case.key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(content_type) = case.content_type {
            request = request.header("Content-Type", content_type);
        }
        if let Some(body) = &case.body {
            request = request.body(body.clone());
        }
        let response = request.send().await.expect("send");
        let status = response.status();
        let content_type = response.headers().get("content-type").cloned();
        let has_region = response.headers().contains_key("x-served-by-region");
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let detail = body["detail"].as_str().unwrap_or("");
        if status != case.status
            || !detail.contains(case.detail)
            || content_type.as_ref().map(|v| v.to_str().unwrap())
                != Some("application/problem+json")
            || body["status"] != case.status.as_u16()
            || !has_region
        {
            failures.push(format!(
                "{}: expected {} containing {:?}, got {} {:?} {}",
                case.name, case.status, case.detail, status, content_type, body
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "bad inputs answered wrongly:\n{}",
        failures.join("\n")
    );
    let (accounts, transfers, total, keys) = before;
    assert_eq!(
        app.database_snapshot().await,
        (accounts, transfers, total, keys + 2),
        "the ledger changed, or a request rejected before execution stored its key"
    );
    app.stop().await;
}
