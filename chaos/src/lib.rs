//! Chaos: the local multi-region deployment and declarative region-kill
//! drills that measure availability, failover time and lost writes.
#![forbid(unsafe_code)]

pub mod actuators;
pub mod analysis;
pub mod api_key;
pub mod availability;
pub mod control;
pub mod controller_settings;
pub mod database;
pub mod deployment;
pub mod drill;
pub mod driver;
pub mod failback;
pub mod failures;
pub mod journal;
pub mod load;
pub mod model;
pub mod objectives;
pub mod outage;
pub mod postgres;
pub mod proxy;
pub mod report;
pub mod runner;
pub mod spec;
pub mod stickiness;
pub mod target;
pub mod verify;
