//! Leader election: one lease row in the database with a fencing epoch.
//!
//! Acquiring an expired lease (or one's own, after it expired) bumps the
//! epoch; every write the leader makes carries that epoch, so a leader that
//! was paused past its lease changes nothing when it wakes up.

use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;

use crate::db::{with_retry, DbError};

/// Errors of the lease boundary.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("lease {name} is not held by {holder} at epoch {epoch}")]
    NotHeld {
        name: String,
        holder: String,
        epoch: i64,
    },
}

impl From<sqlx::Error> for LeaseError {
    fn from(e: sqlx::Error) -> Self {
        LeaseError::Db(DbError::Sqlx(e))
    }
}

/// What this replica knows about the lease after its last attempt.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LeaseView {
    /// Whether this replica holds it.
    pub held: bool,
    /// This replica's epoch when held; otherwise the current holder's.
    pub epoch: i64,
    /// The current holder, as far as the database says.
    pub holder: String,
}

/// The lease as one replica sees and uses it.
#[derive(Debug, Clone)]
pub struct Lease {
    pool: PgPool,
    name: String,
    holder: String,
    ttl: Duration,
}

impl Lease {
    pub fn new(
        pool: PgPool,
        name: impl Into<String>,
        holder: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        Self {
            pool,
            name: name.into(),
            holder: holder.into(),
            ttl,
        }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Acquires or renews the lease. Renewing a live lease keeps the epoch;
    /// taking an expired one (even one's own) increments it.
    pub async fn try_acquire(&self) -> Result<LeaseView, LeaseError> {
        let ttl_ms = self.ttl.as_millis() as i64;
        let (name, holder) = (self.name.clone(), self.holder.clone());
        let acquired: Option<i64> = with_retry(&self.pool, |mut tx| {
            let (name, holder) = (name.clone(), holder.clone());
            async move {
                let row: Option<(i64,)> = sqlx::query_as(
                    "INSERT INTO failover_lease AS l (name, holder, epoch, expires_at, renewed_at) \
                     VALUES ($1, $2, 1, now() + ($3::BIGINT * INTERVAL '1 millisecond'), now()) \
                     ON CONFLICT (name) DO UPDATE SET \
                       epoch = CASE WHEN l.holder = excluded.holder AND l.expires_at > now() \
                               THEN l.epoch ELSE l.epoch + 1 END, \
                       holder = excluded.holder, \
                       expires_at = excluded.expires_at, \
                       renewed_at = now() \
                     WHERE (l.holder = excluded.holder AND l.expires_at > now()) OR l.expires_at <= now() \
                     RETURNING epoch",
                )
                .bind(&name)
                .bind(&holder)
                .bind(ttl_ms)
                .fetch_optional(&mut *tx)
                .await?;
                Ok((tx, row.map(|r| r.0)))
            }
        })
        .await?;
        if let Some(epoch) = acquired {
            return Ok(LeaseView {
                held: true,
                epoch,
                holder: self.holder.clone(),
            });
        }
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT holder, epoch FROM failover_lease WHERE name = $1")
                .bind(&self.name)
                .fetch_optional(&self.pool)
                .await?;
        let (holder, epoch) = row.unwrap_or_default();
        Ok(LeaseView {
            held: false,
            epoch,
            holder,
        })
    }

    /// Checks, right before an action, that this replica still holds the
    /// lease at `epoch` and that it has not expired (database clock).
    pub async fn verify(&self, epoch: i64) -> Result<(), LeaseError> {
        self.remaining(epoch).await.map(|_| ())
    }

    /// How long the lease held at `epoch` has left, by the database clock;
    /// an error when this replica no longer holds it. A caller that noted
    /// its local clock before asking may act until that instant plus the
    /// answer: nobody else can take the lease before then.
    pub async fn remaining(&self, epoch: i64) -> Result<Duration, LeaseError> {
        let row: Option<(f64,)> = sqlx::query_as(
            "SELECT (EXTRACT(EPOCH FROM (expires_at - now())) * 1000)::FLOAT8 FROM failover_lease \
             WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > now()",
        )
        .bind(&self.name)
        .bind(&self.holder)
        .bind(epoch)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some((left_ms,)) => Ok(Duration::from_secs_f64(left_ms.max(0.0) / 1000.0)),
            None => Err(LeaseError::NotHeld {
                name: self.name.clone(),
                holder: self.holder.clone(),
                epoch,
            }),
        }
    }

    /// Gives the lease up (on shutdown) so that another replica takes over
    /// at once instead of after the TTL.
    pub async fn release(&self, epoch: i64) -> Result<(), LeaseError> {
        sqlx::query(
            "UPDATE failover_lease SET expires_at = now() WHERE name = $1 AND holder = $2 AND epoch = $3",
        )
        .bind(&self.name)
        .bind(&self.holder)
        .bind(epoch)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
