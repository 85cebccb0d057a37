//! The data-plane gate: the region's drain flag in `region_state`.
//!
//! The write is fenced twice: it happens only while the lease row says this
//! holder has this epoch and has not expired, and it never overwrites a row
//! written with a newer epoch. A stale leader's write therefore changes
//! nothing, and the caller learns so (`FlagWrite::Fenced`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::db::{with_retry, DbError};

/// The outcome of a fenced write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagWrite {
    /// The row now says what was asked, written with our epoch.
    Written,
    /// The lease or a newer epoch refused the write; nothing changed.
    Fenced,
}

/// Who writes, with which lease.
#[derive(Debug, Clone)]
pub struct Fence<'a> {
    pub lease_name: &'a str,
    pub holder: &'a str,
    pub epoch: i64,
}

/// Sets (`drained = true`) or clears the drain flag of `region`, fenced by
/// the lease epoch.
pub async fn write(
    pool: &PgPool,
    fence: &Fence<'_>,
    region: &str,
    drained: bool,
    reason: &str,
    actor: &str,
) -> Result<FlagWrite, DbError> {
    let (lease_name, holder, epoch) = (
        fence.lease_name.to_string(),
        fence.holder.to_string(),
        fence.epoch,
    );
    let (region, reason, actor) = (region.to_string(), reason.to_string(), actor.to_string());
    let rows = with_retry(pool, |mut tx| {
        let (lease_name, holder, region, reason, actor) =
            (lease_name.clone(), holder.clone(), region.clone(), reason.clone(), actor.clone());
        async move {
            let result = sqlx::query(
                "INSERT INTO region_state AS rs (region, drained, reason, actor, fencing_epoch, updated_at) \
                 SELECT $1, $2, $3, $4, $5, now() \
                 WHERE EXISTS (SELECT 1 FROM failover_lease \
                               WHERE name = $6 AND holder = $7 AND epoch = $5 AND expires_at > now()) \
                 ON CONFLICT (region) DO UPDATE SET \
                   drained = excluded.drained, reason = excluded.reason, actor = excluded.actor, \
                   fencing_epoch = excluded.fencing_epoch, updated_at = now() \
                 WHERE rs.fencing_epoch <= excluded.fencing_epoch",
            )
            .bind(&region)
            .bind(drained)
            .bind(&reason)
            .bind(&actor)
            .bind(epoch)
            .bind(&lease_name)
            .bind(&holder)
            .execute(&mut *tx)
            .await?;
            Ok((tx, result.rows_affected()))
        }
    })
    .await?;
    Ok(if rows == 1 {
        FlagWrite::Written
    } else {
        FlagWrite::Fenced
    })
}

/// One row of `region_state`.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagRow {
    pub drained: bool,
    pub reason: String,
    pub actor: String,
    pub fencing_epoch: i64,
    pub updated_at: DateTime<Utc>,
}

/// Reads every region's flag (a missing row means not drained).
pub async fn read_all(pool: &PgPool) -> Result<BTreeMap<String, FlagRow>, DbError> {
    let rows: Vec<(String, bool, String, String, i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT region, drained, reason, actor, fencing_epoch, updated_at FROM region_state",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(region, drained, reason, actor, fencing_epoch, updated_at)| {
                (
                    region,
                    FlagRow {
                        drained,
                        reason,
                        actor,
                        fencing_epoch,
                        updated_at,
                    },
                )
            },
        )
        .collect())
}
