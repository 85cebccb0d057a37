//! The actions the leader takes: each idempotent, each verified.
//!
//! Layout:
//! - [`drain_flag`]: the data-plane gate in `region_state`, fenced by epoch.
//! - [`route53`]: the latency records this controller owns.

pub mod drain_flag;
pub mod route53;
