//! Metrics on the admin port only (valid for promtool), request ids, and an
//! OpenAPI document that covers every route.

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

#[tokio::test]
async fn metrics_are_on_the_admin_port_only_and_pass_promtool() {
    let app = TestApp::spawn().await;
    let a = app.create_account("a", 10).await;
    let _ = app.get(&format!("/v1/accounts/{a}")).await;
    assert_eq!(app.get("/metrics").await.status(), StatusCode::NOT_FOUND);

    let metrics = app.metrics().await;
    for name in [
        "service_http_requests_total{method=\"POST\",route=\"/v1/accounts\",status=\"201\"} 1",
        "service_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/accounts/{id}\"",
        "service_http_requests_in_flight",
        "service_db_pool_connections{state=\"idle\"}",
        "service_region_drained 0",
        "service_shutting_down 0",
        "service_build_info{",
    ] {
        assert!(metrics.contains(name), "missing {name} in\n{metrics}");
    }

    // promtool is installed by scripts/test.sh (Debian package prometheus).
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool on PATH (run the tests through scripts/test.sh)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    app.stop().await;
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_the_callers() {
    let app = TestApp::spawn().await;
    let generated = app.get("/livez").await;
    assert!(generated.headers().contains_key("x-request-id"));
    let echoed = app
        .client
        .get(format!("{}/livez", app.address))
        .header("x-request-id", "caller-chosen-id")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "caller-chosen-id");
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_covers_every_route() {
    let app = TestApp::spawn().await;
    let document: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    let expected = [
        ("/v1/accounts", "post"),
        ("/v1/accounts/{id}", "get"),
        ("/v1/transfers", "post"),
        ("/v1/transfers/{id}", "get"),
        ("/v1/ledger/summary", "get"),
        ("/livez", "get"),
        ("/readyz", "get"),
        ("/healthz/region", "get"),
        ("/healthz/instance", "get"),
    ];
    for (path, method) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} undocumented"
        );
    }
    assert_eq!(
        paths.len(),
        9,
        "documented paths: {:?}",
        paths.keys().collect::<Vec<_>>()
    );
    // Each documented operation is really served (not 404/405).
    for (path, method) in expected {
        if method == "get" && !path.contains('{') {
            assert_ne!(
                app.get(path).await.status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
    }
    // Links lead from each 201 to operations that exist, and they work:
    // following them from real answers reads what was just created.
    let operations: std::collections::HashMap<&str, &str> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .values()
                .filter_map(move |op| Some((op.get("operationId")?.as_str()?, path.as_str())))
        })
        .collect();
    let mut created = std::collections::HashMap::new();
    let a = app.create_account("link-a", 50).await;
    let b = app.create_account("link-b", 0).await;
    let account: Value = app
        .get(&format!("/v1/accounts/{a}"))
        .await
        .json()
        .await
        .unwrap();
    created.insert("/v1/accounts", account);
    let transfer: Value = app.transfer("link-t", a, b, 5).await.json().await.unwrap();
    created.insert("/v1/transfers", transfer);
    let mut followed = 0;
    for (path, body) in &created {
        let links = document["paths"][path]["post"]["responses"]["201"]["links"]
            .as_object()
            .unwrap_or_else(|| panic!("POST {path} has no links"));
        for (name, link) in links {
            let target = operations
                .get(link["operationId"].as_str().unwrap())
                .unwrap_or_else(|| panic!("link {name} names an unknown operation"));
            let pointer = link["parameters"]["id"]
                .as_str()
                .unwrap()
                .strip_prefix("$response.body#")
                .unwrap();
            let id = body.pointer(pointer).unwrap().as_str().unwrap();
            let url = target.replace("{id}", id);
            assert_eq!(
                app.get(&url).await.status(),
                StatusCode::OK,
                "{name}: {url}"
            );
            followed += 1;
        }
    }
    assert_eq!(followed, 4, "links followed");
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for schema in [
        "Account",
        "Transfer",
        "LedgerSummary",
        "Problem",
        "CreateTransferRequest",
    ] {
        assert!(schemas.contains_key(schema), "schema {schema} missing");
    }
    app.stop().await;
}
