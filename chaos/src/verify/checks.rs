//! The verifier's hypothesis checks: what the report's verdict needs from
//! the reconciliation, each with what was expected and what was found.

use crate::model::{HypothesisCheck, Totals};

/// The ledger checks of a drill that allows `max_lost_writes`.
pub fn ledger_checks(totals: &Totals, max_lost_writes: u64) -> Vec<HypothesisCheck> {
    let zero = |name: &str, observed: u64, of: String| HypothesisCheck {
        name: name.to_owned(),
        expected: "0".into(),
        observed: format!("{observed}{of}"),
        passed: observed == 0,
    };
    vec![
        HypothesisCheck {
            name: "acknowledged writes lost".into(),
            expected: format!("<= {max_lost_writes}"),
            observed: format!("{} of {}", totals.writes_lost, totals.writes_acknowledged),
            passed: totals.writes_lost <= max_lost_writes,
        },
        zero(
            "writes in the ledger more than once or not as sent",
            totals.writes_duplicated + totals.writes_altered,
            format!(
                " ({} duplicated, {} altered)",
                totals.writes_duplicated, totals.writes_altered
            ),
        ),
        zero(
            "failed writes present",
            totals.failed_writes_present,
            String::new(),
        ),
        zero(
            "transfers in the ledger that no client sent",
            totals.transfers_not_sent,
            String::new(),
        ),
        zero(
            "accounts that do not reconcile (opening + acknowledged + unknown found applied)",
            totals.accounts_unreconciled,
            format!(" of {}", totals.accounts_checked),
        ),
        HypothesisCheck {
            name: "money conserved, no negative balance".into(),
            expected: format!(
                "total {}, min >= 0, no negative read",
                totals.total_balance_before
            ),
            observed: format!(
                "total {}, min {}, {} negative reads",
                totals.total_balance_after, totals.min_balance_after, totals.negative_balances_read
            ),
            passed: totals.total_balance_after == totals.total_balance_before
                && totals.min_balance_after >= 0
                && totals.negative_balances_read == 0,
        },
    ]
}
