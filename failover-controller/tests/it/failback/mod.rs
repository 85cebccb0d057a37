//! The way back, with the real service binary and the real drain flag:
//! a killed region is drained, then returns in DNS (the controllers' own
//! and Route53 through the moto server) after `successes_to_up` probes and
//! the hold-down, and not before; a flapping region's hold-down grows with
//! every relapse and every drain; a manual drain that expires returns the
//! region the same way.
//!
//! The instances are `service` processes, so the drain flag really turns
//! their admission endpoint (`/healthz/region`) to 503 while the
//! controllers probe their health (`/healthz/instance`).

mod harness;

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::helpers::wait_for;
use harness::{assert_returned, return_bound, Failback, HOLD_DOWN, PROBE_INTERVAL};

#[tokio::test]
async fn a_killed_region_is_drained_and_returns_after_the_hold_down() {
    let mut harness = Failback::start().await;
    assert!(harness.dns_serves_own_region(2).await);

    let killed = Instant::now();
    harness.services.kill_region(2);
    let left = harness.wait_dns(2, false, Duration::from_secs(10)).await;
    assert!(harness.drain_flag("region-3").await, "drain flag set");

    // Back: healthy at once, but admitted only when the controller decides.
    let restarting = Instant::now();
    harness.services.restart_region(2).await;
    let healthy = Instant::now();
    let (status, body) = harness.services.answer(2, "/healthz/instance").await;
    assert_eq!((status, &body["drained"]), (200, &json!(true)), "{body}");
    // Not admitted: drained, or (on a loaded machine) still opening its
    // pool's connections, which ends in `drained` while the flag is set.
    let (status, body) = harness.services.answer(2, "/healthz/region").await;
    assert!(
        status == 503 && (body["status"] == "drained" || body["status"] == "warming_up"),
        "{status} {body}"
    );

    let returned = harness.wait_dns(2, true, Duration::from_secs(30)).await;
    assert!(!harness.drain_flag("region-3").await, "drain flag cleared");
    harness
        .services
        .wait_region(2, "/healthz/region", 200)
        .await;
    println!(
        "failback with the real service: out of DNS after the kill ({}), back after the instances were healthy ({}), hold-down {HOLD_DOWN:?}",
        left.since(killed),
        returned.since(healthy)
    );
    assert_returned(
        returned,
        restarting,
        HOLD_DOWN,
        healthy,
        return_bound(HOLD_DOWN),
    );
    harness.stop().await;
}

#[tokio::test]
async fn a_flapping_region_stays_out_and_its_hold_down_grows() {
    let mut harness = Failback::start().await;
    harness.services.kill_region(2);
    harness.wait_dns(2, false, Duration::from_secs(10)).await;

    // Up for less than the hold-down, then dead again: it never returns,
    // and the relapse counts as a flap.
    harness.services.restart_region(2).await;
    let recovering = wait_for(Duration::from_secs(5), || async {
        let status = harness.leader_region_status(2).await;
        (status["state"] == "recovering").then_some(())
    })
    .await;
    assert!(recovering.is_some(), "the leader saw region-3 recovering");
    harness.services.kill_region(2);
    let relapsed = wait_for(Duration::from_secs(5), || async {
        let status = harness.leader_region_status(2).await;
        (status["state"] == "drained").then_some(())
    })
    .await;
    assert!(
        relapsed.is_some(),
        "a relapse while recovering drains again"
    );
    assert!(!harness.dns_serves_own_region(2).await);
    assert!(!harness.route53_regions().await.contains("region-3"));
    assert!(
        !harness
            .decisions("region-3")
            .await
            .contains(&"restore".to_owned()),
        "restored while flapping: {:?}",
        harness.decisions("region-3").await
    );
    let after_relapse = hold_down(&harness).await;
    assert!(
        after_relapse >= HOLD_DOWN * 2 - Duration::from_millis(100),
        "hold-down after a relapse: {after_relapse:?}"
    );

    // Back for good: after the grown hold-down.
    let restarting = Instant::now();
    harness.services.restart_region(2).await;
    let healthy = Instant::now();
    let first = harness.wait_dns(2, true, Duration::from_secs(30)).await;
    let first_healthy = healthy;
    assert_returned(
        first,
        restarting,
        after_relapse,
        healthy,
        return_bound(after_relapse),
    );

    // Dies again soon after its return: a further drain grows it again.
    harness.services.kill_region(2);
    harness.wait_dns(2, false, Duration::from_secs(10)).await;
    let after_drain = hold_down(&harness).await;
    assert!(
        after_drain >= HOLD_DOWN * 4 - Duration::from_millis(300),
        "hold-down after a third flap: {after_drain:?}"
    );
    let restarting = Instant::now();
    harness.services.restart_region(2).await;
    let healthy = Instant::now();
    let second = harness.wait_dns(2, true, Duration::from_secs(40)).await;
    println!(
        "flapping: hold-down {after_relapse:?} after a relapse, first return {}; {after_drain:?} after a further drain, second return {}",
        first.since(first_healthy),
        second.since(healthy)
    );
    assert_returned(
        second,
        restarting,
        after_drain,
        healthy,
        return_bound(after_drain),
    );
    harness.stop().await;
}

/// The hold-down the leader would wait for region-3 now.
async fn hold_down(harness: &Failback) -> Duration {
    let status = harness.leader_region_status(2).await;
    Duration::from_millis(status["hold_down_ms"].as_u64().unwrap())
}

#[tokio::test]
async fn a_region_returns_when_its_manual_drain_expires() {
    let mut harness = Failback::start().await;
    let ttl = Duration::from_secs(4);
    let created = Instant::now();
    let response = reqwest::Client::new()
        .post(format!("{}/v1/admin/overrides", harness.http[0]))
        .bearer_auth("test-admin-token")
        .json(
            &json!({"kind": "drain", "region": "region-2", "reason": "maintenance",
                      "actor": "alice", "ttl_seconds": ttl.as_secs()}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let answered = Instant::now();
    harness.wait_dns(1, false, Duration::from_secs(5)).await;
    harness
        .services
        .wait_region(1, "/healthz/region", 503)
        .await;
    let (status, body) = harness.services.answer(1, "/healthz/instance").await;
    assert_eq!((status, &body["drained"]), (200, &json!(true)), "{body}");

    // The votes were up all along: the hold-down starts when it expires.
    let returned = harness.wait_dns(1, true, Duration::from_secs(30)).await;
    println!(
        "manual drain of {ttl:?} expired: back {} after it was made (hold-down {HOLD_DOWN:?})",
        returned.since(created)
    );
    // The hold-down counts from the last decision round that saw the
    // override (one a probe interval), which can be up to a round before
    // its expiry: a CI run saw the region back 6.98 s after a 4 s drain.
    assert_returned(
        returned,
        created,
        ttl + HOLD_DOWN - PROBE_INTERVAL,
        answered,
        ttl + HOLD_DOWN + PROBE_INTERVAL * 4,
    );
    harness
        .services
        .wait_region(1, "/healthz/region", 200)
        .await;
    harness.stop().await;
}
