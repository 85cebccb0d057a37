//! The drill file: a YAML document under `drills/`, validated before
//! anything starts. Every error names the field and says what is wrong.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::controller_settings::{ControllerOverrides, ControllerSettings};
pub use crate::outage::spec::Overrides;

/// A fault target meaning "the region whose controller holds the lease when
/// the fault starts": the worst case, where the failover leader dies with
/// the region it must drain.
pub const LEADER: &str = "leader";

/// A declarative drill.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drill {
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub topology: Topology,
    /// Controller settings that differ from production's (`k8s/`); absent,
    /// the drill runs with exactly what a deployment runs with.
    #[serde(default)]
    pub controller: ControllerOverrides,
    pub load: Load,
    pub hypothesis: Hypothesis,
    /// Recovery objectives (RTO, RPO) judged with the hypothesis; absent,
    /// the report gives the measured figures with "no objective".
    #[serde(default)]
    pub objectives: Option<crate::objectives::RecoveryObjectives>,
    /// Faults, each with its start offset and duration.
    pub method: Vec<Fault>,
    /// Actions that undo the method, registered before the first fault and
    /// run in reverse order at the end, on abort and on Ctrl-C.
    #[serde(default)]
    pub rollbacks: Vec<Rollback>,
    #[serde(default)]
    pub abort: AbortConditions,
    /// Seed of the load's random choices.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

/// The local deployment a drill runs on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topology {
    pub regions: Vec<String>,
    pub instances_per_region: u8,
    /// The wide-area network between the regions: by default the public
    /// inter-region round trips of [`Wan::default`]; `wan: null` puts every
    /// region on the loopback, 0.1 ms from every other (the report says so).
    pub wan: Option<Wan>,
    /// The controllers also keep one Route53 latency record per region, on
    /// a loopback Route53 API server (moto) that the deployment starts.
    pub route53: bool,
    /// Settings changed on purpose, so that a drill's fail-on-purpose
    /// version breaks what the drill guards (`crate::outage::spec`).
    pub overrides: Overrides,
}

/// Round trips between regions, applied by the proxies to every path
/// (clients and probers to the service instances, every region's
/// processes to the database), connection set-up included.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Wan {
    /// Round trip in milliseconds between two regions, keyed `a/b` (either
    /// order does). The defaults are public inter-region figures.
    pub rtt_ms: BTreeMap<String, f64>,
    /// Round trip inside a region (its clients to its instances).
    pub local_rtt_ms: f64,
    /// What a commit costs a region more than a local round trip: by
    /// default the round trip to its nearest other region, a write's
    /// consensus on a CockroachDB cluster that survives a region's loss
    /// (docs/drills.md, "The database's geography").
    pub database_rtt_ms: BTreeMap<String, f64>,
    /// How long, after a region dies (killed or blackholed), writes to the
    /// rows homed in it wait, from every region: the time CockroachDB takes
    /// to move the leases the dead region held (1 to 9 s; docs/drills.md,
    /// "The database's geography"). 0, the default for now, moves them at
    /// once; `kill-and-return` sets 5 s, the middle of CockroachDB's range.
    pub lease_transfer_s: f64,
    /// Each one-way delay varies by up to this much either way.
    pub jitter_ms: f64,
    /// Share of chunks that stand for a lost segment (a retransmission
    /// timeout more).
    pub loss: f64,
}

impl Default for Wan {
    fn default() -> Self {
        Self {
            rtt_ms: BTreeMap::from([
                ("us-east-1/eu-west-1".into(), 70.0),
                ("us-east-1/ap-southeast-1".into(), 220.0),
                ("eu-west-1/ap-southeast-1".into(), 165.0),
            ]),
            local_rtt_ms: 1.0,
            database_rtt_ms: BTreeMap::new(),
            lease_transfer_s: 0.0,
            jitter_ms: 2.0,
            loss: 0.001,
        }
    }
}

impl Wan {
    /// The round trip between two regions, `None` when the file has none.
    pub fn rtt(&self, a: &str, b: &str) -> Option<Duration> {
        if a == b {
            return Some(Duration::from_secs_f64(self.local_rtt_ms / 1000.0));
        }
        self.rtt_ms
            .get(&format!("{a}/{b}"))
            .or_else(|| self.rtt_ms.get(&format!("{b}/{a}")))
            .map(|ms| Duration::from_secs_f64(ms / 1000.0))
    }

