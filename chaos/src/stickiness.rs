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

/// For `faults[index]`, if its target left DNS: the requests the target
/// served afterwards, until it came back in DNS (the way back of this
/// fault or of a later one on the same region, as for a flapping region
/// that stays out across several faults), or the drill ended.
pub fn reach_after_leaving(
    faults: &[FaultWindow],
    index: usize,
    history: &[Operation],
) -> Option<ReachAfterLeaving> {
    let fault = &faults[index];
    let Some(FaultDns::Left { at_s: left_at, .. }) = fault.dns else {
        return None;
    };
    let back_at = faults
        .iter()
        .filter(|other| other.target == fault.target && other.start_s >= fault.start_s)
        .filter_map(|other| other.failback.and_then(|failback| failback.dns_back_at_s))
        .filter(|&back| back >= left_at)
        .fold(f64::INFINITY, f64::min);
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
            hooks: Vec::new(),
        };
        let history = vec![
            // Before it left: not counted.
            served(13.0, Connection::Pooled, "eu-west-1"),
            served(15.0, Connection::Fresh, "eu-west-1"),
            served(20.0, Connection::Pooled, "eu-west-1"),
            // Another region: not counted.
            served(25.0, Connection::Pooled, "us-east-1"),
        ];
        let reach = reach_after_leaving(std::slice::from_ref(&fault), 0, &history).unwrap();
        assert_eq!(reach.pooled_s, Some(6.1));
        assert_eq!(reach.pooled_requests, 1);
        assert_eq!(reach.fresh_s, Some(1.1));
        assert_eq!(reach.fresh_requests, 1);

        // A region out across two faults returns in the second one's way
        // back: what it served after that is not counted for the first.
        let later = FaultWindow {
            start_s: 18.0,
            dns: Some(FaultDns::AlreadyOut),
            failback: Some(crate::model::Failback {
                dns_back_at_s: Some(19.0),
                dns_back_after_s: Some(1.0),
                served_again_at_s: None,
                served_again_after_s: None,
            }),
            ..fault.clone()
        };
        let flapping = [fault.clone(), later];
        let reach = reach_after_leaving(&flapping, 0, &history).unwrap();
        assert_eq!(reach.pooled_requests, 0, "{reach:?}");
        assert_eq!(reach.fresh_s, Some(1.1));
        assert_eq!(reach_after_leaving(&flapping, 1, &history), None);

        let stayed = FaultWindow {
            dns: Some(FaultDns::Stayed),
            ..fault
        };
        assert_eq!(reach_after_leaving(&[stayed], 0, &history), None);
    }
}
