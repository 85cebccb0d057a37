//! The regional ledger API.
//!
//! One stateless process per instance; many instances per region; every
//! region reads and writes one CockroachDB multi-region cluster (PostgreSQL 15
//! stands in for it in tests). The service keeps no state of its own beyond
//! caches, so that a region can die without losing anything that was
//! acknowledged.
//!
//! # Layout
//!
//! - [`config`]: typed settings from defaults, a file, the environment and flags.
//! - [`startup`]: [`startup::Application`] binds the listeners and runs until stopped.
//! - [`server`]: the serving threads (one per CPU), each with its share of the pool.
//! - [`http`]: the public router, its extractors, errors and middleware.
//! - [`auth`]: API keys and JWTs to principals, and the per-principal rate limit.
//! - [`db`]: the pool, the dialect, migrations, the one retry helper and the queries.
//! - [`region_gate`]: the cached drain flag of this region.
//! - [`metrics`]: the Prometheus registry served on the admin port.
//! - [`telemetry`]: JSON logs, each line of a request carrying its id and `traceparent`.
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations, rust_2018_idioms, unreachable_pub)]

pub mod auth;
pub mod config;
pub mod db;
pub mod http;
pub mod metrics;
pub mod region_gate;
pub mod server;
pub mod startup;
pub mod telemetry;