    /// `region`'s round trip to the database among `regions`.
    pub fn database_rtt(&self, region: &str, regions: &[String]) -> Duration {
        if let Some(ms) = self.database_rtt_ms.get(region) {
            return Duration::from_secs_f64(ms / 1000.0);
        }
        regions
            .iter()
            .filter(|other| other.as_str() != region)
            .filter_map(|other| self.rtt(region, other))
            .min()
            .unwrap_or_else(|| Duration::from_secs_f64(self.local_rtt_ms / 1000.0))
    }

    fn validate(&self, regions: &[String]) -> Result<(), String> {
        for (i, a) in regions.iter().enumerate() {
            for b in &regions[i + 1..] {
                if self.rtt(a, b).is_none() {
                    return Err(format!(
                        "field `topology.wan.rtt_ms`: no round trip between {a} and {b} (add \"{a}/{b}\")"
                    ));
                }
            }
        }
        for (key, ms) in &self.rtt_ms {
            if !(*ms >= 0.0 && *ms <= 2000.0) {
                return Err(format!(
                    "field `topology.wan.rtt_ms.{key}`: must be 0 to 2000 ms"
                ));
            }
        }
        for (region, ms) in &self.database_rtt_ms {
            if !regions.contains(region) {
                return Err(format!(
                    "field `topology.wan.database_rtt_ms.{region}`: not a region of the topology"
                ));
            }
            if !(*ms >= 0.0 && *ms <= 2000.0) {
                return Err(format!(
                    "field `topology.wan.database_rtt_ms.{region}`: must be 0 to 2000 ms"
                ));
            }
        }
        if !(self.local_rtt_ms >= 0.0 && self.local_rtt_ms <= 100.0) {
            return Err("field `topology.wan.local_rtt_ms`: must be 0 to 100 ms".into());
        }
        if !(self.lease_transfer_s >= 0.0 && self.lease_transfer_s <= 30.0) {
            return Err("field `topology.wan.lease_transfer_s`: must be 0 to 30 s".into());
        }
        if !(self.jitter_ms >= 0.0 && self.jitter_ms <= 100.0) {
            return Err("field `topology.wan.jitter_ms`: must be 0 to 100 ms".into());
        }
        if !(self.loss >= 0.0 && self.loss <= 0.2) {
            return Err("field `topology.wan.loss`: must be 0 to 0.2".into());
        }
        Ok(())
    }
}

impl Default for Topology {
    fn default() -> Self {
        Self {
            regions: vec![
                "us-east-1".into(),
                "eu-west-1".into(),
                "ap-southeast-1".into(),
            ],
            instances_per_region: 2,
            wan: Some(Wan::default()),
            route53: false,
            overrides: Overrides::default(),
        }
    }
}

/// Open-loop load from every client region.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Requests per second sent by each client region.
    pub rate_per_client_region: f64,
    /// Share of writes (transfers); the rest are account reads.
    pub write_ratio: f64,
    pub duration_s: u32,
    /// Per-request timeout in milliseconds (one retry on the next region follows).
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Accounts created before the load starts.
    #[serde(default = "default_accounts")]
    pub accounts: u32,
    /// Client regions; all regions when empty.
    #[serde(default)]
    pub client_regions: Vec<String>,
}

