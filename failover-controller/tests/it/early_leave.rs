//! Leave fast without the leader: three controller processes; the leader's
//! region dies together with the leader (SIGKILL), and the other replicas'
//! DNS answers drop that region from the shared votes, before the lease TTL
//! elapses and long before a new leader writes the drain flag.

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::helpers::{get_json, resolve_a, test_db, wait_for, Health, Regions};
use crate::processes::{leader_of, spawn, write_config, Controller};

const TTL_MS: u64 = 3000;
const RENEW_MS: u64 = 500;
const NAME: &str = "api.svc.failover.test.";

#[tokio::test]
async fn followers_drop_the_dead_leaders_region_before_the_lease_expires() {
    let db = test_db().await;
    let regions = Regions::start(3).await;
    let config = write_config(&regions, TTL_MS, RENEW_MS);
    let mut controllers: Vec<Option<Controller>> =
        (1..=3).map(|r| Some(spawn(r, &db.url, &config))).collect();
    let (leader, _) = wait_for(Duration::from_secs(20), || async {
        for c in controllers.iter().flatten() {
            let response = reqwest::get(format!("{}/status", c.http)).await.ok()?;
            let status: serde_json::Value = response.json().await.ok()?;
            if status["counted_vantages"].as_array().map(|v| v.len()) != Some(3) {
                return None;
            }
        }
        leader_of(&controllers).await
    })
    .await
    .expect("a leader, and every replica hears three vantage points");
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let client: IpAddr = format!("127.0.{}.9", leader + 1).parse().unwrap();
    let dead_ips: Vec<IpAddr> = regions.servers[leader]
        .iter()
        .map(|s| s.addr.ip())
        .collect();
    for f in &followers {
        let dns = controllers[*f].as_ref().unwrap().dns;
        assert_eq!(resolve_a(dns, client, NAME).await.1, dead_ips);
    }

    // The leader's region dies with the leader.
    let killed = Instant::now();
    let killed_at = Utc::now();
    regions.set_region(leader, Health::Unavailable);
    controllers[leader] = None;

    let mut dropped: Vec<(usize, Duration, DateTime<Utc>)> = Vec::new();
    for f in &followers {
        let dns = controllers[*f].as_ref().unwrap().dns;
        let after = wait_for(Duration::from_secs(10), || async {
            let (_, ips) = resolve_a(dns, client, NAME).await;
            (!ips.is_empty() && ips.iter().all(|ip| !dead_ips.contains(ip)))
                .then(|| (killed.elapsed(), Utc::now()))
        })
        .await
        .expect("the follower's DNS drops the dead region");
        dropped.push((*f, after.0, after.1));
    }

    // A new leader drains it afterwards, with the flag.
    let flagged: DateTime<Utc> = wait_for(Duration::from_secs(15), || async {
        let row: Option<(bool, DateTime<Utc>)> =
            sqlx::query_as("SELECT drained, updated_at FROM region_state WHERE region = $1")
                .bind(format!("region-{}", leader + 1))
                .fetch_optional(&db.pool)
                .await
                .unwrap();
        row.filter(|r| r.0).map(|r| r.1)
    })
    .await
    .expect("the new leader sets the drain flag");
    let flag_after = (flagged - killed_at).to_std().unwrap_or_default();
    for (f, after, at) in &dropped {
        println!(
            "follower region-{} dropped the dead leader's region from DNS {after:?} after the kill \
             (lease TTL {TTL_MS} ms; drain flag written by the new leader {flag_after:?} after the kill)",
            f + 1
        );
        assert!(
            *after < Duration::from_millis(TTL_MS),
            "region-{} took {after:?}, not before the lease TTL",
            f + 1
        );
        assert!(
            *at < flagged,
            "region-{} dropped the region only after the flag was written",
            f + 1
        );
        let status = get_json(&format!(
            "{}/status",
            controllers[*f].as_ref().unwrap().http
        ))
        .await;
        let events = status["recent_events"].as_array().unwrap();
        assert!(
            events.iter().any(|e| e["name"] == "dns_leave_early"
                && e["region"] == format!("region-{}", leader + 1)),
            "no dns_leave_early event: {events:?}"
        );
    }
    std::fs::remove_file(config).ok();
}
