//! After the load: the ledger invariants through the API and through a
//! direct SQL read, and every write of the history checked against the
//! database by its idempotency key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::load::{Operation, Outcome};
use crate::model::Totals;

/// Reads `/v1/ledger/summary` from the first instance that answers.
pub async fn api_summary(instances: &[SocketAddr]) -> anyhow::Result<serde_json::Value> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    for _ in 0..10 {
        for address in instances {
            if let Ok(response) = client
                .get(format!("http://{address}/v1/ledger/summary"))
                .send()
                .await
            {
                if response.status().is_success() {
                    return Ok(response.json().await?);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    bail!("no instance answered /v1/ledger/summary")
}

/// Checks the history against the database; fills the write and balance
/// fields of `totals`.
pub async fn check_writes(
    database_url: &str,
    history: &[Operation],
    totals: &mut Totals,
) -> anyhow::Result<()> {
    let client = crate::database::connect(database_url)
        .await
        .context("verification")?;
    let rows = client
        .query(
            "SELECT idempotency_key, count(*) FROM transfers GROUP BY idempotency_key",
            &[],
        )
        .await?;
    let present: HashMap<String, i64> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    for operation in history.iter().filter(|op| op.kind == "write") {
        let key = operation.key.as_deref().unwrap_or_default();
        let count = present.get(key).copied().unwrap_or(0);
        if count > 1 {
            totals.writes_duplicated += 1;
        }
        match operation.outcome {
            Outcome::Ok => {
                totals.writes_acknowledged += 1;
                if count == 0 {
                    totals.writes_lost += 1;
                }
            }
            Outcome::Fail => {
                if count > 0 {
                    totals.failed_writes_present += 1;
                }
            }
            Outcome::Unknown => {
                if count > 0 {
                    totals.unknown_resolved_committed += 1;
                } else {
                    totals.unknown_resolved_absent += 1;
                }
            }
        }
    }
    let row = client
        .query_one(
            "SELECT COALESCE(sum(balance), 0)::INT8, COALESCE(min(balance), 0) FROM accounts",
            &[],
        )
        .await?;
    totals.total_balance_after = row.get(0);
    totals.min_balance_after = row.get(1);
    Ok(())
}
