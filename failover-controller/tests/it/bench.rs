//! Benchmark (prints figures; not a timed test): from killing a region's
//! instances to the majority decision, the drain flag and the DNS change, at
//! several probe intervals; and probes per second on one core.
//! Run: cargo test -p failover-controller --test it bench -- --ignored --nocapture

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use failover_controller::app::Application;
use tokio::time::Instant;

use crate::helpers::{
    get_json, resolve_a, settings, test_db, wait_for, Health, HealthServer, Regions,
};

async fn one_run(interval_ms: u64) -> (f64, f64, f64) {
    let db = test_db().await;
    let regions = Regions::start(3).await;
    let mut stops = Vec::new();
    let mut http = Vec::new();
    let mut dns = Vec::new();
    for r in 1..=3 {
        let mut s = settings(&format!("region-{r}"), &db.url, &regions.toml(), "");
        s.probe.interval_ms = interval_ms;
        s.probe.timeout_ms = interval_ms * 3 / 5;
        s.probe.vote_freshness_ms = (interval_ms * 6).max(3000);
        s.decision.interval_ms = (interval_ms / 4).max(50);
        let app = Application::build(s).await.unwrap();
        http.push(format!("http://{}", app.http_addr()));
        dns.push(app.dns_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
    }
    wait_for(Duration::from_secs(20), || {
        let http = http.clone();
        async move {
            for url in &http {
                let s = get_json(&format!("{url}/status")).await;
                if s["counted_vantages"].as_array().map(|v| v.len()) != Some(3) {
                    return None;
                }
            }
            Some(())
        }
    })
    .await
    .expect("warm");
    tokio::time::sleep(Duration::from_millis(interval_ms * 2)).await;
    let client3: IpAddr = "127.0.3.9".parse().unwrap();
    let region2: Vec<IpAddr> = regions.servers[1].iter().map(|s| s.addr.ip()).collect();
    let killed_at = Utc::now();
    let killed = Instant::now();
    regions.set_region(2, Health::Unavailable);
    let dns_s = wait_for(Duration::from_secs(20), || async {
        let (_, ips) = resolve_a(dns[0], client3, "api.svc.failover.test.").await;
        (ips == region2).then(|| killed.elapsed().as_secs_f64())
    })
    .await
    .expect("dns changed");
    let (decided,): (DateTime<Utc>,) = sqlx::query_as(
        "SELECT min(at) FROM failover_audit WHERE kind = 'decision' AND name = 'drain' AND region = 'region-3'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let (flagged,): (DateTime<Utc>,) =
        sqlx::query_as("SELECT updated_at FROM region_state WHERE region = 'region-3'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    for stop in stops {
        let _ = stop.send(());
    }
    let secs = |t: DateTime<Utc>| (t - killed_at).num_milliseconds() as f64 / 1000.0;
    (secs(decided), secs(flagged), dns_s)
}

#[tokio::test]
#[ignore = "benchmark: prints figures"]
async fn bench_failover_timings() {
    println!("probe interval | decision | drain flag | DNS changed | vs Route53 (30 s)");
    for interval in [250u64, 500, 1000] {
        let (decision, flag, dns) = one_run(interval).await;
        println!(
            "{interval:>11} ms | {decision:>6.2} s | {flag:>8.2} s | {dns:>9.2} s | {:>5.1}x faster",
            30.0 / dns
        );
    }
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "benchmark: prints figures"]
async fn bench_probes_per_second_on_one_core() {
    let mut servers: Vec<HealthServer> = Vec::new();
    for i in 1..=8 {
        servers.push(HealthServer::start(&format!("127.0.5.{i}")).await);
    }
    let client = reqwest::Client::new();
    let urls: Vec<String> = servers
        .iter()
        .map(|s| format!("http://{}/healthz/instance", s.addr))
        .collect();
    let started = Instant::now();
    let mut probes = 0u64;
    while started.elapsed() < Duration::from_secs(3) {
        let round = futures_util::future::join_all(urls.iter().map(|u| {
            failover_controller::probe::probe_one(&client, u, Duration::from_millis(500))
        }))
        .await;
        probes += round.len() as u64;
    }
    println!(
        "probes per second on one core (client and 8 servers on one thread): {:.0}",
        probes as f64 / started.elapsed().as_secs_f64()
    );
}
