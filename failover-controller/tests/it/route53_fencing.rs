//! Route53 changes under the lease, against moto behind a fault-injecting
//! proxy: a leader paused in the middle of a throttled change never lands
//! it after the new leader's (and leads again correctly later); a leader
//! that loses the lease stops waiting for INSYNC (and resumes when it has
//! the lease back); a failed change is retried at the next decisions, not
//! after the drift interval.

use std::process::Command;
use std::time::Duration;

use failover_controller::app::Application;
use serde_json::json;
use tokio::time::Instant;

use crate::helpers::{base_toml, get_json, settings, test_db, wait_for, Regions};
use crate::processes::{spawn_with_env, Controller};
use crate::route53::{
    credentials, health_checks, owned_records, raw_client, route53_toml, start_moto,
    with_health_checks, zone_with_foreign_records,
};
use crate::route53_proxy::{Operation, Route53Proxy};

const TTL_MS: u64 = 2000;
const RENEW_MS: u64 = 500;

/// The environment that points a controller process at its own proxy.
fn route53_env(proxy: &Route53Proxy) -> Vec<(&'static str, String)> {
    vec![
        ("FAILOVER_ROUTE53__ENDPOINT_URL", proxy.url()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AWS_CONFIG_FILE", "/nonexistent".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".into()),
    ]
}

async fn status(controller: &Controller) -> Option<serde_json::Value> {
    let response = reqwest::get(format!("{}/status", controller.http))
        .await
        .ok()?;
    response.json().await.ok()
}

async fn leads(controller: &Controller) -> bool {
    status(controller)
        .await
        .is_some_and(|s| s["lease"]["held"] == true)
}

/// Every region seen up by the controller's last round.
async fn sees_all_up(controller: &Controller) -> bool {
    status(controller).await.is_some_and(|s| {
        s["regions"].as_array().is_some_and(|regions| {
            regions.len() == 3 && regions.iter().all(|r| r["verdict"] == "up")
        })
    })
}

