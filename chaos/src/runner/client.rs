//! The coordinator's side: the runners of a target's vantage points, their
//! clocks, and the load split between them and this machine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Clock, LoadRequest, RunnerEvent};
use crate::analysis::DnsObservation;
use crate::load::{self, LiveCounters, Operation, Plan, Target};

/// Clock samples taken before a drill; the one with the shortest round
/// trip is kept.
const CLOCK_SAMPLES: usize = 5;

/// How long a load's stream may stay silent before the runner counts as
/// lost (it sends counts every [`super::server::WINDOW`]).
pub const SILENCE: Duration = Duration::from_secs(10);

/// A runner of the target, reachable, its clock measured.
#[derive(Clone)]
pub struct RemoteRunner {
    pub region: String,
    pub url: String,
    token: String,
    http: reqwest::Client,
    pub clock: ClockSample,
    /// The vantage point names no resolver: the runner asks its machine's.
    system_resolver: bool,
}

/// The runner's clock against this machine's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClockSample {
    /// Runner's clock minus this machine's, known within half `rtt_ms`.
    pub offset_ms: f64,
    /// The shortest round trip of the samples.
    pub rtt_ms: f64,
}

/// What the report says of each runner (`configuration.runners`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerSummary {
    pub region: String,
    pub url: String,
    pub clock: ClockSample,
    /// How late the load request reached it (0 when in time).
    pub late_ms: f64,
    pub operations: usize,
    /// Answers its DNS watch got (ten a second while the load ran).
    #[serde(default)]
    pub dns_answers: usize,
    /// Why the runner failed, when it did (the drill is aborted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RemoteRunner {
    /// The runners of `target`'s vantage points among `client_regions`,
    /// each reached and its clock measured; an error names the vantage
    /// point and the URL.
    pub async fn connect_all(
        target: &crate::target::Target,
        client_regions: &[String],
    ) -> anyhow::Result<Vec<Self>> {
        let mut runners = Vec::new();
        for (i, vantage) in target.vantage_points.iter().enumerate() {
            if vantage.runner.is_none() || !client_regions.contains(&vantage.region) {
                continue;
            }
            runners.push(Self::connect(target, i).await?);
        }
        Ok(runners)
    }

    /// The runner of `target.vantage_points[index]`, reached and its clock
    /// measured; an error names the field (`vantage_points[i].runner`) and
    /// the runner's URL.
    pub async fn connect(target: &crate::target::Target, index: usize) -> anyhow::Result<Self> {
        let field = format!("vantage_points[{index}].runner");
        let vantage = &target.vantage_points[index];
        let runner = vantage
            .runner
            .as_ref()
            .with_context(|| format!("field `{field}` is not set"))?;
        Self::reach(target, vantage, runner, &field)
            .await
            .with_context(|| format!("{field} ({})", runner.url))
    }

    async fn reach(
        target: &crate::target::Target,
        vantage: &crate::target::VantagePoint,
        runner: &crate::target::RunnerTarget,
        field: &str,
    ) -> anyhow::Result<Self> {
        let token = runner
            .token
            .resolve(&format!("{field}.token"), &target.base_dir)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let ca_pem = match &runner.ca_file {
            Some(file) => {
                let path = target.path(file);
                std::fs::read_to_string(&path).with_context(|| {
                    format!("field `{field}.ca_file`: cannot read {}", path.display())
                })?
            }
            None => String::new(),
        };
        let http = crate::deployment::tls::client_builder(&ca_pem)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .context("HTTPS client for the runner")?;
        let mut runner = Self {
            region: vantage.region.clone(),
            url: runner.url.trim_end_matches('/').to_owned(),
            token: token.expose().to_owned(),
            http,
            clock: ClockSample {
                offset_ms: 0.0,
                rtt_ms: 0.0,
            },
            system_resolver: vantage.resolver.is_none(),
        };
        runner.clock = runner.measure_clock().await?;
        Ok(runner)
    }

    /// NTP's estimate from the sample with the shortest round trip.
    pub async fn measure_clock(&self) -> anyhow::Result<ClockSample> {
        let mut best: Option<ClockSample> = None;
        for _ in 0..CLOCK_SAMPLES {
            let sent = Utc::now();
            let started = Instant::now();
            let response = self
                .http
                .get(format!("{}/v1/clock", self.url))
                .bearer_auth(&self.token)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("unreachable: {}", e.without_url()))?;
            if response.status() == reqwest::StatusCode::UNAUTHORIZED {
                bail!("the runner refuses the token (401)");
            }
            let clock: Clock = response
                .error_for_status()
                .map_err(|e| anyhow::anyhow!("{}", e.without_url()))?
                .json()
                .await
                .map_err(|e| anyhow::anyhow!("not a runner's clock: {}", e.without_url()))?;
            let rtt = started.elapsed();
            let midpoint = sent + chrono::Duration::from_std(rtt / 2).unwrap_or_default();
            let sample = ClockSample {
                offset_ms: (clock.now - midpoint).num_microseconds().unwrap_or(0) as f64 / 1000.0,
                rtt_ms: rtt.as_secs_f64() * 1000.0,
            };
            if best.is_none_or(|b| sample.rtt_ms < b.rtt_ms) {
                best = Some(sample);
            }
        }
        Ok(best.expect("at least one sample"))
    }

    /// Runs `plan` (one client region) on the runner from `t0_wall` (this
    /// machine's clock), adding its windows to `live`, until it ends;
    /// `abort` is passed on. Returns what was received, and the error that
    /// cut the stream short if one did.
    async fn run(
        &self,
        plan: Plan,
        target: Target,
        t0_wall: DateTime<Utc>,
        live: &LiveCounters,
        abort: &AtomicBool,
    ) -> RunnerRun {
        let id = Uuid::new_v4();
        let start_at =
            t0_wall + chrono::Duration::microseconds((self.clock.offset_ms * 1000.0) as i64);
        let request = LoadRequest {
            id,
            plan,
            target,
            start_at,
        };
        let mut run = RunnerRun::default();
        let mut response = match self
            .http
            .post(format!("{}/v1/load", self.url))
            .bearer_auth(&self.token)
            .json(&request)
            .send()
            .await
        {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                return run.failed(format!("refused the load: {status} {}", body.trim()));
            }
            Err(error) => return run.failed(format!("unreachable: {}", error.without_url())),
        };
        let mut pending: Vec<u8> = Vec::new();
        let mut aborted = false;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut heard = Instant::now();
        loop {
            let chunk = tokio::select! {
                chunk = response.chunk() => chunk,
                _ = tick.tick() => {
                    if !aborted && abort.load(Ordering::Relaxed) {
                        aborted = true;
                        self.abort(id).await;
                    }
                    // A runner sends counts every quarter second while
                    // it runs: silence means it, or the path to it, is
                    // gone without a word (no reset comes through a
                    // partition).
                    if heard.elapsed() > SILENCE {
                        // Best effort: should the path come back, the load
                        // stops rather than run on unheard.
                        let runner = self.clone();
                        tokio::spawn(async move { runner.abort(id).await });
                        return run.failed(format!(
                            "nothing heard from it for {} s",
                            SILENCE.as_secs()
                        ));
                    }
                    continue;
                }
            };
            heard = Instant::now();
            let chunk = match chunk {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return run.failed("the stream ended before its last line".into()),
                Err(error) => {
                    return run.failed(format!("the stream broke: {}", error.without_url()))
                }
            };
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                match serde_json::from_slice::<RunnerEvent>(&line) {
                    Ok(RunnerEvent::Started { late_ms }) => run.late_ms = late_ms,
                    Ok(RunnerEvent::Window { ok, failed }) => live.add(&self.region, ok, failed),
                    Ok(RunnerEvent::Operation(operation)) => run.operations.push(*operation),
                    Ok(RunnerEvent::Dns(observation)) => run.dns.push(observation),
                    Ok(RunnerEvent::Done {
                        stopped: Some(why), ..
                    }) => return run.failed(why),
                    Ok(RunnerEvent::Done {
                        operations: sent, ..
                    }) => {
                        let received = run.operations.len();
                        if sent != received {
                            return run
                                .failed(format!("sent {sent} operations, {received} arrived"));
                        }
                        return run;
                    }
                    Err(error) => return run.failed(format!("an unreadable line: {error}")),
                }
            }
        }
    }

    async fn abort(&self, id: Uuid) {
        let sent = self
            .http
            .post(format!("{}/v1/load/{id}/abort", self.url))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if let Err(error) = sent {
            // The stream still ends: the runner stops when it is gone.
            tracing::warn!(region = %self.region, error = %error.without_url(), "runner abort failed");
        }
    }
}

