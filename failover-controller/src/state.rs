//! The state shared between the loops and the HTTP server: the status
//! snapshot, recent events, readiness (serving, and a view the database
//! still refreshes), metrics and the DNS view.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::time::Instant;

use crate::dns::server::SharedView;
use crate::dns::DnsView;
use crate::lease::LeaseView;
use crate::metrics::Metrics;
use crate::overrides::ActiveOverride;
use crate::quorum::QuorumVerdict;
use crate::region_machine::RegionState;
use crate::verdict::Verdict;

/// How many recent events `/status` keeps.
const RECENT_EVENTS: usize = 200;

/// One vantage point's vote as shown in `/status`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VoteStatus {
    pub verdict: Verdict,
    pub age_ms: f64,
    pub rtt_ms: Option<f64>,
    /// Not counted: this vantage point saw every region down.
    pub discarded: bool,
}

/// One region in `/status`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RegionStatus {
    pub region: String,
    pub state: RegionState,
    pub since: DateTime<Utc>,
    pub verdict: QuorumVerdict,
    pub votes_up: usize,
    pub votes_down: usize,
    pub disagreement: bool,
    /// Per vantage point.
    pub votes: BTreeMap<String, VoteStatus>,
    /// The hold-down a recovery would wait now.
    pub hold_down_ms: u64,
    /// When the current recovery may restore the region.
    pub recover_at: Option<DateTime<Utc>>,
    pub drain_flag: bool,
    pub drain_flag_updated_at: Option<DateTime<Utc>>,
    /// Whether this replica's DNS answers send clients there.
    pub dns_serving: bool,
    /// Left out of DNS by the votes before the leader set the drain flag.
    pub dns_left_early: bool,
    pub recent_actions: Vec<Event>,
}

/// A decision or an action, with its time.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub region: Option<String>,
    /// decision or action.
    pub kind: String,
    /// drain, restore, drain_blocked, freeze, drain_flag_set, route53_remove, ...
    pub name: String,
    pub actor: String,
    pub outcome: String,
    pub detail: String,
    pub duration_ms: Option<f64>,
}

/// The whole `/status` document.
#[derive(Debug, Clone, Serialize, Default)]
pub struct StatusSnapshot {
    pub controller_id: String,
    pub region: String,
    pub dry_run: bool,
    pub generated_at: Option<DateTime<Utc>>,
    pub probe_interval_ms: u64,
    pub lease: LeaseView,
    pub frozen: bool,
    pub freeze_reason: Option<String>,
    pub counted_vantages: Vec<String>,
    pub discarded_vantages: Vec<String>,
    /// Vantage points that voted but are not configured regions: ignored.
    pub ignored_vantages: Vec<String>,
    pub serving_regions: Vec<String>,
    pub regions: Vec<RegionStatus>,
    pub overrides: Vec<ActiveOverride>,
    pub recent_events: Vec<Event>,
    /// The last error of the decision loop, if the last round failed.
    pub last_error: Option<String>,
}

/// Where this replica's view stands: whether DNS may answer from it and
/// the replica is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewHealth {
    /// Read from the database `age` ago, within `decision.max_view_age_ms`.
    Fresh { age: Duration },
    /// Read `age` ago, longer than `max_age`: SERVFAIL, not ready.
    Stale { age: Duration, max_age: Duration },
    /// No decision round has succeeded since the start, `age` ago.
    NoView { age: Duration },
}

impl ViewHealth {
    /// Since the last successful round (or the start, without one).
    pub fn age(self) -> Duration {
        match self {
            ViewHealth::Fresh { age }
            | ViewHealth::Stale { age, .. }
            | ViewHealth::NoView { age } => age,
        }
    }

    pub fn is_fresh(self) -> bool {
        matches!(self, ViewHealth::Fresh { .. })
    }
}

/// Shared by the loops and the HTTP handlers.
pub struct State {
    pub metrics: Metrics,
    pub dns_view: SharedView,
    status: RwLock<StatusSnapshot>,
    events: Mutex<VecDeque<Event>>,
    /// Serving: set when the loops start, cleared at shutdown.
    ready: AtomicBool,
    lease: RwLock<LeaseView>,
    /// When the replica started, for the age of a view it never had.
    started: Instant,
    /// Why the database failed the last time it was asked, in a few words
    /// (`DbError::problem`); None once it answers again.
    database_problem: RwLock<Option<String>>,
}

