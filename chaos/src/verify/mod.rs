//! After the load: the ledger read in one snapshot and reconciled with the
//! history, account by account, as Jepsen checks a bank (see [`reconcile`]);
//! and the ledger summary through the API, as a cross-check.
//!
//! Layout: this module reads (the API and the database); `reconcile` judges,
//! as a pure function of the history and what was read, so that every check
//! is tested on ledgers corrupted on purpose; `checks` turns its counts into
//! the report's hypothesis checks.

pub mod checks;
pub mod reconcile;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio_postgres::IsolationLevel;
use uuid::Uuid;

pub use self::reconcile::{reconcile, Ledger, LedgerTransfer, Reconciliation};
use crate::load::Operation;
use crate::model::Totals;

/// Reads `/v1/ledger/summary` from the first instance that answers.
pub async fn api_summary(
    instances: &[SocketAddr],
    https: &crate::deployment::instances::InstanceHttps,
) -> anyhow::Result<serde_json::Value> {
    for _ in 0..10 {
        for address in instances {
            if let Ok(response) = https.get(*address, "/v1/ledger/summary").send().await {
                if response.status().is_success() {
                    return Ok(response.json().await?);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    bail!("no instance answered /v1/ledger/summary")
}

/// Reads the drill's accounts (`opening`: each one's opening balance) and
/// every transfer that touches them, and reconciles them with `history`;
/// fills the write and balance fields of `totals`.
pub async fn check_ledger(
    database_url: &str,
    history: &[Operation],
    opening: &BTreeMap<Uuid, i64>,
    totals: &mut Totals,
) -> anyhow::Result<Reconciliation> {
    let ledger = read_ledger(database_url, opening).await?;
    Ok(reconcile(history, &ledger, totals))
}

/// The drill's part of the ledger, read in one snapshot so that balances
/// and transfers agree with each other.
pub async fn read_ledger(
    database_url: &str,
    opening: &BTreeMap<Uuid, i64>,
) -> anyhow::Result<Ledger> {
    let mut client = crate::database::connect(database_url)
        .await
        .context("verification")?;
    // Ids travel as text: the driver is built without its uuid feature,
    // and the cast is portable to CockroachDB.
    let ids: Vec<String> = opening.keys().map(Uuid::to_string).collect();
    let snapshot = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .context("cannot open the verification snapshot")?;
    let accounts = snapshot
        .query(
            "SELECT id::TEXT, balance FROM accounts WHERE id = ANY(CAST($1::TEXT[] AS UUID[]))",
            &[&ids],
        )
        .await
        .context("cannot read the drill's accounts")?;
    let transfers = snapshot
        .query(
            "SELECT id::TEXT, idempotency_key, from_account::TEXT, to_account::TEXT, amount \
             FROM transfers \
             WHERE from_account = ANY(CAST($1::TEXT[] AS UUID[])) \
                OR to_account = ANY(CAST($1::TEXT[] AS UUID[]))",
            &[&ids],
        )
        .await
        .context("cannot read the transfers of the drill's accounts")?;
    snapshot.commit().await?;
    let uuid = |text: String| -> anyhow::Result<Uuid> {
        text.parse()
            .with_context(|| format!("the ledger holds a malformed id {text:?}"))
    };
    let mut balances = BTreeMap::new();
    for row in accounts {
        balances.insert(uuid(row.get(0))?, row.get(1));
    }
    let mut ledger_transfers = Vec::with_capacity(transfers.len());
    for row in transfers {
        ledger_transfers.push(LedgerTransfer {
            id: uuid(row.get(0))?,
            key: row.get(1),
            from: uuid(row.get(2))?,
            to: uuid(row.get(3))?,
            amount: row.get(4),
        });
    }
    Ok(Ledger {
        opening: opening.clone(),
        balances,
        transfers: ledger_transfers,
    })
}
