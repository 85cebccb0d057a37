//! The state shared between the loops and the HTTP server: the status
//! snapshot, recent events, readiness, metrics and the DNS view.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;

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

/// Shared by the loops and the HTTP handlers.
pub struct State {
    pub metrics: Metrics,
    pub dns_view: SharedView,
    status: RwLock<StatusSnapshot>,
    events: Mutex<VecDeque<Event>>,
    ready: AtomicBool,
    lease: RwLock<LeaseView>,
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
        })
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
