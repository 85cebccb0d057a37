//! The failback tests' deployment: three regions of real service
//! instances, three controllers in-process, Route53 on a moto server, and
//! the ways to watch a region leave and return.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use failover_controller::app::Application;
use tokio::time::Instant;

use crate::helpers::{get_json, resolve_a, settings, test_db, wait_for, TestDb};
use crate::route53::{credentials, raw_client, route53_toml, start_moto, Moto};
use crate::services::ServiceRegions;

const NAME: &str = "api.svc.failover.test.";
/// The test base (helpers::base_toml): 500 ms probes, hold-down 3 s, and
/// the default successes_to_up of 3.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);
pub const HOLD_DOWN: Duration = Duration::from_secs(3);
const SUCCESSES_TO_UP: u32 = 3;

/// Three regions of real service instances, three controllers in-process,
/// Route53 on a moto server.
pub struct Failback {
    pub db: TestDb,
    pub services: ServiceRegions,
    moto: Moto,
    route53: aws_sdk_route53::Client,
    zone: String,
    pub http: Vec<String>,
    dns: Vec<SocketAddr>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    runs: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Failback {
    pub async fn start() -> Self {
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
    pub async fn route53_regions(&self) -> BTreeSet<String> {
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
    pub async fn dns_serves_own_region(&self, index: usize) -> bool {
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
    /// says when each happened.
    pub async fn wait_dns(&self, index: usize, serving: bool, limit: Duration) -> DnsTimes {
        let region = format!("region-{}", index + 1);
        let started = Instant::now();
        let (mut authoritative, mut route53) = (None, None);
        while started.elapsed() < limit {
            if authoritative.is_none() && self.dns_serves_own_region(index).await == serving {
                authoritative = Some(Instant::now());
            }
            if route53.is_none() && self.route53_regions().await.contains(&region) == serving {
                route53 = Some(Instant::now());
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
            "{region} not {} DNS within {limit:?}: authoritative {}, Route53 {}",
            if serving { "back in" } else { "out of" },
            authoritative.is_some(),
            route53.is_some()
        )
    }

    /// The audit log's decisions on a region, in order.
    pub async fn decisions(&self, region: &str) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT name FROM failover_audit WHERE kind = 'decision' AND region = $1 ORDER BY at",
        )
        .bind(region)
        .fetch_all(&self.db.pool)
        .await
        .unwrap()
    }

    /// The drain flag of a region in the database.
    pub async fn drain_flag(&self, region: &str) -> bool {
        sqlx::query_scalar("SELECT drained FROM region_state WHERE region = $1")
            .bind(region)
            .fetch_optional(&self.db.pool)
            .await
            .unwrap()
            .unwrap_or(false)
    }

    /// The leader's view of a region.
    pub async fn leader_region_status(&self, index: usize) -> serde_json::Value {
        for url in &self.http {
            let status = get_json(&format!("{url}/status")).await;
            if status["lease"]["held"] == true {
                return status["regions"][index].clone();
            }
        }
        panic!("no leader");
    }

    pub async fn stop(self) {
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
pub struct DnsTimes {
    pub authoritative: Instant,
    pub route53: Instant,
}

impl DnsTimes {
    /// Both, as durations since `since`, for people.
    pub fn since(&self, since: Instant) -> String {
        format!(
            "authoritative {:.2} s, Route53 {:.2} s",
            (self.authoritative - since).as_secs_f64(),
            (self.route53 - since).as_secs_f64()
        )
    }
}

/// The longest a return may take once the instances are healthy again:
/// the probes that turn the verdict up, the hold-down, and a few probe
/// intervals for the votes, the decision and the DNS view.
pub fn return_bound(hold_down: Duration) -> Duration {
    PROBE_INTERVAL * SUCCESSES_TO_UP + hold_down + PROBE_INTERVAL * 4
}

/// What Route53 may take beyond the controllers' own DNS: the rate-limited
/// list, change and GetChange calls (at most 4 per second) after the flag.
const ROUTE53_EXTRA: Duration = Duration::from_secs(2);

/// A return happened no sooner than `earliest` after `restarting` (when
/// the instances began to come back: one instance answering is enough for
/// the probes) and no later than `latest` after `healthy` (when all of
/// them answered), in the controllers' DNS; Route53 within
/// `ROUTE53_EXTRA` more.
pub fn assert_returned(
    times: DnsTimes,
    restarting: Instant,
    earliest: Duration,
    healthy: Instant,
    latest: Duration,
) {
    for (path, at, limit) in [
        ("authoritative DNS", times.authoritative, latest),
        ("Route53", times.route53, latest + ROUTE53_EXTRA),
    ] {
        let early = at - restarting;
        let late = at.saturating_duration_since(healthy);
        assert!(
            early >= earliest,
            "{path}: back {early:?} after the restart, before {earliest:?}"
        );
        assert!(
            late <= limit,
            "{path}: back {late:?} after healthy, later than {limit:?}"
        );
    }
}
