//! The drills that travel a whole outage (fault, failover, repair,
//! failback) beyond a region's loss: the database crashed and restarted,
//! commits whose answer is lost, a controller replica cut off from the
//! database, the Route53 API throttling while a region dies.
//!
//! Layout: `spec` the drill file's settings and rules for them; `route53`
//! the loopback Route53 API (moto behind a throttling proxy); `watch` what
//! the drill watches while the load runs (the DNS answers and readiness of
//! cut-off replicas, the Route53 records); `checks` the hypothesis checks
//! that judge it; this module what is counted after the load (the unknown
//! commits the services resolved, the throttled Route53 calls). The faults
//! themselves are `Deployment`'s (`deployment/outage.rs`).

pub mod checks;
pub mod route53;
pub mod spec;
pub mod watch;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::deployment::{DeploymentInfo, OutageOptions};
use crate::spec::{Drill, Topology};

/// What the service logs when a commit's answer was lost and it resolves
/// the outcome through the idempotency key (service/src/db/ledger.rs).
const UNKNOWN_COMMIT_LOG: &str = "commit outcome unknown";

/// Counts taken from the deployment after the load.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counted {
    /// Commits of unknown outcome the service instances resolved during
    /// the drill.
    pub commits_unknown: u64,
    /// Route53 calls the controllers saw throttled (their metrics).
    pub route53_calls_throttled: u64,
}

/// What the deployment of `drill` needs.
pub fn deployment_options(drill: &Drill) -> OutageOptions {
    OutageOptions {
        own_database: drill.crashes_database(),
        route53: drill.topology.route53,
        overrides: drill.topology.overrides.clone(),
    }
}

/// What an attached `chaos up` cannot give the drill.
pub fn attach_differences(wanted: &Topology, info: &DeploymentInfo) -> Vec<String> {
    let mut differences = Vec::new();
    if wanted.route53 != info.route53.is_some() {
        differences.push(format!(
            "route53: the drill wants {}, the deployment has {}",
            wanted.route53,
            info.route53.is_some()
        ));
    }
    if wanted.overrides != Default::default() {
        differences.push("overrides: the drill sets them, `chaos up` cannot".to_owned());
    }
    differences
}

/// Unknown commits the service instances logged so far (their logs are
/// appended to across runs: the drill takes the difference).
pub fn unknown_commits_logged(info: &DeploymentInfo) -> u64 {
    let logs = info.run_dir.join("logs");
    info.regions
        .iter()
        .flat_map(|region| {
            (1..=info.instances_per_region).map(move |i| format!("{}-{i}.log", region.name))
        })
        .map(|file| count_lines(&logs.join(file), UNKNOWN_COMMIT_LOG))
        .sum()
}

fn count_lines(path: &Path, needle: &str) -> u64 {
    std::fs::read_to_string(path)
        .map(|text| text.lines().filter(|l| l.contains(needle)).count() as u64)
        .unwrap_or(0)
}

/// Route53 calls answered Throttling, summed over the replicas' metrics
/// (`failover_route53_calls_total{outcome="throttled"}`).
pub async fn route53_calls_throttled(info: &DeploymentInfo) -> u64 {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("a plain HTTP client builds");
    let mut total = 0.0;
    for region in &info.regions {
        let url = format!("http://{}/metrics", region.controller_http);
        let Ok(response) = http.get(url).send().await else {
            continue;
        };
        let text = response.text().await.unwrap_or_default();
        total += text
            .lines()
            .filter(|l| {
                l.starts_with("failover_route53_calls_total") && l.contains("outcome=\"throttled\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    total as u64
}
