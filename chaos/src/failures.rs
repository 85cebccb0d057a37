//! The operations that did not succeed, for the report: each with the
//! faults active at its intended start and, for a write, what the ledger
//! says of it (a failed write must be absent; an unknown one is resolved by
//! it). The whole history stays in `history.jsonl`.

use std::collections::HashSet;

use crate::load::{Operation, Outcome};
use crate::model::{FailedOperation, FaultWindow};

/// Every failed or unknown operation of `history`, in time order; `applied`
/// holds the keys of the writes the ledger holds.
pub fn failed_operations(
    history: &[Operation],
    faults: &[FaultWindow],
    applied: &HashSet<String>,
) -> Vec<FailedOperation> {
    let mut failed: Vec<FailedOperation> = history
        .iter()
        .filter(|op| op.outcome != Outcome::Ok)
        .map(|op| FailedOperation {
            intended_s: op.intended_s,
            client_region: op.client_region.clone(),
            kind: op.kind.clone(),
            key: op.key.clone(),
            outcome: match op.outcome {
                Outcome::Ok => "ok",
                Outcome::Fail => "fail",
                Outcome::Unknown => "unknown",
            }
            .to_owned(),
            attempts: op.attempts,
            first_error: op.first_error.clone(),
            during: faults_at(faults, op.intended_s),
            in_ledger: op.key.as_ref().map(|key| applied.contains(key)),
        })
        .collect();
    failed.sort_by(|a, b| a.intended_s.total_cmp(&b.intended_s));
    failed
}

/// The faults active at `t`, as "kind target".
fn faults_at(faults: &[FaultWindow], t: f64) -> Vec<String> {
    faults
        .iter()
        .filter(|f| f.start_s <= t && f.end_s.is_none_or(|end| t < end))
        .map(|f| format!("{} {}", f.kind, f.target))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operation(t: f64, outcome: Outcome, key: Option<&str>) -> Operation {
        Operation {
            client_region: "us-east-1".to_owned(),
            kind: if key.is_some() { "write" } else { "read" }.to_owned(),
            key: key.map(str::to_owned),
            intended_s: t,
            latency_ms: 1000.0,
            outcome,
            served_by: None,
            connection: crate::load::Connection::Pooled,
            attempts: 2,
            first_error: Some("127.0.2.11:8080: timeout".to_owned()),
            transfer: None,
            account: None,
            transfer_id: None,
            balance: None,
        }
    }

    #[test]
    fn each_failure_carries_its_fault_and_its_ledger_resolution() {
        let faults = [FaultWindow {
            kind: "region-kill".to_owned(),
            target: "eu-west-1".to_owned(),
            start_s: 10.0,
            end_s: Some(20.0),
            dns: None,
            failback: None,
            reach_after_leaving: None,
            hooks: Vec::new(),
        }];
        let history = [
            operation(12.0, Outcome::Unknown, Some("applied")),
            operation(5.0, Outcome::Ok, Some("fine")),
            operation(11.0, Outcome::Fail, Some("refused")),
            operation(25.0, Outcome::Fail, None),
        ];
        let applied: HashSet<String> = ["applied".to_owned()].into();
        let failed = failed_operations(&history, &faults, &applied);
        let summary: Vec<_> = failed
            .iter()
            .map(|f| {
                (
                    f.intended_s,
                    f.outcome.as_str(),
                    f.during.len(),
                    f.in_ledger,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (11.0, "fail", 1, Some(false)),
                (12.0, "unknown", 1, Some(true)),
                (25.0, "fail", 0, None),
            ]
        );
        assert_eq!(failed[0].during, ["region-kill eu-west-1"]);
    }
}
