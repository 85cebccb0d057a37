//! End to end on one machine: three regions with two instances each, three
//! controllers; a region dies and is drained (flag and DNS) within the
//! target. The way back is tested with the real service binary and its
//! drain flag in `failback.rs`: these instances are health servers that
//! know nothing of the drain flag.

use std::net::IpAddr;
use std::time::Duration;

use failover_controller::app::Application;
use tokio::time::Instant;

use crate::helpers::{get_json, resolve_a, settings, test_db, wait_for, Health, Regions};

#[tokio::test]
async fn a_dead_region_is_drained_by_the_majority() {
    let db = test_db().await;
    let regions = Regions::start(3).await;
    let mut stops = Vec::new();
    let mut runs = Vec::new();
    let mut http = Vec::new();
    let mut dns = Vec::new();
    for r in 1..=3 {
        let app = Application::build(settings(
            &format!("region-{r}"),
            &db.url,
            &regions.toml(),
            "",
        ))
        .await
        .unwrap();
        http.push(format!("http://{}", app.http_addr()));
        dns.push(app.dns_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        runs.push(tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        })));
    }
    // Wait until every controller hears all three vantage points.
    let leader = wait_for(Duration::from_secs(15), || {
        let http = http.clone();
        async move {
            let mut leader = None;
            for (i, url) in http.iter().enumerate() {
                let status = get_json(&format!("{url}/status")).await;
                if status["counted_vantages"].as_array().map(|v| v.len()) != Some(3) {
                    return None;
                }
                if status["lease"]["held"] == true {
                    leader = Some(i);
                }
            }
            leader
        }
    })
    .await
    .expect("three vantage points and a leader");
    let client3: IpAddr = "127.0.3.9".parse().unwrap();
    let name = "api.svc.failover.test.";
    let region3: Vec<IpAddr> = regions.servers[2].iter().map(|s| s.addr.ip()).collect();
    let region2: Vec<IpAddr> = regions.servers[1].iter().map(|s| s.addr.ip()).collect();
    let follower_dns = dns[(leader + 1) % 3];
    assert_eq!(resolve_a(follower_dns, client3, name).await.1, region3);

    // Kill region-3 (its instances answer 503 from now on).
    let killed = Instant::now();
    regions.set_region(2, Health::Unavailable);
    let dns_changed = wait_for(Duration::from_secs(10), || async {
        let (_, ips) = resolve_a(follower_dns, client3, name).await;
        (ips == region2).then(|| killed.elapsed())
    })
    .await
    .expect("DNS answers for region-3 clients moved to region-2");
    // Followers leave DNS on their own quorum (early leave), possibly before
    // the leader's drain-flag write lands: wait for the flag too.
    let pool = &db.pool;
    let flag: (bool, i64) = wait_for(Duration::from_secs(5), || async move {
        sqlx::query_as("SELECT drained, fencing_epoch FROM region_state WHERE region = 'region-3'")
            .fetch_optional(pool)
            .await
            .unwrap()
            .filter(|(drained, _): &(bool, i64)| *drained)
    })
    .await
    .expect("drain flag set");
    assert!(flag.0, "drain flag set");
    // The leader's status follows the flag within a decision round.
    wait_for(Duration::from_secs(2), || async {
        let status = get_json(&format!("{}/status", http[leader])).await;
        (status["regions"][2]["state"] == "drained").then_some(())
    })
    .await
    .expect("leader reports region-3 drained");
    let leader_status = get_json(&format!("{}/status", http[leader])).await;
    let region = &leader_status["regions"][2];
    assert_eq!(region["state"], "drained");
    let actions = region["recent_actions"].as_array().unwrap();
    assert!(
        actions
            .iter()
            .any(|a| a["name"] == "drain_flag_set" && a["outcome"] == "ok"),
        "{actions:?}"
    );
    let decision: (String,) = sqlx::query_as(
        "SELECT rules::TEXT FROM failover_audit WHERE kind = 'decision' AND name = 'drain' AND region = 'region-3'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(decision.0.contains("min_healthy_regions"));
    println!("end to end at 500 ms probes: DNS answers changed {dns_changed:?} after the kill");
    assert!(
        dns_changed < Duration::from_secs(5),
        "too slow: {dns_changed:?}"
    );
    // The other regions were never touched.
    assert_eq!(
        leader_status["serving_regions"],
        serde_json::json!(["region-1", "region-2"])
    );

    for stop in stops {
        stop.send(()).unwrap();
    }
    for run in runs {
        run.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn probes_tell_ok_503_hang_and_refused_apart() {
    use failover_controller::probe::{probe_one, InstanceResult};
    let server = crate::helpers::HealthServer::start("127.0.4.1").await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/healthz/instance", server.addr);
    let timeout = Duration::from_millis(300);
    assert!(matches!(
        probe_one(&client, &url, timeout).await,
        InstanceResult::Ok { .. }
    ));
    server.set(Health::Unavailable);
    assert_eq!(
        probe_one(&client, &url, timeout).await,
        InstanceResult::Fail {
            reason: "status 503".into()
        }
    );
    server.set(Health::Hang);
    let started = Instant::now();
    assert_eq!(
        probe_one(&client, &url, timeout).await,
        InstanceResult::Timeout
    );
    assert!(started.elapsed() < Duration::from_millis(1000));
    let addr = server.addr;
    drop(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refused = probe_one(
        &reqwest::Client::new(),
        &format!("http://{addr}/healthz/instance"),
        timeout,
    )
    .await;
    assert!(
        matches!(refused, InstanceResult::Fail { .. }),
        "{refused:?}"
    );
}