/// The steady state that must hold, with tolerances.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hypothesis {
    /// Overall success ratio after the retry, per client region.
    pub min_success_ratio: f64,
    /// p99 latency over the whole drill, per client region.
    pub max_p99_ms: f64,
    #[serde(default)]
    pub max_lost_writes: u64,
    /// A second counts as bad when its success ratio is below this...
    #[serde(default = "default_bad_second_ratio")]
    pub bad_second_below: f64,
    /// ...and no client region may have more bad seconds than this.
    #[serde(default = "default_max_bad_seconds")]
    pub max_bad_seconds: u32,
    /// Availability after the retries over every client, judged by its
    /// 95% lower confidence bound: a drill too short to vouch for it fails.
    #[serde(default)]
    pub min_availability: Option<f64>,
    /// A minute counts as bad when its success ratio (every client) is
    /// below this...
    #[serde(default = "default_bad_minute_ratio")]
    pub bad_minute_below: f64,
    /// ...and the drill may have at most this many (unchecked when absent).
    #[serde(default)]
    pub max_bad_minutes: Option<u32>,
    /// Regions that must never be drained (e.g. a prober partition).
    #[serde(default)]
    pub never_drained: Vec<String>,
    /// Regions that must have been drained by the end.
    #[serde(default)]
    pub must_drain: Vec<String>,
    /// Regions that must be back in DNS after their last fault ended (the
    /// way back is half of every failover).
    #[serde(default)]
    pub must_return: Vec<String>,
    /// ...within this many seconds of that fault's end.
    #[serde(default)]
    pub max_failback_s: Option<f64>,
    /// Every client region back above `bad_second_below` within this many
    /// seconds of the last fault's end, and from then on.
    #[serde(default)]
    pub max_recovery_s: Option<f64>,
    /// At least this many commits cut by `commit-reset` reached the service
    /// as an unknown outcome (the fault really happened).
    #[serde(default)]
    pub min_commit_resets: Option<u64>,
    /// A controller cut off from the database answers DNS authoritatively
    /// no later than this many seconds after its cut began, and again
    /// after the cut ends.
    #[serde(default)]
    pub max_stale_answer_s: Option<f64>,
    /// The Route53 records converge: each killed region's record removed
    /// during its outage and restored after it, every record there at the
    /// end (needs `topology.route53`).
    #[serde(default)]
    pub route53_converged: bool,
}

/// One fault of the method.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub fault: FaultKind,
    /// Region, or `leader` for the region of the current lease holder
    /// (ignored by leader-kill, which always hits the lease holder).
    #[serde(default)]
    pub target: String,
    /// Seconds after the load starts.
    pub start_s: f64,
    /// Seconds the fault lasts; absent means until the end of the drill.
    #[serde(default)]
    pub duration_s: Option<f64>,
    /// Added delay for `latency`, milliseconds.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Share of commits cut for `commit-reset` (0 to 1).
    #[serde(default)]
    pub share: Option<f64>,
    /// What starts a `command` fault (an argv list, run without a shell:
    /// write `[sh, -c, "..."]` for one) or an `http` fault (a call).
    #[serde(default, skip_serializing_if = "crate::actuators::Hook::is_empty")]
    pub start: crate::actuators::Hook,
    /// The command that stops it: at its end, and in every rollback.
    #[serde(default, skip_serializing_if = "crate::actuators::Hook::is_empty")]
    pub stop: crate::actuators::Hook,
    /// Each hook's timeout, seconds (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    RegionKill,
    RegionBlackhole,
    LeaderKill,
    ProberPartition,
    Latency,
    DbStall,
    /// SIGKILL the PostgreSQL server, restarted on the same data directory
    /// when the fault ends (deployment-wide: no target).
    DbCrash,
    /// A share of the region's commits reach the server and lose their
    /// answer: the connection is cut before it reaches the service.
    CommitReset,
    /// The region's controller replica is cut off from the database; its
    /// service instances keep theirs.
    ControllerDbCut,
    /// The Route53 API answers Throttling to every call (deployment-wide).
    Route53Throttle,
    /// The region drained through the controllers' admin API (an
    /// actuator: works on any target, needs `--target`).
    Evacuate,
    /// Started and stopped by commands the drill runs (an actuator).
    Command,
    /// Started and stopped by HTTP calls the drill makes (an actuator).
    Http,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::RegionKill => "region-kill",
            FaultKind::RegionBlackhole => "region-blackhole",
            FaultKind::LeaderKill => "leader-kill",
            FaultKind::ProberPartition => "prober-partition",
            FaultKind::Latency => "latency",
            FaultKind::DbStall => "db-stall",
            FaultKind::DbCrash => "db-crash",
            FaultKind::CommitReset => "commit-reset",
            FaultKind::ControllerDbCut => "controller-db-cut",
            FaultKind::Route53Throttle => "route53-throttle",
            FaultKind::Evacuate => "evacuate",
            FaultKind::Command => "command",
            FaultKind::Http => "http",
        }
    }

    /// A fault the drill makes happen by asking the deployment's own
    /// machinery (`crate::actuators`), rather than a local fault that only
    /// a `chaos up` deployment can apply.
    pub fn actuator(self) -> bool {
        matches!(
            self,
            FaultKind::Evacuate | FaultKind::Command | FaultKind::Http
        )
    }

    /// A fault of the whole deployment, which names no region.
    pub fn deployment_wide(self) -> bool {
        matches!(self, FaultKind::DbCrash | FaultKind::Route53Throttle)
    }
}

