//! The ledger judged against the history, as Jepsen's bank test does: every
//! account on its own, from what the clients sent and were told, never from
//! what the ledger says of itself.
//!
//! The checks, each of which fires on a ledger that breaks it (the tests in
//! `tests/drills/verifier.rs` corrupt a real one to show it):
//! - every account's final balance is its opening balance plus the
//!   acknowledged transfers that touch it plus the unknown-outcome transfers
//!   found applied (a transfer applied twice behind one row, a lost write, a
//!   balance changed by hand all break it);
//! - no balance is negative, at the end or in any read a client was answered;
//! - every acknowledged transfer is in the ledger exactly once, as it was
//!   sent (accounts, amount) and with the id it was acknowledged with;
//! - every failed transfer is absent;
//! - nothing touches the drill's accounts under a key no client sent (a
//!   transfer re-applied under a key of its own).

use std::collections::{BTreeMap, HashMap, HashSet};

use uuid::Uuid;

use crate::load::{Operation, Outcome, TransferSent};
use crate::model::{Totals, MAX_LEDGER_FINDINGS};

/// The drill's part of the ledger after the load.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Opening balance of each of the drill's accounts (what it was seeded with).
    pub opening: BTreeMap<Uuid, i64>,
    /// Final balance of each of them found in the database.
    pub balances: BTreeMap<Uuid, i64>,
    /// Every transfer that touches one of them.
    pub transfers: Vec<LedgerTransfer>,
}

/// One row of `transfers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerTransfer {
    pub id: Uuid,
    pub key: String,
    pub from: Uuid,
    pub to: Uuid,
    pub amount: i64,
}

/// What the reconciliation leaves besides the counts in [`Totals`].
#[derive(Debug, Clone, Default)]
pub struct Reconciliation {
    /// Keys of the history's writes that the ledger holds.
    pub applied: HashSet<String>,
    /// Each violation in a sentence, at most [`MAX_LEDGER_FINDINGS`].
    pub findings: Vec<String>,
}

impl Reconciliation {
    fn find(&mut self, finding: String) {
        if self.findings.len() < MAX_LEDGER_FINDINGS {
            self.findings.push(finding);
        }
    }
}

/// Reconciles `ledger` with `history`; fills the write and balance fields
/// of `totals`.
pub fn reconcile(history: &[Operation], ledger: &Ledger, totals: &mut Totals) -> Reconciliation {
    let mut result = Reconciliation::default();
    let mut by_key: HashMap<&str, Vec<&LedgerTransfer>> = HashMap::new();
    for row in &ledger.transfers {
        by_key.entry(row.key.as_str()).or_default().push(row);
    }
    // What each account should have moved by, from the clients' side.
    let mut expected_delta: BTreeMap<Uuid, i64> = BTreeMap::new();
    let mut sent_keys: HashSet<&str> = HashSet::new();
    for operation in history.iter().filter(|op| op.kind == "write") {
        let Some(key) = operation.key.as_deref() else {
            continue;
        };
        sent_keys.insert(key);
        let rows = by_key.get(key).map(Vec::as_slice).unwrap_or_default();
        if rows.len() > 1 {
            totals.writes_duplicated += 1;
            result.find(format!(
                "write {key}: {} transfers in the ledger under one key",
                rows.len()
            ));
        }
        let present = !rows.is_empty();
        match operation.outcome {
            Outcome::Ok => {
                totals.writes_acknowledged += 1;
                if !present {
                    totals.writes_lost += 1;
                    result.find(format!("write {key}: acknowledged, absent from the ledger"));
                }
            }
            Outcome::Fail => {
                if present {
                    totals.failed_writes_present += 1;
                    result.find(format!("write {key}: failed, yet in the ledger"));
                }
            }
            Outcome::Unknown => {
                if present {
                    totals.unknown_resolved_committed += 1;
                } else {
                    totals.unknown_resolved_absent += 1;
                }
            }
        }
        if present {
            result.applied.insert(key.to_owned());
            if let Some(difference) = altered(operation, rows[0]) {
                totals.writes_altered += 1;
                result.find(format!("write {key}: {difference}"));
            }
        }
        // Acknowledged writes count whether or not the ledger has them (a
        // lost one breaks its accounts too); unknown ones when found.
        let counts = match operation.outcome {
            Outcome::Ok => true,
            Outcome::Unknown => present,
            Outcome::Fail => false,
        };
        if let (true, Some(sent)) = (counts, operation.transfer) {
            *expected_delta.entry(sent.from).or_default() -= sent.amount;
            *expected_delta.entry(sent.to).or_default() += sent.amount;
        }
    }
    for row in &ledger.transfers {
        if !sent_keys.contains(row.key.as_str()) {
            totals.transfers_not_sent += 1;
            result.find(format!(
                "transfer {} under key {:?}: no client sent it ({} from {} to {})",
                row.id,
                row.key,
                row.amount,
                short(row.from),
                short(row.to)
            ));
        }
    }
    reconcile_accounts(ledger, &expected_delta, totals, &mut result);
    for operation in history {
        if operation.outcome == Outcome::Ok && operation.balance.is_some_and(|b| b < 0) {
            totals.negative_balances_read += 1;
            result.find(format!(
                "read of account {} at {:.1} s ({} clients) returned balance {}",
                operation.account.map(short).unwrap_or_default(),
                operation.intended_s,
                operation.client_region,
                operation.balance.unwrap_or_default()
            ));
        }
    }
    result
}

/// Each account against its opening balance plus `expected_delta`, and the
/// totals of the drill's accounts.
fn reconcile_accounts(
    ledger: &Ledger,
    expected_delta: &BTreeMap<Uuid, i64>,
    totals: &mut Totals,
    result: &mut Reconciliation,
) {
    totals.accounts_checked = ledger.opening.len() as u64;
    totals.total_balance_after = ledger.balances.values().sum();
    totals.min_balance_after = ledger.balances.values().copied().min().unwrap_or(0);
    for (account, opening) in &ledger.opening {
        let delta = expected_delta.get(account).copied().unwrap_or(0);
        let expected = opening + delta;
        match ledger.balances.get(account) {
            None => {
                totals.accounts_unreconciled += 1;
                result.find(format!("account {account}: missing from the ledger"));
            }
            Some(&balance) if balance != expected => {
                totals.accounts_unreconciled += 1;
                result.find(format!(
                    "account {account}: balance {balance}, expected {expected} \
                     (opening {opening}, {delta:+} by the acknowledged and applied transfers)"
                ));
            }
            Some(&balance) if balance < 0 => {
                result.find(format!("account {account}: negative balance {balance}"));
            }
            Some(_) => {}
        }
    }
}

/// How the ledger's row differs from what the client sent and was told.
fn altered(operation: &Operation, row: &LedgerTransfer) -> Option<String> {
    if let Some(sent) = operation.transfer {
        let held = TransferSent {
            from: row.from,
            to: row.to,
            amount: row.amount,
        };
        if held != sent {
            return Some(format!(
                "the ledger holds {} from {} to {}, the client sent {} from {} to {}",
                held.amount,
                short(held.from),
                short(held.to),
                sent.amount,
                short(sent.from),
                short(sent.to)
            ));
        }
    }
    match operation.transfer_id {
        Some(acknowledged) if operation.outcome == Outcome::Ok && acknowledged != row.id => {
            Some(format!(
                "acknowledged as transfer {acknowledged}, the ledger holds {} under its key",
                row.id
            ))
        }
        _ => None,
    }
}

/// The first block of a UUID, enough to find it in `history.jsonl`.
fn short(id: Uuid) -> String {
    id.to_string()[..8].to_owned()
}
