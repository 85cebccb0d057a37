//! The admin API: 401 without the token (nothing changes), overrides with
//! it; a drain that min_healthy_regions blocks is refused with 409.

use failover_controller::app::Application;
use serde_json::json;

use crate::helpers::{
    accepted_drain, get_json, post_override, settings, start_peers, test_db, wait_all_seen_up,
    wait_for, Regions,
};

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
    let peers = start_peers(&db.url, &regions.toml(), |_| {}).await;
    wait_all_seen_up(&base).await;
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
    let response = accepted_drain(&base, &body)
        .await
        .expect("the drain accepted");
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
    for peer in peers {
        peer.stop().await;
    }
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_drain_that_min_healthy_regions_blocks_is_refused_with_409() {
    let db = test_db().await;
    let regions = Regions::start(3).await;
    let mut settings = settings("region-1", &db.url, &regions.toml(), "");
    settings.decision.min_healthy_regions = 2;
    let app = Application::build(settings).await.unwrap();
    let base = format!("http://{}", app.http_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let drain = |region: &str| json!({"kind": "drain", "region": region, "reason": "maintenance", "actor": "alice", "ttl_seconds": 60});
    let peers = start_peers(&db.url, &regions.toml(), |s| {
        s.decision.min_healthy_regions = 2;
    })
    .await;
    wait_all_seen_up(&base).await;
    let response = accepted_drain(&base, &drain("region-2"))
        .await
        .expect("the drain of region-2 accepted");
    let id = response.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A second drain would leave region-1 alone: refused, nothing stored.
    let response = post_override(&base, &drain("region-3")).await.unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 409);
    assert_eq!(problem["rule"], "min_healthy_regions");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("1 would remain") && detail.contains("minimum 2"),
        "{detail}"
    );
    let listed = get_overrides(&client, &base).await;
    assert_eq!(
        listed.len(),
        1,
        "the refused override was stored: {listed:?}"
    );
    let refused: (i64,) = sqlx::query_as(
        "SELECT count(*) FROM failover_audit WHERE kind = 'override' AND region = 'region-3' \
         AND outcome = 'refused'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(refused.0, 1, "the refusal is not in the audit log");

    // The way back: region-2 returns, and the same drain is accepted.
    let response = client
        .delete(format!("{base}/v1/admin/overrides/{id}"))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    wait_for(std::time::Duration::from_secs(15), || async {
        let status = get_json(&format!("{base}/status")).await;
        (status["regions"][1]["drain_flag"] == false && status["regions"][1]["verdict"] == "up")
            .then_some(())
    })
    .await
    .expect("region-2 restored");
    accepted_drain(&base, &drain("region-3"))
        .await
        .expect("the drain of region-3 accepted once region-2 is back");
    for peer in peers {
        peer.stop().await;
    }
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
}

async fn get_overrides(client: &reqwest::Client, base: &str) -> Vec<serde_json::Value> {
    let listed: serde_json::Value = client
        .get(format!("{base}/v1/admin/overrides"))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    listed["overrides"].as_array().unwrap().clone()
}