/// An undo action.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, tag = "action", rename_all = "kebab-case")]
pub enum Rollback {
    /// Heal every network fault (proxies back to pass-through).
    HealNetwork,
    /// Restart every stopped or killed process.
    RestoreProcesses,
    /// Clear every drain flag.
    ClearDrainFlags,
}

/// When to stop early and roll back (the stop conditions, checked every
/// second by [`crate::drill::conditions`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AbortConditions {
    /// Abort when the drill has burned more than this share of the 30-day
    /// 99.99% error budget (at its own request rate).
    pub max_error_budget_share: f64,
    /// Abort when the requests of the last `success_window_s` seconds (every
    /// client region together) succeed less often than this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_success_ratio: Option<f64>,
    pub success_window_s: u32,
    /// Abort when a region that no fault of the drill names has had none of
    /// its instances healthy (`/healthz/instance`) for this many seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_region_failing_s: Option<u32>,
    /// Abort when this Prometheus query returns any series, for example
    /// `ALERTS{alertstate="firing",severity="page"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusCondition>,
}

impl Default for AbortConditions {
    fn default() -> Self {
        Self {
            max_error_budget_share: 1.0,
            min_success_ratio: None,
            success_window_s: 10,
            other_region_failing_s: None,
            prometheus: None,
        }
    }
}

/// A Prometheus query that stops the drill when it returns anything.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrometheusCondition {
    /// Base URL of the Prometheus HTTP API, e.g. `http://prometheus:9090`.
    pub url: String,
    pub query: String,
}

fn default_seed() -> u64 {
    42
}
fn default_request_timeout_ms() -> u64 {
    1000
}
fn default_accounts() -> u32 {
    20
}
fn default_bad_second_ratio() -> f64 {
    0.99
}
fn default_bad_minute_ratio() -> f64 {
    0.999
}
fn default_max_bad_seconds() -> u32 {
    3
}

