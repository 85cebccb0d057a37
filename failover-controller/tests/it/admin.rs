//! The admin API: 401 without the token (nothing changes), overrides with it.

use failover_controller::app::Application;
use serde_json::json;

use crate::helpers::{get_json, settings, test_db, Regions};

#[tokio::test]
async fn unauthenticated_calls_get_401_and_change_nothing() {
    let db = test_db().await;
    let regions = Regions::start(3).await;
    let app = Application::build(settings("region-1", &db.url, &regions.toml(), ""))
        .await
        .unwrap();
    let base = format!("http://{}", app.http_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let body = json!({"kind": "drain", "region": "region-2", "reason": "test", "actor": "mallory", "ttl_seconds": 60});
    for auth in [
        None,
        Some("Bearer wrong-token"),
        Some("test-admin-token"),
        Some("Bearer "),
    ] {
        let mut request = client
            .post(format!("{base}/v1/admin/overrides"))
            .json(&body);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "auth {auth:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }
    let response = client
        .get(format!("{base}/v1/admin/overrides"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let count: (i64,) = sqlx::query_as("SELECT count(*) FROM failover_overrides")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count.0, 0, "an unauthenticated call changed something");

    // With the token: validation, then creation, listing, clearing.
    let bad = json!({"kind": "drain", "region": "nowhere", "reason": "x", "actor": "alice", "ttl_seconds": 60});
    let response = client
        .post(format!("{base}/v1/admin/overrides"))
        .bearer_auth("test-admin-token")
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("region"));
    let response = client
        .post(format!("{base}/v1/admin/overrides"))
        .bearer_auth("test-admin-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: serde_json::Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let listed: serde_json::Value = client
        .get(format!("{base}/v1/admin/overrides"))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["overrides"][0]["id"], id.as_str());
    let status = crate::helpers::wait_for(std::time::Duration::from_secs(10), || {
        let url = format!("{base}/status");
        async move {
            let s = get_json(&url).await;
            (s["regions"][1]["drain_flag"] == true).then_some(s)
        }
    })
    .await
    .expect("the manual drain was applied");
    assert_eq!(status["overrides"][0]["actor"], "mallory");
    let response = client
        .delete(format!("{base}/v1/admin/overrides/{id}"))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let audit: (i64,) =
        sqlx::query_as("SELECT count(*) FROM failover_audit WHERE kind = 'override'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(audit.0, 2);
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
}
