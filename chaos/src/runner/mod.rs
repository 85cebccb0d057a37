//! Remote load runners: `chaos runner` sends one client region's load from
//! where that region's clients are (a VM or pod in the region), so the
//! requests, their DNS questions and their round trips are the ones real
//! clients there make, and the drill's coordinator gathers what happened.
//!
//! The protocol, over HTTP(S) with a bearer token:
//! - `GET /v1/clock`: the runner's wall clock. The coordinator asks a few
//!   times before the drill and keeps the sample with the shortest round
//!   trip (NTP's rule): the offset between the clocks is known within half
//!   of it.
//! - `POST /v1/load`: a [`LoadRequest`] (the plan for one client region,
//!   what the load needs to know of the deployment, and when to start, on
//!   the runner's clock). The answer is a stream of [`RunnerEvent`] lines
//!   (NDJSON): the counts of each quarter second while the load runs (the
//!   stop conditions and the progress use them as the local load's), then
//!   every operation and what its DNS watch saw (which regions the name
//!   servers handed its region, asked from there), then `done`.
//! - `POST /v1/load/{id}/abort`: stops issuing requests (a stop condition or
//!   an emergency stop); the stream still ends with the operations sent.
//!   When the coordinator's connection goes away (it died), the runner
//!   stops the load by itself: no load outlives its drill.
//!
//! Layout: this module is the wire format; `server` the `chaos runner`
//! side; `client` the coordinator's side.

pub mod client;
pub mod server;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::load::{Operation, Plan, Target};

/// What the coordinator asks a runner to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadRequest {
    /// Names the run for `abort`.
    pub id: Uuid,
    /// Its `client_regions` is the runner's region alone.
    pub plan: Plan,
    pub target: Target,
    /// t = 0 of the drill, on the runner's clock.
    pub start_at: DateTime<Utc>,
}

/// One line of the answer to `POST /v1/load`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunnerEvent {
    /// The load was accepted; `late_ms` > 0 when `start_at` had passed.
    Started {
        late_ms: f64,
    },
    /// Operations that ended since the last window.
    Window {
        ok: u64,
        failed: u64,
    },
    Operation(Box<Operation>),
    /// What the runner's DNS watch saw (its region's answers, 10 a second).
    Dns(crate::analysis::DnsObservation),
    /// The last line: every operation was sent. `stopped` says why the
    /// runner cut the load short on its own (it was shut down, or the load
    /// failed there); the drill then aborts.
    Done {
        operations: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stopped: Option<String>,
    },
}

/// The answer to `GET /v1/clock`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Clock {
    pub now: DateTime<Utc>,
    pub version: String,
}

/// Environment variable `chaos runner` reads its token from when no
/// `--token-file` is given.
pub const TOKEN_VARIABLE: &str = "CHAOS_RUNNER_TOKEN";

#[cfg(test)]
mod tests;