/// A drill file problem.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read drill file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Drill {
    /// Finds `drills/<name>.yaml` for a short name, else takes a path.
    pub fn resolve(name_or_path: &str) -> PathBuf {
        let path = PathBuf::from(name_or_path);
        if path.exists() || name_or_path.contains('/') || name_or_path.ends_with(".yaml") {
            return path;
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../drills");
        for dir in [PathBuf::from("drills"), root] {
            let candidate = dir.join(format!("{name_or_path}.yaml"));
            if candidate.exists() {
                return candidate;
            }
        }
        path
    }

    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| SpecError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses and validates; the error names the field and, for what the
    /// YAML parser finds, the line and column.
    pub fn parse(text: &str) -> Result<Self, String> {
        let drill: Drill = parse_yaml(text)?;
        drill.validate()?;
        Ok(drill)
    }

    fn validate(&self) -> Result<(), String> {
        let bad = |field: &str, problem: String| Err(format!("field `{field}`: {problem}"));
        if self.title.trim().is_empty() {
            return bad("title", "must not be empty".into());
        }
        let topology = &self.topology;
        if topology.regions.len() < 2 || topology.regions.len() > 9 {
            return bad(
                "topology.regions",
                format!("needs 2 to 9 regions, got {}", topology.regions.len()),
            );
        }
        if let Some(region) = topology.regions.iter().find(|r| !valid_name(r)) {
            return bad(
                "topology.regions",
                format!("{region:?} is not a region name (lower-case letters, digits, dashes)"),
            );
        }
        if !(1..=8).contains(&topology.instances_per_region) {
            return bad("topology.instances_per_region", "must be 1 to 8".into());
        }
        ControllerSettings::new(&self.controller)?;
        if let Some(wan) = &topology.wan {
            wan.validate(&topology.regions)?;
        }
        let load = &self.load;
        if !(load.rate_per_client_region > 0.0 && load.rate_per_client_region <= 2000.0) {
            return bad(
                "load.rate_per_client_region",
                format!("must be in (0, 2000], got {}", load.rate_per_client_region),
            );
        }
        if !(0.0..=1.0).contains(&load.write_ratio) {
            return bad(
                "load.write_ratio",
                format!("must be between 0 and 1, got {}", load.write_ratio),
            );
        }
        if load.duration_s == 0 || load.duration_s > 3600 {
            return bad("load.duration_s", "must be 1 to 3600".into());
        }
        if load.request_timeout_ms < 10 {
            return bad("load.request_timeout_ms", "must be at least 10".into());
        }
        if load.accounts < 2 {
            return bad(
                "load.accounts",
                "must be at least 2 (transfers need two accounts)".into(),
            );
        }
        for (field, regions) in [
            ("load.client_regions", &load.client_regions),
            ("hypothesis.never_drained", &self.hypothesis.never_drained),
            ("hypothesis.must_drain", &self.hypothesis.must_drain),
            ("hypothesis.must_return", &self.hypothesis.must_return),
        ] {
            // `leader`: the region a fault on the leader hit.
            let leader_ok = |r: &String| field == "hypothesis.must_return" && r == LEADER;
            if let Some(unknown) = regions
                .iter()
                .find(|r| !topology.regions.contains(r) && !leader_ok(r))
            {
                return bad(
                    field,
                    format!(
                        "{unknown:?} is not one of topology.regions {:?}",
                        topology.regions
                    ),
                );
            }
        }
        let h = &self.hypothesis;
        if !(0.0..=1.0).contains(&h.min_success_ratio) {
            return bad(
                "hypothesis.min_success_ratio",
                "must be between 0 and 1".into(),
            );
        }
        if h.min_availability.is_some_and(|a| !(0.0..1.0).contains(&a)) {
            return bad(
                "hypothesis.min_availability",
                "must be at least 0 and below 1 (no number of requests vouches for 100%)".into(),
            );
        }
        if !(0.0..=1.0).contains(&h.bad_minute_below) {
            return bad(
                "hypothesis.bad_minute_below",
                "must be between 0 and 1".into(),
            );
        }
        if !(0.0..=1.0).contains(&h.bad_second_below) {
            return bad(
                "hypothesis.bad_second_below",
                "must be between 0 and 1".into(),
            );
        }
        if h.max_p99_ms <= 0.0 {
            return bad("hypothesis.max_p99_ms", "must be positive".into());
        }
        if h.max_failback_s.is_some_and(|s| s.is_nan() || s <= 0.0) {
            return bad("hypothesis.max_failback_s", "must be positive".into());
        }
        if h.max_failback_s.is_some() && h.must_return.is_empty() {
            return bad(
                "hypothesis.max_failback_s",
                "applies to the regions of hypothesis.must_return, which is empty".into(),
            );
        }
        // A region can only come back from a fault that ends.
        for region in &h.must_return {
            let ends = self
                .method
                .iter()
                .filter(|f| &f.target == region)
                .all(|f| f.duration_s.is_some());
            let faulted = self.method.iter().any(|f| &f.target == region);
            if !faulted || !ends {
                return bad(
                    "hypothesis.must_return",
                    format!(
                        "{region:?} must be the target of faults that all end (give each a duration_s)"
                    ),
                );
            }
        }
        for (index, fault) in self.method.iter().enumerate() {
            let field = |name: &str| format!("method[{index}].{name}");
            // A command's target only labels it (and names the region
            // whose DNS the report follows); it may be left out.
            let unlabelled_command = matches!(fault.fault, FaultKind::Command | FaultKind::Http)
                && fault.target.is_empty();
            if fault.fault != FaultKind::LeaderKill
                && !fault.fault.deployment_wide()
                && !unlabelled_command
                && fault.target != LEADER
                && !topology.regions.contains(&fault.target)
            {
                return bad(
                    &field("target"),
                    format!(
                        "{:?} is not one of topology.regions {:?}",
                        fault.target, topology.regions
                    ),
                );
            }
            if !(fault.start_s >= 0.0 && fault.start_s < f64::from(load.duration_s)) {
                return bad(
                    &field("start_s"),
                    format!(
                        "must be within the load duration (0 to {} s)",
                        load.duration_s
                    ),
                );
            }
            if let Some(duration) = fault.duration_s {
                if duration <= 0.0 {
                    return bad(&field("duration_s"), "must be positive".into());
                }
            }
            crate::actuators::validate_fault(fault, &field)?;
            match (fault.fault, fault.delay_ms) {
                (FaultKind::Latency, None) => {
                    return bad(&field("delay_ms"), "is required for a latency fault".into())
                }
                (FaultKind::Latency, Some(_)) | (_, None) => {}
                (_, Some(_)) => {
                    return bad(&field("delay_ms"), "applies only to latency faults".into())
                }
            }
        }
        crate::outage::spec::validate(self)?;
        crate::objectives::validate(self)?;
        // Written to reject NaN too.
        if self.abort.max_error_budget_share.is_nan() || self.abort.max_error_budget_share <= 0.0 {
            return bad("abort.max_error_budget_share", "must be positive".into());
        }
        if let Some(ratio) = self.abort.min_success_ratio {
            if !(0.0..=1.0).contains(&ratio) {
                return bad(
                    "abort.min_success_ratio",
                    format!("{ratio} is not a ratio between 0 and 1"),
                );
            }
        }
        if self.abort.success_window_s == 0 {
            return bad("abort.success_window_s", "must be at least 1".into());
        }
        if self.abort.other_region_failing_s == Some(0) {
            return bad("abort.other_region_failing_s", "must be at least 1".into());
        }
        if let Some(prometheus) = &self.abort.prometheus {
            if !(prometheus.url.starts_with("http://") || prometheus.url.starts_with("https://")) {
                return bad(
                    "abort.prometheus.url",
                    format!("{:?} is not an http:// or https:// URL", prometheus.url),
                );
            }
            if prometheus.query.trim().is_empty() {
                return bad("abort.prometheus.query", "must not be empty".into());
            }
        }
        Ok(())
    }

    /// Client regions (all regions when the file lists none).
    pub fn client_regions(&self) -> Vec<String> {
        if self.load.client_regions.is_empty() {
            self.topology.regions.clone()
        } else {
            self.load.client_regions.clone()
        }
    }
}

