//! Manual overrides (drain, undrain, freeze, unfreeze): stored in the
//! database so that every replica sees them, each with a reason, an actor and
//! an expiry. They outrank automation.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::{with_retry, DbError};

/// What an override asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum OverrideKind {
    /// Take a region out of service (still subject to min_healthy_regions).
    Drain,
    /// Put a region back now, skipping the hold-down.
    Undrain,
    /// Stop all automated actions.
    Freeze,
    /// Lift an automatic freeze and keep it from re-arming while active.
    Unfreeze,
}

impl OverrideKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OverrideKind::Drain => "drain",
            OverrideKind::Undrain => "undrain",
            OverrideKind::Freeze => "freeze",
            OverrideKind::Unfreeze => "unfreeze",
        }
    }

    pub fn parse(label: &str) -> Option<Self> {
        match label {
            "drain" => Some(OverrideKind::Drain),
            "undrain" => Some(OverrideKind::Undrain),
            "freeze" => Some(OverrideKind::Freeze),
            "unfreeze" => Some(OverrideKind::Unfreeze),
            _ => None,
        }
    }

    /// Whether the kind names a region.
    pub fn needs_region(self) -> bool {
        matches!(self, OverrideKind::Drain | OverrideKind::Undrain)
    }
}

/// An override in force.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActiveOverride {
    pub id: Uuid,
    pub kind: OverrideKind,
    pub region: Option<String>,
    pub reason: String,
    pub actor: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A request to create an override.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct NewOverride {
    pub kind: OverrideKind,
    #[serde(default)]
    pub region: Option<String>,
    pub reason: String,
    pub actor: String,
    /// How long it stays in force.
    pub ttl_seconds: u64,
}

/// Stores an override. A new one supersedes active overrides it conflicts
/// with (drain vs undrain of the same region; freeze vs unfreeze), so the
/// latest word of an operator wins.
pub async fn create(pool: &PgPool, new: &NewOverride) -> Result<ActiveOverride, DbError> {
    let opposite = match new.kind {
        OverrideKind::Drain => OverrideKind::Undrain,
        OverrideKind::Undrain => OverrideKind::Drain,
        OverrideKind::Freeze => OverrideKind::Unfreeze,
        OverrideKind::Unfreeze => OverrideKind::Freeze,
    };
    with_retry(pool, |mut tx| {
        let new = new.clone();
        async move {
            sqlx::query(
                "UPDATE failover_overrides SET cleared_at = now(), cleared_by = $1 \
                 WHERE cleared_at IS NULL AND expires_at > now() AND kind IN ($2, $3) \
                 AND (region IS NOT DISTINCT FROM $4)",
            )
            .bind(&new.actor)
            .bind(new.kind.as_str())
            .bind(opposite.as_str())
            .bind(&new.region)
            .execute(&mut *tx)
            .await?;
            let row: (Uuid, DateTime<Utc>, DateTime<Utc>) = sqlx::query_as(
                "INSERT INTO failover_overrides (kind, region, reason, actor, expires_at) \
                 VALUES ($1, $2, $3, $4, now() + ($5::BIGINT * INTERVAL '1 second')) \
                 RETURNING id, created_at, expires_at",
            )
            .bind(new.kind.as_str())
            .bind(&new.region)
            .bind(&new.reason)
            .bind(&new.actor)
            .bind(new.ttl_seconds as i64)
            .fetch_one(&mut *tx)
            .await?;
            Ok((tx, row))
        }
    })
    .await
    .map(|(id, created_at, expires_at)| ActiveOverride {
        id,
        kind: new.kind,
        region: new.region.clone(),
        reason: new.reason.clone(),
        actor: new.actor.clone(),
        created_at,
        expires_at,
    })
}

/// Clears one override; returns whether it was active.
pub async fn clear(pool: &PgPool, id: Uuid, actor: &str) -> Result<bool, DbError> {
    let result = sqlx::query(
        "UPDATE failover_overrides SET cleared_at = now(), cleared_by = $2 \
         WHERE id = $1 AND cleared_at IS NULL AND expires_at > now()",
    )
    .bind(id)
    .bind(actor)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// One row of `failover_overrides` as selected by [`active`].
type OverrideRow = (
    Uuid,
    String,
    Option<String>,
    String,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
);

/// The overrides in force now, oldest first.
pub async fn active(pool: &PgPool) -> Result<Vec<ActiveOverride>, DbError> {
    let rows: Vec<OverrideRow> = sqlx::query_as(
        "SELECT id, kind, region, reason, actor, created_at, expires_at FROM failover_overrides \
             WHERE cleared_at IS NULL AND expires_at > now() ORDER BY created_at, id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(
            |(id, kind, region, reason, actor, created_at, expires_at)| {
                Some(ActiveOverride {
                    id,
                    kind: OverrideKind::parse(&kind)?,
                    region,
                    reason,
                    actor,
                    created_at,
                    expires_at,
                })
            },
        )
        .collect())
}
