//! Stop conditions, checked every second while the load runs: the error
//! budget share and the success ratio over a window (from the load's live
//! counters, in [`super::schedule::monitor`]), a region that no fault of
//! the drill names failing its health (`/healthz/instance` of every
//! instance), and a Prometheus query returning anything. The first that
//! trips sets the abort reason (which condition, what it saw, when) and the
//! abort flag; the drill then rolls back at once.
//!
//! A Prometheus that cannot be asked three times in a row trips too: a
//! guard rail that cannot be checked is not one.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::deployment::instances::InstanceHttps;
use crate::spec::{AbortConditions, Drill, FaultKind, PrometheusCondition};

/// Fewer requests than this in the window say nothing about the ratio.
const MIN_REQUESTS_IN_WINDOW: u64 = 20;
/// Failed Prometheus queries in a row that stop the drill.
const PROMETHEUS_FAILURES_TO_STOP: u32 = 3;

/// The success ratio of the last `window_s` seconds.
#[derive(Debug)]
pub struct SuccessWindow {
    seconds: VecDeque<(u64, u64)>,
    window_s: usize,
    min_ratio: f64,
}

impl SuccessWindow {
    pub fn new(conditions: &AbortConditions) -> Option<Self> {
        conditions.min_success_ratio.map(|min_ratio| Self {
            seconds: VecDeque::new(),
            window_s: conditions.success_window_s.max(1) as usize,
            min_ratio,
        })
    }

    /// Adds one second's (succeeded, failed); the reason when the window's
    /// ratio is below the limit.
    pub fn observe(&mut self, ok: u64, failed: u64) -> Option<String> {
        self.seconds.push_back((ok, failed));
        while self.seconds.len() > self.window_s {
            self.seconds.pop_front();
        }
        let (ok, failed) = self
            .seconds
            .iter()
            .fold((0, 0), |(a, b), (ok, failed)| (a + ok, b + failed));
        let total = ok + failed;
        if total < MIN_REQUESTS_IN_WINDOW {
            return None;
        }
        let ratio = ok as f64 / total as f64;
        (ratio < self.min_ratio).then(|| {
            format!(
                "stop condition abort.min_success_ratio: {:.1}% of the {total} requests of the last {} s succeeded, below {:.1}%",
                ratio * 100.0,
                self.seconds.len(),
                self.min_ratio * 100.0
            )
        })
    }
}

/// The regions a drill's faults may take down: the ones they name, or
/// every region when one names none in particular (`leader`, or a fault of
/// the whole deployment such as `db-crash`).
pub fn touched_regions(drill: &Drill) -> BTreeSet<String> {
    let everything = || drill.topology.regions.iter().cloned().collect();
    let mut touched = BTreeSet::new();
    for fault in &drill.method {
        match fault.fault {
            FaultKind::DbCrash => return everything(),
            // Kills a controller replica, not a region's instances.
            FaultKind::LeaderKill | FaultKind::Route53Throttle => {}
            _ if fault.target == "leader" || fault.target.is_empty() => return everything(),
            _ => {
                touched.insert(fault.target.clone());
            }
        }
    }
    touched
}

/// Seconds each watched region has had no healthy instance.
#[derive(Debug)]
pub struct OtherRegions {
    failing_for: BTreeMap<String, u32>,
    limit_s: u32,
}

impl OtherRegions {
    pub fn new(watched: impl IntoIterator<Item = String>, limit_s: u32) -> Self {
        Self {
            failing_for: watched.into_iter().map(|r| (r, 0)).collect(),
            limit_s,
        }
    }

    pub fn watched(&self) -> impl Iterator<Item = &String> {
        self.failing_for.keys()
    }