impl State {
    pub fn new(metrics: Metrics, initial_view: DnsView) -> Arc<Self> {
        Arc::new(Self {
            metrics,
            dns_view: Arc::new(RwLock::new(Arc::new(initial_view))),
            status: RwLock::new(StatusSnapshot::default()),
            events: Mutex::new(VecDeque::new()),
            ready: AtomicBool::new(false),
            lease: RwLock::new(LeaseView::default()),
            started: Instant::now(),
            database_problem: RwLock::new(None),
        })
    }

    /// Where the view stands at `now`; updates `failover_view_age_seconds`
    /// and `failover_view_stale` to match.
    pub fn view_health(&self, now: Instant) -> ViewHealth {
        let view = self.dns_view();
        let health = match view.refreshed_at {
            None => ViewHealth::NoView {
                age: now.saturating_duration_since(self.started),
            },
            Some(at) if view.is_fresh(now) => ViewHealth::Fresh {
                age: now.saturating_duration_since(at),
            },
            Some(at) => ViewHealth::Stale {
                age: now.saturating_duration_since(at),
                max_age: view.max_age,
            },
        };
        self.metrics
            .view_age_seconds
            .set(health.age().as_secs_f64());
        self.metrics.view_stale.set(i64::from(!health.is_fresh()));
        health
    }

    pub fn set_database_problem(&self, problem: Option<String>) {
        if let Ok(mut p) = self.database_problem.write() {
            *p = problem;
        }
    }

    pub fn database_problem(&self) -> Option<String> {
        self.database_problem.read().ok().and_then(|p| p.clone())
    }

    /// Ok when ready; otherwise why not, in words for `/readyz` (causes in
    /// a few words only; the errors themselves are logged).
    pub fn readiness(&self) -> Result<(), String> {
        if !self.is_ready() {
            return Err("not ready: not serving (starting or shutting down)".into());
        }
        let problem = self.database_problem();
        match self.view_health(Instant::now()) {
            ViewHealth::Fresh { .. } => Ok(()),
            ViewHealth::NoView { age } => Err(format!(
                "not ready: no view from the database yet ({}, {:.1} s since start); \
                 DNS answers SERVFAIL",
                problem.unwrap_or_else(|| "waiting for the database".into()),
                age.as_secs_f64()
            )),
            ViewHealth::Stale { age, max_age } => Err(format!(
                "not ready: view read from the database {:.1} s ago, longer than \
                 decision.max_view_age_ms ({} ms): {}; DNS answers SERVFAIL",
                age.as_secs_f64(),
                max_age.as_millis(),
                problem.unwrap_or_else(|| "no decision round has succeeded since".into())
            )),
        }
    }

    pub fn status(&self) -> StatusSnapshot {
        self.status.read().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn set_status(&self, snapshot: StatusSnapshot) {
        if let Ok(mut s) = self.status.write() {
            *s = snapshot;
        }
    }

    /// Records an event (newest last).
    pub fn push_event(&self, event: Event) {
        if let Ok(mut events) = self.events.lock() {
            events.push_back(event);
            while events.len() > RECENT_EVENTS {
                events.pop_front();
            }
        }
    }

    /// Recent events, newest first.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .map(|e| e.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    pub fn set_dns_view(&self, view: DnsView) {
        if let Ok(mut v) = self.dns_view.write() {
            if **v != view {
                *v = Arc::new(view);
            }
        }
    }

    pub fn dns_view(&self) -> Arc<DnsView> {
        self.dns_view
            .read()
            .map(|v| Arc::clone(&v))
            .unwrap_or_default()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn lease(&self) -> LeaseView {
        self.lease.read().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn set_lease(&self, view: LeaseView) {
        self.metrics.lease_held.set(i64::from(view.held));
        self.metrics.lease_epoch.set(view.epoch);
        if let Ok(mut l) = self.lease.write() {
            *l = view;
        }
    }
}
