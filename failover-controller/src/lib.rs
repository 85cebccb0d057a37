//! Failover controller (work in progress; see issue 3).