/// What one runner sent back.
#[derive(Debug, Default)]
struct RunnerRun {
    operations: Vec<Operation>,
    dns: Vec<DnsObservation>,
    late_ms: f64,
    error: Option<String>,
}

impl RunnerRun {
    fn failed(mut self, why: String) -> Self {
        self.error = Some(why);
        self
    }
}

/// What the load brought back: the history, the DNS watch of the
/// runners' regions (the others' is this machine's) and each runner's
/// summary.
#[derive(Debug, Default)]
pub struct Gathered {
    pub history: Vec<Operation>,
    pub runner_dns: Vec<DnsObservation>,
    pub runners: Vec<RunnerSummary>,
}

/// What the load needs beyond the plan: where it goes and how it stops.
pub struct Load {
    pub plan: Plan,
    pub target: Target,
    pub t0: Instant,
    pub t0_wall: DateTime<Utc>,
    pub live: Arc<LiveCounters>,
    pub abort: Arc<AtomicBool>,
    /// Set (when empty) to why a runner failed; the drill then aborts.
    pub abort_reason: Arc<Mutex<Option<String>>>,
}

/// The load of every client region: on its runner when it has one, on this
/// machine otherwise. Returns the history, in intended order, the runners'
/// DNS watch and what each runner did.
pub async fn run_load(load: Load, runners: Vec<RemoteRunner>) -> Gathered {
    let Load {
        plan,
        target,
        t0,
        t0_wall,
        live,
        abort,
        abort_reason,
    } = load;
    let mut local_plan = plan.clone();
    local_plan
        .client_regions
        .retain(|region| !runners.iter().any(|r| &r.region == region));
    let mut remote = Vec::new();
    for runner in runners {
        let Some(offset) = plan.client_regions.iter().position(|r| *r == runner.region) else {
            continue;
        };
        let mut runner_plan = plan.clone();
        runner_plan.client_regions = vec![runner.region.clone()];
        runner_plan.seed_offset = plan.seed_offset + offset as u64;
        let mut target = target.clone();
        if runner.system_resolver {
            target.resolvers.remove(&runner.region);
            target.dns_servers.clear();
        }
        let (live, abort, abort_reason) = (live.clone(), abort.clone(), abort_reason.clone());
        remote.push(tokio::spawn(async move {
            let run = runner
                .run(runner_plan, target, t0_wall, &live, &abort)
                .await;
            if let Some(error) = &run.error {
                let reason = format!(
                    "the load runner of {} ({}) failed: {error}",
                    runner.region, runner.url
                );
                tracing::error!("{reason}");
                abort_reason
                    .lock()
                    .expect("abort lock")
                    .get_or_insert(reason);
                abort.store(true, Ordering::Relaxed);
            }
            let summary = RunnerSummary {
                region: runner.region.clone(),
                url: runner.url.clone(),
                clock: runner.clock,
                late_ms: run.late_ms,
                operations: run.operations.len(),
                dns_answers: run.dns.len(),
                error: run.error,
            };
            (run.operations, run.dns, summary)
        }));
    }
    let mut gathered = Gathered {
        history: if local_plan.client_regions.is_empty() {
            Vec::new()
        } else {
            load::run(local_plan, target, t0, live, abort).await
        },
        ..Gathered::default()
    };
    for task in remote {
        let (operations, dns, summary) = task.await.expect("runner task");
        gathered.history.extend(operations);
        gathered.runner_dns.extend(dns);
        gathered.runners.push(summary);
    }
    gathered
        .history
        .sort_by(|a, b| a.intended_s.total_cmp(&b.intended_s));
    gathered
}

/// How long before t = 0 the load must be planned: the local lead, or
/// enough for the slowest runner's request to arrive (a new connection
/// and the request: about three of its round trips).
pub fn lead(runners: &[RemoteRunner]) -> Duration {
    let slowest = runners
        .iter()
        .map(|r| r.clock.rtt_ms)
        .fold(0.0_f64, f64::max);
    Duration::from_millis(500).max(Duration::from_secs_f64(3.0 * slowest / 1000.0 + 0.2))
}