    /// One second's health per watched region; the reason when one has
    /// failed for the limit.
    pub fn observe(&mut self, healthy: &BTreeMap<String, bool>) -> Option<String> {
        for (region, seconds) in &mut self.failing_for {
            if healthy.get(region).copied().unwrap_or(true) {
                *seconds = 0;
            } else {
                *seconds += 1;
                if *seconds >= self.limit_s {
                    return Some(format!(
                        "stop condition abort.other_region_failing_s: {region}, which no fault of the drill touches, has had no healthy instance for {seconds} s"
                    ));
                }
            }
        }
        None
    }
}

/// Whether any of `instances` answers 200 on `/healthz/instance`.
async fn region_healthy(https: &InstanceHttps, instances: &[SocketAddr]) -> bool {
    for address in instances {
        let answer = https.get(*address, "/healthz/instance").send().await;
        if matches!(answer, Ok(r) if r.status().is_success()) {
            return true;
        }
    }
    false
}

/// Asks Prometheus; `Some` with the series when the query returned any.
pub async fn prometheus_fires(
    client: &reqwest::Client,
    condition: &PrometheusCondition,
) -> Result<Option<String>, String> {
    let url = format!("{}/api/v1/query", condition.url.trim_end_matches('/'));
    let response = client
        .get(&url)
        .query(&[("query", condition.query.as_str())])
        .send()
        .await
        .map_err(|error| format!("{url}: {error}"))?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|error| format!("{url}: {status}, not JSON: {error}"))?;
    if body["status"] != "success" {
        return Err(format!(
            "{url}: {status}: {}",
            body["error"].as_str().unwrap_or("no error message")
        ));
    }
    let series = body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(series
        .first()
        .map(|first| format!("{} series, the first {}", series.len(), first["metric"])))
}

/// Everything the watcher needs.
pub struct Watch<'a> {
    pub conditions: &'a AbortConditions,
    pub touched: BTreeSet<String>,
    pub instances: &'a BTreeMap<String, Vec<SocketAddr>>,
    /// The host name of each instance reached by name.
    pub instance_names: &'a BTreeMap<SocketAddr, String>,
    pub ca_pem: &'a str,
    pub t0: Instant,
    pub until: Duration,
    pub abort: &'a AtomicBool,
    pub abort_reason: &'a Mutex<Option<String>>,
}

/// Checks the region and Prometheus conditions every second until the end
/// of the load or an abort; trips the first that fails.
pub async fn watch(watch: Watch<'_>) {
    let conditions = watch.conditions;
    if conditions.other_region_failing_s.is_none() && conditions.prometheus.is_none() {
        return;
    }
    let https = InstanceHttps::new(watch.instance_names, || {
        crate::deployment::tls::client_builder(watch.ca_pem).timeout(Duration::from_secs(1))
    });
    let (https, client) = match https.and_then(|https| {
        crate::deployment::tls::client_builder(watch.ca_pem)
            .timeout(Duration::from_secs(1))
            .build()
            .map(|client| (https, client))
    }) {
        Ok(clients) => clients,
        Err(error) => {
            trip(
                &watch,
                format!("stop conditions cannot be checked: {error}"),
            );
            return;
        }
    };
    let mut regions = conditions.other_region_failing_s.map(|limit| {
        OtherRegions::new(
            watch
                .instances
                .keys()
                .filter(|r| !watch.touched.contains(*r))
                .cloned(),
            limit,
        )
    });
    let mut prometheus_failures = 0;
    tokio::time::sleep_until(watch.t0.into()).await;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    while watch.t0.elapsed() < watch.until && !watch.abort.load(Ordering::Relaxed) {
        ticker.tick().await;
        if let Some(regions) = &mut regions {
            let mut healthy = BTreeMap::new();
            for region in regions.watched() {
                let instances = watch
                    .instances
                    .get(region)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                healthy.insert(region.clone(), region_healthy(&https, instances).await);
            }
            if let Some(reason) = regions.observe(&healthy) {
                trip(&watch, reason);
                return;
            }
        }
        if let Some(condition) = &conditions.prometheus {
            match prometheus_fires(&client, condition).await {
                Ok(None) => prometheus_failures = 0,
                Ok(Some(series)) => {
                    trip(
                        &watch,
                        format!(
                            "stop condition abort.prometheus: {} returned {series}",
                            condition.query
                        ),
                    );
                    return;
                }
                Err(error) => {
                    prometheus_failures += 1;
                    if prometheus_failures >= PROMETHEUS_FAILURES_TO_STOP {
                        trip(
                            &watch,
                            format!(
                                "stop condition abort.prometheus cannot be checked ({prometheus_failures} failures in a row): {error}"
                            ),
                        );
                        return;
                    }
                }
            }
        }
    }
}

