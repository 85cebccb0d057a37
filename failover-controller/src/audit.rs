//! The append-only audit log: every decision and action with the votes, the
//! rules evaluated, the actor and the outcome. Rows are only ever inserted.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::db::DbError;

/// What kind of entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditKind {
    Decision,
    Action,
    Override,
    Lease,
}

impl AuditKind {
    fn as_str(self) -> &'static str {
        match self {
            AuditKind::Decision => "decision",
            AuditKind::Action => "action",
            AuditKind::Override => "override",
            AuditKind::Lease => "lease",
        }
    }
}

/// One entry to append.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub controller_id: String,
    pub lease_epoch: i64,
    pub kind: AuditKind,
    pub region: Option<String>,
    pub name: String,
    pub actor: String,
    pub outcome: String,
    pub votes: serde_json::Value,
    pub rules: serde_json::Value,
    pub detail: String,
}

/// Appends one entry.
pub async fn append(pool: &PgPool, entry: &AuditEntry) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO failover_audit (controller_id, lease_epoch, kind, region, name, actor, outcome, votes, rules, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&entry.controller_id)
    .bind(entry.lease_epoch)
    .bind(entry.kind.as_str())
    .bind(&entry.region)
    .bind(&entry.name)
    .bind(&entry.actor)
    .bind(&entry.outcome)
    .bind(&entry.votes)
    .bind(&entry.rules)
    .bind(&entry.detail)
    .execute(pool)
    .await?;
    Ok(())
}

/// A stored entry, as read back (tests, drills).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StoredEntry {
    pub at: DateTime<Utc>,
    pub controller_id: String,
    pub lease_epoch: i64,
    pub kind: String,
    pub region: Option<String>,
    pub name: String,
    pub actor: String,
    pub outcome: String,
    pub votes: serde_json::Value,
    pub rules: serde_json::Value,
    pub detail: String,
}

/// The most recent entries, newest first.
pub async fn recent(pool: &PgPool, limit: i64) -> Result<Vec<StoredEntry>, DbError> {
    Ok(sqlx::query_as::<_, StoredEntry>(
        "SELECT at, controller_id, lease_epoch, kind, region, name, actor, outcome, votes, rules, detail \
         FROM failover_audit ORDER BY at DESC, id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
