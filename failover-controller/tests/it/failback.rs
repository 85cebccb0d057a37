//! The way back, with the real service binary and the real drain flag:
//! a killed region is drained, then returns in DNS (the controllers' own
//! and Route53 through the moto server) after `successes_to_up` probes and
//! the hold-down, and not before; a flapping region's hold-down grows; a
//! manual drain that expires returns the region the same way.
//!
//! The instances are `service` processes, so the drain flag really turns
//! their admission endpoint (`/healthz/region`) to 503 while the
//! controllers probe their health (`/healthz/instance`).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use failover_controller::app::Application;
use serde_json::json;
use tokio::time::Instant;

use crate::helpers::{get_json, resolve_a, settings, test_db, wait_for, TestDb};
use crate::route53::{credentials, raw_client, route53_toml, start_moto, Moto};
use crate::services::ServiceRegions;

const NAME: &str = "api.svc.failover.test.";
/// The test base (helpers::base_toml): 500 ms probes, hold-down 3 s, and
/// the default successes_to_up of 3.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);
const HOLD_DOWN: Duration = Duration::from_secs(3);
const SUCCESSES_TO_UP: u32 = 3;

/// Three regions of real service instances, three controllers in-process,
/// Route53 on a moto server.
struct Failback {
    db: TestDb,
    services: ServiceRegions,
    moto: Moto,
    route53: aws_sdk_route53::Client,
    zone: String,
    http: Vec<String>,
    dns: Vec<SocketAddr>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    runs: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Failback {
    async fn start() -> Self {
        let db = test_db().await;
        let services = ServiceRegions::start(&db.url, 3).await;
        let moto = start_moto().await;
        let route53 = raw_client(&moto.url).await;
        let zone = route53
            .create_hosted_zone()
            .name("svc.example.com.")
            .caller_reference(uuid::Uuid::new_v4().to_string())
            .send()
            .await
            .unwrap()
            .hosted_zone()
            .unwrap()
            .id()
            .trim_start_matches("/hostedzone/")
            .to_owned();
        let mut health_checks = Vec::new();
        for instances in &services.regions {
            health_checks.push(create_health_check(&route53, instances[0].addr).await);
        }
        let regions_toml = services.toml(&health_checks);
        let mut harness = Self {
            db,
            services,
            moto,
            route53,
            zone,
            http: Vec::new(),
            dns: Vec::new(),
            stops: Vec::new(),
            runs: Vec::new(),
        };
        for r in 1..=3 {
            let extra = route53_toml(&harness.moto.url, &harness.zone);
            let app = Application::build_with(
                settings(
                    &format!("region-{r}"),
                    &harness.db.url,
                    &regions_toml,
                    &extra,
                ),
                Some(credentials()),
            )
            .await
            .unwrap();
            harness.http.push(format!("http://{}", app.http_addr()));
            harness.dns.push(app.dns_addr().unwrap());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            harness.stops.push(stop);
            harness
                .runs
                .push(tokio::spawn(app.run_until_stopped(async move {
                    let _ = stopped.await;
                })));
        }
        harness.wait_settled().await;
        harness
    }

    /// Every controller hears all three vantage points, one leads, and
    /// Route53 holds a record for every region.
    async fn wait_settled(&self) {
        let settled = wait_for(Duration::from_secs(20), || async {
            let mut leaders = 0;
            for url in &self.http {
                let status = get_json(&format!("{url}/status")).await;
                if status["counted_vantages"].as_array().map(Vec::len) != Some(3) {
                    return None;
                }
                leaders += usize::from(status["lease"]["held"] == true);
            }
            let records = self.route53_regions().await;
            (leaders == 1 && records.len() == 3).then_some(())
        })
        .await;
        if settled.is_none() {
            let status = get_json(&format!("{}/status", self.http[0])).await;
            panic!(
                "not settled: Route53 holds {:?}; status of region-1's controller: {status:#}",
                self.route53_regions().await
            );
        }
    }

    /// The regions of the latency records Route53 holds now.
    async fn route53_regions(&self) -> BTreeSet<String> {
        let records = self
            .route53
            .list_resource_record_sets()
            .hosted_zone_id(&self.zone)
            .send()
            .await
            .unwrap();
        records
            .resource_record_sets()
            .iter()
            .filter_map(|set| set.set_identifier().map(str::to_owned))
            .collect()
    }

    /// Whether every replica answers clients of `region-(index+1)` with that
    /// region's own instances.
    async fn dns_serves_own_region(&self, index: usize) -> bool {
        let client: IpAddr = format!("127.0.{}.9", index + 1).parse().unwrap();
        let own = self.services.ips(index);
        for server in &self.dns {
            if resolve_a(*server, client, NAME).await.1 != own {
                return false;
            }
        }
        true
    }

    /// Waits until the region is out of (`serving` false) or back in
    /// (`serving` true) every replica's answers and Route53's records, and
    /// says how long each took from `since`.
    async fn wait_dns(
        &self,
        index: usize,
        serving: bool,
        since: Instant,
        limit: Duration,
    ) -> DnsTimes {
        let region = format!("region-{}", index + 1);
        let (mut authoritative, mut route53) = (None, None);
        while since.elapsed() < limit {
            if authoritative.is_none() && self.dns_serves_own_region(index).await == serving {
                authoritative = Some(since.elapsed());
            }
            if route53.is_none() && self.route53_regions().await.contains(&region) == serving {
                route53 = Some(since.elapsed());
            }
            if let (Some(authoritative), Some(route53)) = (authoritative, route53) {
                return DnsTimes {
                    authoritative,
                    route53,
                };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "{region} not {} DNS within {limit:?}: authoritative {authoritative:?}, Route53 {route53:?}",
            if serving { "back in" } else { "out of" }
        )
    }

    /// The drain flag of a region in the database.
    async fn drain_flag(&self, region: &str) -> bool {
        sqlx::query_scalar("SELECT drained FROM region_state WHERE region = $1")
            .bind(region)
            .fetch_optional(&self.db.pool)
            .await
            .unwrap()
            .unwrap_or(false)
    }

    /// The leader's view of a region.
    async fn leader_region_status(&self, index: usize) -> serde_json::Value {
        for url in &self.http {
            let status = get_json(&format!("{url}/status")).await;
            if status["lease"]["held"] == true {
                return status["regions"][index].clone();
            }
        }
        panic!("no leader");
    }

    async fn stop(self) {
        for stop in self.stops {
            let _ = stop.send(());
        }
        for run in self.runs {
            run.await.unwrap().unwrap();
        }
    }
}

async fn create_health_check(client: &aws_sdk_route53::Client, instance: SocketAddr) -> String {
    use aws_sdk_route53::types::{HealthCheckConfig, HealthCheckType};
    let config = HealthCheckConfig::builder()
        .r#type(HealthCheckType::Http)
        .ip_address(instance.ip().to_string())
        .port(i32::from(instance.port()))
        .resource_path("/healthz/region")
        .build()
        .unwrap();
    client
        .create_health_check()
        .caller_reference(uuid::Uuid::new_v4().to_string())
        .health_check_config(config)
        .send()
        .await
        .unwrap()
        .health_check()
        .unwrap()
        .id()
        .to_owned()
}

/// When a change reached the controllers' own DNS answers and Route53.
#[derive(Debug, Clone, Copy)]
struct DnsTimes {
    authoritative: Duration,
    route53: Duration,
}

/// The longest a return may take once the instances are healthy again:
/// the probes that turn the verdict up, the hold-down, and a few probe
/// intervals for the votes, the decision and the DNS view.
fn return_bound(hold_down: Duration) -> Duration {
    PROBE_INTERVAL * SUCCESSES_TO_UP + hold_down + PROBE_INTERVAL * 4
}

/// What Route53 may take beyond the controllers' own DNS: the rate-limited
/// list, change and GetChange calls (at most 4 per second) after the flag.
const ROUTE53_EXTRA: Duration = Duration::from_secs(2);

/// A return happened no sooner than `earliest` and no later than `latest`
/// in the controllers' DNS (Route53 within `ROUTE53_EXTRA` more).
fn assert_returned(times: DnsTimes, earliest: Duration, latest: Duration) {
    for (path, took, limit) in [
        ("authoritative DNS", times.authoritative, latest),
        ("Route53", times.route53, latest + ROUTE53_EXTRA),
    ] {
        assert!(
            took >= earliest,
            "{path}: back after {took:?}, before {earliest:?}"
        );
        assert!(
            took <= limit,
            "{path}: back after {took:?}, later than {limit:?}"
        );
    }
}

#[tokio::test]
async fn a_killed_region_is_drained_and_returns_after_the_hold_down() {
    let mut harness = Failback::start().await;
    assert!(harness.dns_serves_own_region(2).await);

    let killed = Instant::now();
    harness.services.kill_region(2);
    let left = harness
        .wait_dns(2, false, killed, Duration::from_secs(10))
        .await;
    assert!(harness.drain_flag("region-3").await, "drain flag set");

    // Back: healthy at once, but admitted only when the controller decides.
    harness.services.restart_region(2).await;
    let healthy = Instant::now();
    let (status, body) = harness.services.answer(2, "/healthz/instance").await;
    assert_eq!((status, &body["drained"]), (200, &json!(true)), "{body}");
    let (status, body) = harness.services.answer(2, "/healthz/region").await;
    assert_eq!(
        (status, &body["status"]),
        (503, &json!("drained")),
        "{body}"
    );

    let returned = harness
        .wait_dns(2, true, healthy, Duration::from_secs(30))
        .await;
    assert!(!harness.drain_flag("region-3").await, "drain flag cleared");
    harness
        .services
        .wait_region(2, "/healthz/region", 200)
        .await;
    println!(
        "failback with the real service: out of DNS {left:?} after the kill, back {returned:?} after the instances were healthy (hold-down {HOLD_DOWN:?})"
    );
    assert_returned(returned, HOLD_DOWN, return_bound(HOLD_DOWN));
    harness.stop().await;
}

#[tokio::test]
async fn a_flapping_region_stays_out_and_its_hold_down_grows() {
    let mut harness = Failback::start().await;
    harness.services.kill_region(2);
    harness
        .wait_dns(2, false, Instant::now(), Duration::from_secs(10))
        .await;

    // Up for less than the hold-down, then dead again: it never returns.
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

    // Back for good: the first drain's hold-down.
    harness.services.restart_region(2).await;
    let first = harness
        .wait_dns(2, true, Instant::now(), Duration::from_secs(30))
        .await;

    // Dies again soon after its return: a second drain doubles the hold-down.
    harness.services.kill_region(2);
    harness
        .wait_dns(2, false, Instant::now(), Duration::from_secs(10))
        .await;
    let hold_down_ms = harness.leader_region_status(2).await["hold_down_ms"]
        .as_u64()
        .unwrap();
    assert!(
        hold_down_ms >= 2 * HOLD_DOWN.as_millis() as u64 - 100,
        "hold-down after a second drain: {hold_down_ms} ms"
    );
    harness.services.restart_region(2).await;
    let second = harness
        .wait_dns(2, true, Instant::now(), Duration::from_secs(40))
        .await;
    println!("flapping: first return {first:?}, second {second:?} (hold-down {hold_down_ms} ms)");
    let grown = Duration::from_millis(hold_down_ms);
    assert_returned(second, grown, return_bound(grown));
    harness.stop().await;
}

#[tokio::test]
async fn a_region_returns_when_its_manual_drain_expires() {
    let harness = Failback::start().await;
    let ttl = Duration::from_secs(2);
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
    let created = Instant::now();
    harness
        .wait_dns(1, false, created, Duration::from_secs(5))
        .await;
    harness
        .services
        .wait_region(1, "/healthz/region", 503)
        .await;
    let (status, body) = harness.services.answer(1, "/healthz/instance").await;
    assert_eq!((status, &body["drained"]), (200, &json!(true)), "{body}");

    let returned = harness
        .wait_dns(1, true, created, Duration::from_secs(30))
        .await;
    println!("manual drain of {ttl:?} expired: back {returned:?} after it was made (hold-down {HOLD_DOWN:?})");
    // The votes were up all along: the hold-down starts when it expires.
    assert_returned(
        returned,
        ttl + HOLD_DOWN,
        ttl + HOLD_DOWN + PROBE_INTERVAL * 4,
    );
    harness
        .services
        .wait_region(1, "/healthz/region", 200)
        .await;
    harness.stop().await;
}
