//! How long clients kept reaching a region after it left DNS.
//!
//! DNS moves new resolutions only. A client that resolved before the
//! change keeps its answer until the resolver's cached copy expires (the
//! TTL), and a pooled keep-alive connection, opened to the old answer,
//! keeps carrying requests whatever DNS says until the server closes it (a
//! drained region's instances close idle connections and answer
//! `Connection: close`). Per fault, this measures the last request each
//! kind of client (pooled, fresh) sent on its first attempt that the
//! region served after it left every client region's answers, so that a
//! region alive but drained (a gray failure, a database cut) shows how long
//! it went on taking traffic.

use serde::{Deserialize, Serialize};

use crate::load::{Connection, Operation, Outcome};
use crate::model::{FaultDns, FaultWindow};

/// After a region left DNS: how long each kind of client kept reaching it.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct ReachAfterLeaving {
    /// Seconds from the region leaving DNS to the end of the last request
    /// a pooled client sent it (`None`: none after it left).
    pub pooled_s: Option<f64>,
    pub pooled_requests: u64,
    /// The same for clients that open a fresh connection per request.
    pub fresh_s: Option<f64>,
    pub fresh_requests: u64,
}

/// For a fault whose target left DNS: the requests it served afterwards,
/// until it came back in DNS (or the drill ended).
pub fn reach_after_leaving(fault: &FaultWindow, history: &[Operation]) -> Option<ReachAfterLeaving> {
    let Some(FaultDns::Left { at_s: left_at, .. }) = fault.dns else {
        return None;
    };
    let back_at = fault
        .failback
        .and_then(|failback| failback.dns_back_at_s)
        .unwrap_or(f64::INFINITY);
    let mut reach = ReachAfterLeaving::default();
    for op in history {
        // First attempts only: a retry is sent to the next region by
        // address, not through DNS or the pool.
        if op.attempts != 1 || op.outcome != Outcome::Ok {
            continue;
        }
        if op.served_by.as_deref() != Some(fault.target.as_str()) {
            continue;
        }
        if op.intended_s < left_at || op.intended_s >= back_at {
            continue;
        }
        let ended = op.intended_s + op.latency_ms / 1000.0 - left_at;
        let ended = (ended * 1000.0).round() / 1000.0;
        let (last, count) = match op.connection {
            Connection::Pooled => (&mut reach.pooled_s, &mut reach.pooled_requests),
            Connection::Fresh => (&mut reach.fresh_s, &mut reach.fresh_requests),
        };
        *last = Some(last.map_or(ended, |l: f64| l.max(ended)));
        *count += 1;
    }
    Some(reach)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(t: f64, connection: Connection, region: &str) -> Operation {
        Operation {
            client_region: "eu-west-1".into(),
            kind: "read".into(),
            key: None,
            intended_s: t,
            latency_ms: 100.0,
            outcome: Outcome::Ok,
            served_by: Some(region.into()),
            connection,
            attempts: 1,
            first_error: None,
            transfer: None,
            account: None,
            transfer_id: None,
            balance: None,
        }
    }

    #[test]
    fn the_last_request_after_leaving_counts_per_kind_of_client() {
        let fault = FaultWindow {
            kind: "latency".into(),
            target: "eu-west-1".into(),
            start_s: 10.0,
            end_s: Some(30.0),
            dns: Some(FaultDns::Left {
                at_s: 14.0,
                after_s: 4.0,
            }),
            failback: None,
            reach_after_leaving: None,
        };
        let history = vec![
            // Before it left: not counted.
            served(13.0, Connection::Pooled, "eu-west-1"),
            served(15.0, Connection::Fresh, "eu-west-1"),
            served(20.0, Connection::Pooled, "eu-west-1"),
            // Another region: not counted.
            served(25.0, Connection::Pooled, "us-east-1"),
        ];
        let reach = reach_after_leaving(&fault, &history).unwrap();
        assert_eq!(reach.pooled_s, Some(6.1));
        assert_eq!(reach.pooled_requests, 1);
        assert_eq!(reach.fresh_s, Some(1.1));
        assert_eq!(reach.fresh_requests, 1);

        let stayed = FaultWindow {
            dns: Some(FaultDns::Stayed),
            ..fault
        };
        assert_eq!(reach_after_leaving(&stayed, &history), None);
    }
}