/// One line: the field (as far as the parser got), where in the file and
/// what is wrong, e.g. "field `method[0].fault`: line 31 column 12:
/// unknown variant `region-melt`, expected one of ...".
/// Deserializes a YAML document; the error names the field's path and,
/// for what the parser finds, the line and column.
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    let mut path = None;
    let parsed = serde_saphyr::with_deserializer_from_str(text, |deserializer| {
        serde_path_to_error::deserialize(deserializer).map_err(|error| {
            path = Some(error.path().to_string());
            error.into_inner()
        })
    });
    parsed.map_err(|error| yaml_error(path.as_deref(), &error))
}

fn yaml_error(path: Option<&str>, error: &serde_saphyr::Error) -> String {
    let rendered = error.to_string();
    let first_line = rendered.lines().next().unwrap_or_default();
    let mut message = first_line.strip_prefix("error: ").unwrap_or(first_line);
    // A hint meant for the program's author, not for the drill's.
    if let Some((before, _)) = message.split_once(", set DuplicateKeyPolicy") {
        message = before;
    }
    let mut message = message.to_owned();
    if !message.contains("line ") {
        if let Some(location) = error.location() {
            message = format!(
                "line {} column {}: {message}",
                location.line(),
                location.column()
            );
        }
    }
    // A syntax error leaves the path at an entry it had not read yet ("?").
    let path = path.map(|path| path.trim_end_matches(['?', '.']));
    match path {
        Some(path) if !path.is_empty() && path != "." => format!("field `{path}`: {message}"),
        _ => message,
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
title: Kill a region
load: { rate_per_client_region: 10, write_ratio: 0.5, duration_s: 30 }
hypothesis: { min_success_ratio: 0.999, max_p99_ms: 2000 }
method:
  - { fault: region-kill, target: us-east-1, start_s: 10 }
rollbacks:
  - action: restore-processes
"#;

    #[test]
    fn a_valid_drill_parses_with_defaults() {
        let drill = Drill::parse(VALID).unwrap();
        assert_eq!(drill.topology.regions.len(), 3);
        assert_eq!(drill.method[0].fault, FaultKind::RegionKill);
        assert_eq!(drill.rollbacks, vec![Rollback::RestoreProcesses]);
    }

    fn error_of(text: &str) -> String {
        Drill::parse(text).unwrap_err()
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                VALID.replace("region-kill", "region-explode"),
                "method[0].fault",
            ),
            (
                VALID.replace("target: us-east-1", "target: mars-1"),
                "method[0].target",
            ),
            (
                VALID.replace("write_ratio: 0.5", "write_ratio: 1.5"),
                "load.write_ratio",
            ),
            (
                VALID.replace("duration_s: 30", "duration_s: thirty"),
                "load.duration_s",
            ),
            (
                VALID.replace("start_s: 10", "start_s: 99"),
                "method[0].start_s",
            ),
            (
                VALID.replace("max_p99_ms: 2000", "max_p99_ms: 2000, max_p100: 1"),
                "hypothesis",
            ),
            (VALID.replace("title: Kill a region\n", ""), "title"),
            (VALID.replace("restore-processes", "pray"), "rollbacks[0]"),
        ];
        for (text, field) in cases {
            let error = error_of(&text);
            assert!(error.contains(field), "{field}: {error}");
        }
    }

    #[test]
    fn yaml_errors_give_the_line_and_column() {
        let error = error_of(&VALID.replace("region-kill", "region-explode"));
        assert!(
            error.starts_with(
                "field `method[0].fault`: line 6 column 14: unknown variant `region-explode`"
            ),
            "{error}"
        );
        let error = error_of("title: x\nload: {rate_per_client_region: 10\n");
        assert!(
            error.starts_with("field `load`: line 2 column 7: "),
            "{error}"
        );
        // The parser's hint to programmers stays out of a drill author's way.
        let error = error_of(&VALID.replace("title:", "title: again\ntitle:"));
        assert!(error.ends_with("duplicate mapping key: title"), "{error}");
    }

    #[test]
    fn an_evacuation_names_a_region() {
        let drill = Drill::parse(&VALID.replace(
            "{ fault: region-kill, target: us-east-1, start_s: 10 }",
            "{ fault: evacuate, target: eu-west-1, start_s: 5, duration_s: 10 }",
        ))
        .unwrap();
        assert_eq!(drill.method[0].fault, FaultKind::Evacuate);
        assert!(drill.method[0].fault.actuator());
        let error = error_of(&VALID.replace(
            "{ fault: region-kill, target: us-east-1, start_s: 10 }",
            "{ fault: evacuate, start_s: 5 }",
        ));
        assert!(error.starts_with("field `method[0].target`"), "{error}");
    }

    #[test]
    fn command_hooks_need_both_argv_lists_and_name_the_field() {
        let method = |fault: &str| {
            VALID.replace(
                "{ fault: region-kill, target: us-east-1, start_s: 10 }",
                fault,
            )
        };
        let drill = Drill::parse(&method(
            "{ fault: command, start_s: 5, duration_s: 5, start: [kubectl, scale, --replicas=0], \
             stop: [sh, -c, 'kubectl scale --replicas=2'], timeout_s: 30 }",
        ))
        .unwrap();
        let argv = |hook: &crate::actuators::Hook| match hook {
            crate::actuators::Hook::Command(argv) => argv.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(argv(&drill.method[0].start)[0], "kubectl");
        assert_eq!(argv(&drill.method[0].stop)[2], "kubectl scale --replicas=2");
        let cases = [
            (
                "{ fault: command, start_s: 5, stop: [true] }",
                "method[0].start",
            ),
            (
                "{ fault: command, start_s: 5, start: [true] }",
                "method[0].stop",
            ),
            (
                "{ fault: command, start_s: 5, start: [''], stop: [true] }",
                "method[0].start[0]",
            ),
            (
                "{ fault: command, start_s: 5, start: [true], stop: [true], timeout_s: 0 }",
                "method[0].timeout_s",
            ),
            (
                "{ fault: command, start_s: 5, start: true, stop: [true] }",
                "method[0].start",
            ),
            (
                "{ fault: region-kill, target: us-east-1, start_s: 5, start: [true] }",
                "method[0].start",
            ),
            (
                "{ fault: command, target: mars-1, start_s: 5, start: [true], stop: [true] }",
                "method[0].target",
            ),
        ];
        for (fault, field) in cases {
            let error = error_of(&method(fault));
            assert!(
                error.starts_with(&format!("field `{field}`")),
                "{field}: {error}"
            );
        }
    }

    #[test]
    fn http_hooks_parse_with_env_headers_and_name_the_bad_field() {
        let method = |fault: &str| {
            VALID.replace(
                "{ fault: region-kill, target: us-east-1, start_s: 10 }",
                fault,
            )
        };
        let good = "{ fault: http, target: eu-west-1, start_s: 5, duration_s: 5, \
             start: { url: 'https://chaos.example/start', headers: { authorization: { env: HOOK_TOKEN }, \
             x-team: sre }, body: '{}' }, stop: { method: DELETE, url: 'https://chaos.example/stop' } }";
        let drill = Drill::parse(&method(good)).unwrap();
        let crate::actuators::Hook::Http(start) = &drill.method[0].start else {
            panic!("{:?}", drill.method[0].start)
        };
        assert_eq!(start.method, "POST");
        assert_eq!(
            start.headers["authorization"],
            crate::actuators::http::HeaderValue::Env {
                env: "HOOK_TOKEN".into()
            }
        );
        let cases = [
            (
                good.replace("https://chaos.example/start", "ftp://x"),
                "method[0].start.url",
            ),
            (good.replace("DELETE", "DE LETE"), "method[0].stop.method"),
            (good.replace("body:", "bodee:"), "method[0].start"),
            (
                good.replace(
                    "{ method: DELETE, url: 'https://chaos.example/stop' }",
                    "[true]",
                ),
                "method[0].stop",
            ),
        ];
        for (fault, field) in cases {
            let error = error_of(&method(&fault));
            assert!(
                error.starts_with(&format!("field `{field}")),
                "{field}: {error}"
            );
        }
    }

    #[test]
    fn latency_needs_a_delay() {
        let error = error_of(&VALID.replace("region-kill", "latency"));
        assert!(error.contains("delay_ms"), "{error}");
    }

    #[test]
    fn shipped_drills_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../drills");
        let mut count = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            Drill::load(&path).unwrap_or_else(|e| panic!("{e}"));
            count += 1;
        }
        assert!(count >= 5, "five shipped drills, found {count}");
    }

    #[test]
    fn the_wan_defaults_to_public_round_trips_and_names_what_is_missing() {
        let with_wan = VALID.replace("load:", "topology: { wan: {} }\nload:");
        let drill = Drill::parse(&with_wan).unwrap();
        let wan = drill.topology.wan.as_ref().unwrap();
        let ms = |a: &str, b: &str| wan.rtt(a, b).unwrap().as_millis();
        assert_eq!(ms("us-east-1", "ap-southeast-1"), 220);
        assert_eq!(ms("ap-southeast-1", "us-east-1"), 220);
        assert_eq!(ms("eu-west-1", "eu-west-1"), 1);
        // A write's consensus: the nearest other region.
        let regions = &drill.topology.regions;
        assert_eq!(wan.database_rtt("ap-southeast-1", regions).as_millis(), 165);
        assert_eq!(wan.database_rtt("us-east-1", regions).as_millis(), 70);

        let four = VALID.replace(
            "load:",
            "topology: { regions: [us-east-1, eu-west-1, ap-southeast-1, sa-east-1], wan: {} }\nload:",
        );
        let error = Drill::parse(&four).unwrap_err();
        assert!(
            error.contains("topology.wan.rtt_ms") && error.contains("us-east-1 and sa-east-1"),
            "{error}"
        );
        let lossy = VALID.replace("load:", "topology: { wan: { loss: 0.5 } }\nload:");
        assert!(Drill::parse(&lossy)
            .unwrap_err()
            .contains("topology.wan.loss"));
        // A region's death costs no lease transfer unless the file sets
        // one; a minute is no CockroachDB's.
        assert_eq!(wan.lease_transfer_s, 0.0);
        let five = VALID.replace("load:", "topology: { wan: { lease_transfer_s: 5 } }\nload:");
        assert_eq!(
            Drill::parse(&five)
                .unwrap()
                .topology
                .wan
                .unwrap()
                .lease_transfer_s,
            5.0
        );
        let long = VALID.replace(
            "load:",
            "topology: { wan: { lease_transfer_s: 60 } }\nload:",
        );
        let error = Drill::parse(&long).unwrap_err();
        assert!(
            error.contains("topology.wan.lease_transfer_s") && error.contains("0 to 30 s"),
            "{error}"
        );
        let slow = VALID.replace("load:", "controller: { probe: { timeout_ms: 5 } }\nload:");
        assert!(Drill::parse(&slow)
            .unwrap_err()
            .contains("controller.probe.timeout_ms"));
    }

    /// A drill runs across the WAN unless its file says otherwise.
    #[test]
    fn the_wan_is_on_unless_the_drill_turns_it_off() {
        let drill = Drill::parse(VALID).unwrap();
        assert_eq!(drill.topology.wan, Some(Wan::default()));
        let regions_only = VALID.replace("load:", "topology: { instances_per_region: 1 }\nload:");
        assert_eq!(
            Drill::parse(&regions_only).unwrap().topology.wan,
            Some(Wan::default())
        );
        let loopback = VALID.replace("load:", "topology: { wan: null }\nload:");
        assert_eq!(Drill::parse(&loopback).unwrap().topology.wan, None);
    }
}