fn trip(watch: &Watch<'_>, reason: String) {
    let mut slot = watch.abort_reason.lock().expect("abort lock");
    if slot.is_none() {
        let reason = format!("{reason} (at t={:.1} s)", watch.t0.elapsed().as_secs_f64());
        eprintln!("chaos: ABORT: {reason}");
        *slot = Some(reason);
    }
    watch.abort.store(true, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conditions(min: Option<f64>, window: u32) -> AbortConditions {
        AbortConditions {
            min_success_ratio: min,
            success_window_s: window,
            ..AbortConditions::default()
        }
    }

    #[test]
    fn the_success_window_trips_below_its_ratio_and_forgets_old_seconds() {
        assert!(SuccessWindow::new(&conditions(None, 10)).is_none());
        let mut window = SuccessWindow::new(&conditions(Some(0.9), 1)).unwrap();
        // Too few requests to say anything.
        assert_eq!(window.observe(0, 19), None);
        // The failing second left the one-second window.
        assert_eq!(window.observe(100, 0), None);
        let reason = window.observe(10, 10).unwrap();
        assert!(reason.contains("abort.min_success_ratio"), "{reason}");
        assert!(
            reason.contains("50.0% of the 20 requests of the last 1 s"),
            "{reason}"
        );
        let mut window = SuccessWindow::new(&conditions(Some(0.9), 3)).unwrap();
        for _ in 0..3 {
            assert_eq!(window.observe(30, 0), None);
        }
        let reason = window.observe(0, 14).unwrap();
        assert!(
            reason.contains("81.1% of the 74 requests of the last 3 s"),
            "{reason}"
        );
    }

    #[test]
    fn a_region_trips_after_its_limit_of_failing_seconds_and_a_healthy_second_resets_it() {
        let mut regions = OtherRegions::new(["us-east-1".to_owned()], 2);
        let down = BTreeMap::from([("us-east-1".to_owned(), false)]);
        let up = BTreeMap::from([("us-east-1".to_owned(), true)]);
        assert_eq!(regions.observe(&down), None);
        assert_eq!(regions.observe(&up), None);
        assert_eq!(regions.observe(&down), None);
        let reason = regions.observe(&down).unwrap();
        assert!(
            reason.contains("us-east-1, which no fault of the drill touches"),
            "{reason}"
        );
    }

    #[test]
    fn touched_regions_are_the_named_ones_or_all() {
        let drill = |method: &str| {
            Drill::parse(&format!(
                "title: t\ntopology: {{ regions: [us-east-1, eu-west-1, ap-southeast-1] }}\nload: {{ rate_per_client_region: 1, write_ratio: 0.5, duration_s: 10 }}\nhypothesis: {{ min_success_ratio: 0.9, max_p99_ms: 1000 }}\nmethod:\n{method}"
            ))
            .unwrap()
        };
        let named = drill("  - { fault: region-kill, target: eu-west-1, start_s: 1 }\n  - { fault: leader-kill, start_s: 2 }\n");
        assert_eq!(
            touched_regions(&named),
            BTreeSet::from(["eu-west-1".to_owned()])
        );
        let leader = drill("  - { fault: region-kill, target: leader, start_s: 1 }\n");
        assert_eq!(touched_regions(&leader).len(), 3);
        let crash = drill("  - { fault: db-crash, start_s: 1 }\n");
        assert_eq!(touched_regions(&crash).len(), 3);
    }
}