async fn post_override(controller: &Controller, kind: &str, region: &str) -> u16 {
    let body = json!({"kind": kind, "region": region, "reason": "fencing test", "actor": "tester", "ttl_seconds": 300});
    reqwest::Client::new()
        .post(format!("{}/v1/admin/overrides", controller.http))
        .bearer_auth("t")
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Drains `region` through `controller`, again while it answers 409: on a
/// loaded machine a probe can time out between the look at `/status` and
/// the request.
async fn drain_accepted(controller: &Controller, region: &str) {
    wait_for(Duration::from_secs(15), || async {
        (post_override(controller, "drain", region).await == 201).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("the drain of {region} was never accepted"));
}

fn signal(controller: &Controller, signal: &str) {
    Command::new("kill")
        .args([signal, &controller.child.id().to_string()])
        .status()
        .unwrap();
}

#[tokio::test]
async fn a_leader_paused_in_a_throttled_change_never_lands_it_after_the_new_leader() {
    let moto = start_moto().await;
    let raw = raw_client(&moto.url).await;
    let zone = zone_with_foreign_records(&raw).await;
    let checks = health_checks(&raw, 3).await;
    let db = test_db().await;
    let regions = Regions::start(3).await;
    let proxy_a = Route53Proxy::start(&moto.url).await;
    let proxy_b = Route53Proxy::start(&moto.url).await;
    let config = std::env::temp_dir().join(format!("fc-fence-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(
        &config,
        format!(
            "admin_token = \"t\"\n{}[route53]\nenabled = true\nhosted_zone_id = \"{zone}\"\n\
             record_name = \"api.svc.example.com.\"\nmax_requests_per_second = 4.0\n\
             max_retries = 30\ndrift_check_interval_ms = 60000\n\n{}",
            base_toml(TTL_MS, RENEW_MS),
            with_health_checks(&regions.toml(), &checks)
        ),
    )
    .unwrap();
    let a = spawn_with_env(1, &db.url, &config, &route53_env(&proxy_a));
    wait_for(Duration::from_secs(20), || async {
        leads(&a).await.then_some(())
    })
    .await
    .expect("A leads");
    let all = wait_for(Duration::from_secs(20), || async {
        let records = owned_records(&raw, &zone).await;
        (records.len() == 3).then_some(records)
    })
    .await
    .expect("A created the three records");
    let mut b = Some(spawn_with_env(2, &db.url, &config, &route53_env(&proxy_b)));
    wait_for(Duration::from_secs(20), || async {
        (sees_all_up(&a).await && sees_all_up(b.as_ref().unwrap()).await).then_some(())
    })
    .await
    .expect("both see every region up");

    // A drains region-3; every change it sends is throttled, so it retries.
    proxy_a.throttle_changes(true);
    drain_accepted(&a, "region-3").await;
    wait_for(Duration::from_secs(15), || async {
        (proxy_a.count(Operation::Change) >= 2).then_some(())
    })
    .await
    .expect("A's change throttled twice");

    // Paused in the middle of its retries, past its lease. Its throttling
    // ends: a retry it sent now would land.
    signal(&a, "-STOP");
    proxy_a.throttle_changes(false);
    let sent_before_pause = proxy_a.count(Operation::Change);

    // B takes over, carries out the drain (region-3's record goes), then the
    // operator undrains region-3 through B: B puts the record back.
    let paused_at = Instant::now();
    let b_epoch = wait_for(Duration::from_secs(15), || async {
        let status = status(b.as_ref().unwrap()).await?;
        (status["lease"]["held"] == true).then(|| status["lease"]["epoch"].as_i64())?
    })
    .await
    .expect("B leads");
    println!("B leads {:?} after A was paused", paused_at.elapsed());
    wait_for(Duration::from_secs(20), || async {
        let records = owned_records(&raw, &zone).await;
        (records.len() == 2 && records.iter().all(|r| r.0 != "region-3")).then_some(())
    })
    .await
    .expect("B removed region-3's record");
    assert_eq!(
        post_override(b.as_ref().unwrap(), "undrain", "region-3").await,
        201
    );
    wait_for(Duration::from_secs(20), || async {
        (owned_records(&raw, &zone).await == all).then_some(())
    })
    .await
    .expect("B restored region-3's record");

    // A wakes up: it must not send its stale change, now or later. Where
    // the pause caught it decides what it does first: sleeping out the
    // backoff of a call (up to about 10 s), it tries again, finds the lease
    // gone and records the change as fenced; between two passes, its lease
    // loop finds the lease gone first and it never tries. Watch until it
    // has said it no longer leads and either is seen, or for 12 s.
    signal(&a, "-CONT");
    let resumed_at = Instant::now();
    let stood_down = wait_for(Duration::from_secs(20), || async {
        let status = status(&a).await?;
        (status["lease"]["held"] == false || status["lease"]["epoch"].as_i64() > Some(b_epoch))
            .then_some(())
    })
    .await;
    assert!(
        stood_down.is_some(),
        "the resumed replica believes it still leads"
    );
    let fenced = wait_for(Duration::from_secs(12), || async {
        let fenced: (i64,) = sqlx::query_as(
            "SELECT count(*) FROM failover_audit WHERE controller_id = 'proc-region-1' \
             AND name LIKE 'route53_%' AND outcome = 'fenced'",
        )
        .fetch_one(&db.pool)
        .await
        .ok()?;
        (fenced.0 >= 1).then_some(())
    })
    .await;
    println!(
        "A stood down; {} {:?} after it woke",
        if fenced.is_some() {
            "its change was fenced"
        } else {
            "it never tried its change again"
        },
        resumed_at.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let late: Vec<_> = proxy_a
        .seen()
        .into_iter()
        .filter(|s| s.operation == Operation::Change && s.at >= resumed_at)
        .collect();
    assert!(
        late.is_empty(),
        "the paused leader sent changes after it woke: {late:?}"
    );
    assert_eq!(proxy_a.count(Operation::Change), sent_before_pause);
    assert_eq!(
        owned_records(&raw, &zone).await,
        all,
        "Route53 does not hold the new leader's records"
    );
    let status_a = status(&a).await.expect("A's status");
    assert!(
        status_a["lease"]["held"] == false || status_a["lease"]["epoch"].as_i64() > Some(b_epoch),
        "the resumed replica believes it still leads: {}",
        status_a["lease"]
    );

    // The way back: B dies, A leads again and acts through its own proxy.
    drop(b.take());
    wait_for(Duration::from_secs(15), || async {
        leads(&a).await.then_some(())
    })
    .await
    .expect("A leads again");
    drain_accepted(&a, "region-3").await;
    wait_for(Duration::from_secs(20), || async {
        let records = owned_records(&raw, &zone).await;
        (records.len() == 2 && records.iter().all(|r| r.0 != "region-3")).then_some(())
    })
    .await
    .expect("A, leading again, removed region-3's record");
    assert!(proxy_a.count(Operation::Change) > sent_before_pause);
    std::fs::remove_file(config).ok();
}

#[tokio::test]
async fn a_leader_that_loses_the_lease_stops_waiting_for_insync() {
    let moto = start_moto().await;
    let raw = raw_client(&moto.url).await;
    let zone = zone_with_foreign_records(&raw).await;
    let checks = health_checks(&raw, 3).await;
    let proxy = Route53Proxy::start(&moto.url).await;
    proxy.pending_changes(true);
    let db = test_db().await;
    let regions = Regions::start(3).await;
    let app = Application::build_with(
        settings(
            "region-1",
            &db.url,
            &with_health_checks(&regions.toml(), &checks),
            &route53_toml(&proxy.url(), &zone),
        ),
        Some(credentials()),
    )
    .await
    .unwrap();
    let base = format!("http://{}", app.http_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    // Leading, it created region-1's record and waits for INSYNC (PENDING).
    wait_for(Duration::from_secs(15), || async {
        (proxy.count(Operation::GetChange) >= 2).then_some(())
    })
    .await
    .expect("waiting for INSYNC");

    // Another replica takes the lease (as after a long pause of this one).
    sqlx::query(
        "UPDATE failover_lease SET holder = 'someone-else', epoch = epoch + 1, \
         expires_at = now() + INTERVAL '1 hour'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let taken = Instant::now();
    let polls_after = |after: Instant| {
        proxy
            .seen()
            .into_iter()
            .filter(|s| s.operation == Operation::GetChange && s.at >= after)
            .count()
    };
    // One poll may already be on its way; then none.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let quiet_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let last_poll = proxy
        .seen()
        .into_iter()
        .filter(|s| s.operation == Operation::GetChange)
        .map(|s| s.at)
        .max()
        .unwrap();
    println!(
        "last GetChange {:?} after the lease was taken",
        last_poll.saturating_duration_since(taken)
    );
    assert_eq!(
        polls_after(quiet_from),
        0,
        "still polling GetChange without the lease"
    );
    let status = get_json(&format!("{base}/status")).await;
    assert_eq!(status["lease"]["held"], false);
    let fenced: (i64,) = sqlx::query_as(
        "SELECT count(*) FROM failover_audit WHERE name LIKE 'route53_%' AND outcome = 'fenced'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(fenced.0 >= 1, "the stopped wait is not in the audit log");

    // The way back: the lease is free again and changes go INSYNC: the
    // replica leads again and finishes the records.
    proxy.pending_changes(false);
    sqlx::query("UPDATE failover_lease SET expires_at = now()")
        .execute(&db.pool)
        .await
        .unwrap();
    wait_for(Duration::from_secs(20), || async {
        (owned_records(&raw, &zone).await.len() == 3).then_some(())
    })
    .await
    .expect("leading again, it created every record");
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_failed_change_is_retried_at_the_next_decisions_not_the_drift_interval() {
    let moto = start_moto().await;
    let raw = raw_client(&moto.url).await;
    let zone = zone_with_foreign_records(&raw).await;
    let checks = health_checks(&raw, 3).await;
    let proxy = Route53Proxy::start(&moto.url).await;
    // The first change is refused (not retryable by the call itself).
    proxy.reject_changes(1);
    let db = test_db().await;
    let regions = Regions::start(3).await;
    // The drift pass would come a minute later: only a retry can be quick.
    let extra = route53_toml(&proxy.url(), &zone).replace(
        "drift_check_interval_ms = 1000",
        "drift_check_interval_ms = 60000",
    );
    let app = Application::build_with(
        settings(
            "region-1",
            &db.url,
            &with_health_checks(&regions.toml(), &checks),
            &extra,
        ),
        Some(credentials()),
    )
    .await
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let rejected_at = wait_for(Duration::from_secs(15), || async {
        proxy
            .seen()
            .into_iter()
            .find(|s| s.operation == Operation::Change && !s.forwarded)
            .map(|s| s.at)
    })
    .await
    .expect("the first change was rejected");
    let created = wait_for(Duration::from_secs(10), || async {
        (owned_records(&raw, &zone).await.len() == 3).then(Instant::now)
    })
    .await;
    let Some(created) = created else {
        panic!(
            "the rejected change was not retried within 10 s: {:?}",
            owned_records(&raw, &zone).await
        );
    };
    println!(
        "every record in place {:?} after the rejected change",
        created.saturating_duration_since(rejected_at)
    );
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
}
