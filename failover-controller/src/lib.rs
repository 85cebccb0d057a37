//! The failover controller: probes every region from every region, decides
//! by quorum with safety rules, and steers traffic through three paths (the
//! drain flag in the database, Route53 latency records, and its own
//! authoritative DNS).
//!
//! # Layout
//! - [`config`], [`secret`]: typed, layered, validated settings.
//! - [`probe`], [`verdict`]: HTTP probes and per-vantage verdicts (K/M);
//!   [`ca_bundle`]: private CAs the HTTPS probes trust;
//!   [`client_identity`]: the client certificate they present (mTLS).
//! - [`votes`], [`quorum`]: vote sharing through the database, tally.
//! - [`region_machine`], [`planner`]: state machines, hold-down, safety rules;
//!   [`safety`]: the min_healthy_regions rule and which regions leave first.
//! - [`early_leave`]: every replica leaves a down region out of DNS at once,
//!   within the safety rules, without waiting for the leader.
//! - [`lease`]: leader election with a fencing epoch.
//! - [`actions`]: drain flag (fenced) and Route53.
//! - [`dns`]: the authoritative DNS server.
//! - [`reconcile`], [`state`]: the loops and the state they share with HTTP.
//! - [`http`]: status page, `/status`, `/metrics`, health, admin API.
//! - [`app`]: builds everything, binds ports, runs until stopped.
#![forbid(unsafe_code)]
#![warn(rust_2018_idioms)]

pub mod actions;
pub mod app;
pub mod audit;
pub mod ca_bundle;
pub mod client_identity;
pub mod config;
pub mod db;
pub mod db_target;
pub mod dns;
pub mod early_leave;
pub mod http;
pub mod lease;
pub mod metrics;
pub mod overrides;
pub mod planner;
#[cfg(test)]
mod planner_tests;
pub mod probe;
pub mod quorum;
#[cfg(test)]
mod quorum_tests;
pub mod reconcile;
pub mod region_machine;
pub mod safety;
pub mod secret;
pub mod state;
pub mod verdict;
pub mod votes;
