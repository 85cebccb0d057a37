//! The majority is of the configured vantage points: one replica alone,
//! even with votes from vantage points outside the configuration agreeing,
//! never drains a region; a second configured replica seeing the same makes
//! the majority, and the region drains and comes back.

use std::net::IpAddr;
use std::time::Duration;

use failover_controller::app::Application;
use tokio::time::Instant;

use crate::helpers::{get_json, resolve_a, settings, test_db, wait_for, Health, Regions};

const NAME: &str = "api.svc.failover.test.";

/// Keeps votes of two vantage points that are not configured fresh: they
/// see region-2 down and the others up (so the cut-off rule keeps them).
fn intruders(pool: sqlx::PgPool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            for vantage in ["intruder-a", "intruder-b"] {
                for (region, verdict) in
                    [("region-1", "up"), ("region-2", "down"), ("region-3", "up")]
                {
                    sqlx::query(
                        "INSERT INTO failover_votes (vantage, region, verdict, consecutive, rtt_ms, last_error, observed_at) \
                         VALUES ($1, $2, $3, 5, NULL, '', now()) \
                         ON CONFLICT (vantage, region) DO UPDATE SET verdict = excluded.verdict, observed_at = now()",
                    )
                    .bind(vantage)
                    .bind(region)
                    .bind(verdict)
                    .execute(&pool)
                    .await
                    .unwrap();
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

async fn drained(pool: &sqlx::PgPool, region: &str) -> bool {
    let row: Option<(bool,)> = sqlx::query_as("SELECT drained FROM region_state WHERE region = $1")
        .bind(region)
        .fetch_optional(pool)
        .await
        .unwrap();
    row.map(|r| r.0).unwrap_or(false)
}

#[tokio::test]
async fn one_vantage_and_unknown_ones_never_drain_two_configured_ones_do() {
    let db = test_db().await;
    let regions = Regions::start(3).await;
    let start = |region: &str| {
        let s = settings(region, &db.url, &regions.toml(), "");
        async move {
            let app = Application::build(s).await.unwrap();
            let http = format!("http://{}", app.http_addr());
            let dns = app.dns_addr().unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let run = tokio::spawn(app.run_until_stopped(async move {
                let _ = stopped.await;
            }));
            (http, dns, stop, run)
        }
    };
    let (http1, dns1, stop1, run1) = start("region-1").await;
    wait_for(Duration::from_secs(15), || async {
        let status = get_json(&format!("{http1}/status")).await;
        (status["counted_vantages"] == serde_json::json!(["region-1"])).then_some(())
    })
    .await
    .expect("region-1 counts its own votes");
    let client2: IpAddr = "127.0.2.9".parse().unwrap();
    let region1: Vec<IpAddr> = regions.servers[0].iter().map(|s| s.addr.ip()).collect();
    let region2: Vec<IpAddr> = regions.servers[1].iter().map(|s| s.addr.ip()).collect();

    // region-2 dies. region-1 sees it, and so do two unknown vantage points:
    // three down-votes, but one of three configured vantage points.
    let intruders = intruders(db.pool.clone());
    regions.set_region(1, Health::Unavailable);
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(4) {
        assert!(
            !drained(&db.pool, "region-2").await,
            "drained by one vantage point"
        );
        let (_, ips) = resolve_a(dns1, client2, NAME).await;
        assert_eq!(ips, region2, "left out of DNS by one vantage point");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = get_json(&format!("{http1}/status")).await;
    let region = &status["regions"][1];
    assert_eq!(region["votes_down"], 1, "{region}");
    assert_eq!(region["verdict"], "no_quorum", "{region}");
    assert_eq!(
        status["ignored_vantages"],
        serde_json::json!(["intruder-a", "intruder-b"])
    );
    let metrics = reqwest::get(format!("{http1}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ignored: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("failover_votes_ignored_total{reason=\"unknown_vantage\"} "))
        .and_then(|v| v.parse().ok())
        .expect("failover_votes_ignored_total{reason=\"unknown_vantage\"}");
    assert!(ignored > 0.0, "{ignored}");

    // A second configured vantage point (region-3) makes two of three.
    let majority_at = Instant::now();
    let (_http3, _dns3, stop3, run3) = start("region-3").await;
    wait_for(Duration::from_secs(10), || async {
        let (_, ips) = resolve_a(dns1, client2, NAME).await;
        (ips == region1 && drained(&db.pool, "region-2").await).then_some(())
    })
    .await
    .expect("drained by two of three configured vantage points");
    println!(
        "two of three configured vantage points drained region-2 {:?} after the second started",
        majority_at.elapsed()
    );

    // The way back: healthy again, restored after the hold-down (3 s).
    regions.set_region(1, Health::Ok);
    wait_for(Duration::from_secs(20), || async {
        let (_, ips) = resolve_a(dns1, client2, NAME).await;
        (ips == region2 && !drained(&db.pool, "region-2").await).then_some(())
    })
    .await
    .expect("region-2 restored");
    intruders.abort();
    for (stop, run) in [(stop1, run1), (stop3, run3)] {
        stop.send(()).unwrap();
        run.await.unwrap().unwrap();
    }
}
