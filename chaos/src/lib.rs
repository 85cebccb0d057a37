//! Chaos: the local multi-region deployment and declarative region-kill
//! drills that measure availability, failover time and lost writes.
#![forbid(unsafe_code)]

pub mod model;
pub mod report;
pub mod deployment;
pub mod load;
pub mod postgres;
pub mod proxy;
pub mod spec;
pub mod analysis;
pub mod drill;
pub mod verify;
