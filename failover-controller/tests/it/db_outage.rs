//! The controller when its own database fails, through a proxy on the real
//! database path: a replica cut off answers from its view only for
//! `decision.max_view_age_ms`, then SERVFAIL and not ready, and comes back
//! by itself; the binary started without a database serves `/healthz`,
//! reports not ready, waits, and goes on when the database comes.

use std::net::IpAddr;
use std::time::Duration;

use failover_controller::app::Application;
use hickory_client::proto::op::ResponseCode;
use tokio::time::Instant;

use crate::db_proxy::{Cut, DbProxy};
use crate::helpers::{resolve_a, settings, test_db, wait_for, Regions};
use crate::processes::{spawn, write_config};

const NAME: &str = "api.svc.failover.test.";
const MAX_VIEW_AGE_MS: u64 = 3000;

/// GET `url`: status code and body, or None when nothing answers.
async fn get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap_or_default()))
}

/// The value of an unlabelled metric in the exposition text.
async fn metric(http: &str, name: &str) -> Option<f64> {
    let (_, text) = get(&format!("{http}/metrics")).await?;
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
}

/// Waits until the replica is ready and answers `client` with `ips`;
/// returns how long that took.
async fn until_answering(
    http: &str,
    dns: std::net::SocketAddr,
    client: IpAddr,
    ips: &[IpAddr],
) -> Duration {
    let started = Instant::now();
    wait_for(Duration::from_secs(30), || async {
        let (code, answered) = resolve_a(dns, client, NAME).await;
        let ready = get(&format!("{http}/readyz")).await.map(|r| r.0);
        (code == ResponseCode::NoError && answered == ips && ready == Some(200)).then_some(())
    })
    .await
    .expect("answering and ready");
    started.elapsed()
}

async fn cut_and_restore(cut: Cut) {
    let db = test_db().await;
    let regions = Regions::start(3).await;
    let proxy = DbProxy::start(&db.url, Cut::Pass).await;
    let mut s = settings("region-1", &proxy.url(&db.url), &regions.toml(), "");
    s.decision.max_view_age_ms = MAX_VIEW_AGE_MS;
    let app = Application::build(s).await.unwrap();
    let http = format!("http://{}", app.http_addr());
    let dns = app.dns_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let client: IpAddr = "127.0.1.9".parse().unwrap();
    let region1: Vec<IpAddr> = regions.servers[0].iter().map(|s| s.addr.ip()).collect();
    until_answering(&http, dns, client, &region1).await;

    // Cut: the view is answered from for max_view_age_ms, then SERVFAIL.
    let cut_at = Instant::now();
    proxy.set(cut);
    tokio::time::sleep(Duration::from_millis(MAX_VIEW_AGE_MS / 3)).await;
    let (code, ips) = resolve_a(dns, client, NAME).await;
    assert_eq!(
        (code, &ips),
        (ResponseCode::NoError, &region1),
        "a short cut must not stop the answers"
    );
    let servfail_after = wait_for(Duration::from_secs(15), || async {
        let (code, _) = resolve_a(dns, client, NAME).await;
        (code == ResponseCode::ServFail).then(|| cut_at.elapsed())
    })
    .await
    .expect("SERVFAIL once the view is older than max_view_age_ms");
    assert!(
        servfail_after >= Duration::from_millis(MAX_VIEW_AGE_MS - 500),
        "SERVFAIL after {servfail_after:?}, before the bound"
    );
    let (status, body) = get(&format!("{http}/readyz"))
        .await
        .expect("readyz answers");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("database") && body.contains("SERVFAIL"),
        "{body}"
    );
    assert_eq!(metric(&http, "failover_view_stale").await, Some(1.0));
    let age = metric(&http, "failover_view_age_seconds").await.unwrap();
    assert!(age * 1000.0 >= (MAX_VIEW_AGE_MS - 500) as f64, "age {age}");
    // Outside the zone nothing changes: still REFUSED.
    let (code, _) = resolve_a(dns, client, "example.org.").await;
    assert_eq!(code, ResponseCode::Refused);
    // /healthz stays up: nothing restarts the replica for this.
    assert_eq!(
        get(&format!("{http}/healthz")).await.map(|r| r.0),
        Some(200)
    );

    // The way back: the database returns, the replica answers and is ready.
    let restored_at = Instant::now();
    proxy.set(Cut::Pass);
    let back_after = until_answering(&http, dns, client, &region1).await;
    assert_eq!(metric(&http, "failover_view_stale").await, Some(0.0));
    println!(
        "database {cut:?}: SERVFAIL {servfail_after:?} after the cut (max_view_age_ms \
         {MAX_VIEW_AGE_MS}); answering and ready {back_after:?} after it returned"
    );
    assert!(
        restored_at.elapsed() < Duration::from_secs(10),
        "{back_after:?}"
    );
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_replica_whose_database_refuses_stops_answering_and_comes_back() {
    cut_and_restore(Cut::Refuse).await;
}

#[tokio::test]
async fn a_replica_whose_database_is_blackholed_stops_answering_and_comes_back() {
    cut_and_restore(Cut::Hold).await;
}

#[tokio::test]
async fn the_binary_starts_without_a_database_and_goes_on_when_it_comes() {
    let db = test_db().await;
    let regions = Regions::start(3).await;
    let proxy = DbProxy::start(&db.url, Cut::Refuse).await;
    let config = write_config(&regions, 3000, 500);
    let mut controller = spawn(1, &proxy.url(&db.url), &config);
    let http = controller.http.clone();
    let dns = controller.dns;
    let client: IpAddr = "127.0.1.9".parse().unwrap();

    // It binds and serves /healthz without the database.
    let bound = wait_for(Duration::from_secs(10), || async {
        (get(&format!("{http}/healthz")).await?.0 == 200).then_some(())
    })
    .await;
    let exited = controller.child.try_wait().unwrap();
    assert!(
        bound.is_some(),
        "no /healthz without a database (process exited: {exited:?})"
    );
    let (status, body) = get(&format!("{http}/readyz")).await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database unreachable"), "{body}");
    let (code, _) = resolve_a(dns, client, NAME).await;
    assert_eq!(code, ResponseCode::ServFail, "DNS without ever a view");
    // It keeps waiting (with backoff), not exiting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(controller.child.try_wait().unwrap().is_none(), "it exited");
    assert_eq!(get(&format!("{http}/readyz")).await.map(|r| r.0), Some(503));

    // The database comes: ready, answering, and a leader.
    let arrived = Instant::now();
    proxy.set(Cut::Pass);
    let region1: Vec<IpAddr> = regions.servers[0].iter().map(|s| s.addr.ip()).collect();
    let answering = until_answering(&http, dns, client, &region1).await;
    let leads = wait_for(Duration::from_secs(10), || async {
        let (_, body) = get(&format!("{http}/status")).await?;
        let status: serde_json::Value = serde_json::from_str(&body).ok()?;
        (status["lease"]["held"] == true).then(|| arrived.elapsed())
    })
    .await
    .expect("it takes the lease once the database is there");
    println!(
        "started without a database: answering and ready {answering:?} after it came, \
         leading after {leads:?}"
    );
    std::fs::remove_file(config).ok();
}
