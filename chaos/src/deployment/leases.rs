//! A region's loss as the database sees it: CockroachDB moves the leases
//! the dead region held (its rows are `REGIONAL BY ROW`, homed there), and
//! until they move, 1 to 9 s, every write to those rows waits, whichever
//! region it comes from (docs/drills.md, "The database's geography").
//!
//! The stand-in PostgreSQL gets the same: a transaction of the deployment's
//! own locks every account homed in the dead region (`FOR UPDATE`, which
//! transfers take too) from the moment the region dies until
//! `topology.wan.lease_transfer_s` after it. It locks them in id order, the
//! order every transfer locks its two rows in: in any other order a
//! transfer holding one of them while it waits for the other closes a
//! cycle, and the server's deadlock detector ended the lease transfer at
//! the game day's 300 requests a second. Writes touching those rows
//! wait behind it, from every region; writes between the other regions'
//! rows do not. Reads do not wait in PostgreSQL (they would on CockroachDB
//! unless they are follower reads): that part is not modelled.

use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

/// What one lease transfer held, for the deployment's log.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub rows: u64,
    /// From the region's death to the locks' release.
    pub for_: Duration,
    /// How long taking the locks waited (behind the dead region's own
    /// transactions, until the server ended them).
    pub locked_after: Duration,
    /// Attempts at taking them (more than one when the server ended one).
    pub attempts: u32,
}

/// The accounts homed in a dead region, locked by the lease transfer until
/// its hold ends.
pub struct Locked {
    client: tokio_postgres::Client,
    region: String,
    rows: u64,
    died: Instant,
    hold: Duration,
    locked_after: Duration,
    attempts: u32,
}

impl std::fmt::Debug for Locked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locked")
            .field("region", &self.region)
            .field("rows", &self.rows)
            .field("attempts", &self.attempts)
            .finish()
    }
}

/// Locks every account homed in `region`, the region having died now, to
/// be held until `hold` after it ([`Locked::release_at_end`]). Locks again
/// after a deadlock or a serialization failure (the server ended the
/// attempt, not the drill) while the hold lasts.
pub async fn lock_region_rows(
    database_url: &str,
    region: &str,
    hold: Duration,
) -> anyhow::Result<Locked> {
    let died = Instant::now();
    let client = crate::database::connect(database_url).await?;
    let mut attempts = 0u32;
    let rows = loop {
        attempts += 1;
        client.batch_execute("BEGIN").await?;
        let locked = client
            .execute(
                "SELECT id FROM accounts WHERE home_region = $1 ORDER BY id FOR UPDATE",
                &[&region],
            )
            .await;
        match locked {
            Ok(rows) => break rows,
            Err(error) if ended_by_the_server(&error) && died.elapsed() < hold => {
                tracing::debug!(region, attempts, %error, "locking the dead region's rows again");
                client.batch_execute("ROLLBACK").await?;
            }
            Err(error) => {
                return Err(error).with_context(|| {
                    format!("locking the accounts homed in {region} ({attempts} attempts)")
                })
            }
        }
    };
    Ok(Locked {
        client,
        region: region.to_owned(),
        rows,
        died,
        hold,
        locked_after: died.elapsed(),
        attempts,
    })
}

impl Locked {
    /// Waits until the hold's end, then lets the rows go.
    pub async fn release_at_end(self) -> anyhow::Result<Held> {
        tokio::time::sleep_until(self.died + self.hold).await;
        self.client.batch_execute("ROLLBACK").await?;
        Ok(Held {
            rows: self.rows,
            for_: self.died.elapsed(),
            locked_after: self.locked_after,
            attempts: self.attempts,
        })
    }
}

/// Holds every account homed in `region` for `hold` from now, then lets
/// them go ([`lock_region_rows`], then [`Locked::release_at_end`]).
pub async fn hold_region_rows(
    database_url: &str,
    region: &str,
    hold: Duration,
) -> anyhow::Result<Held> {
    lock_region_rows(database_url, region, hold)
        .await?
        .release_at_end()
        .await
}

/// A deadlock, a serialization failure or a lock wait the server gave up:
/// worth another attempt.
fn ended_by_the_server(error: &tokio_postgres::Error) -> bool {
    error
        .code()
        .is_some_and(|code| matches!(code.code(), "40P01" | "40001" | "55P03"))
}

/// Starts the lease transfer of `region`: returns once its rows are
/// locked, or with why they could not be (the fault was then not applied,
/// and the drill must not judge it as if it had been); they are let go in
/// the background, its log line saying what was held and for how long.
pub async fn start(database_url: String, region: String, hold: Duration) -> anyhow::Result<()> {
    if hold.is_zero() {
        return Ok(());
    }
    let locked = lock_region_rows(&database_url, &region, hold).await?;
    tokio::spawn(async move {
        match locked.release_at_end().await {
            Ok(held) => tracing::info!(
                region,
                rows = held.rows,
                held_s = held.for_.as_secs_f64(),
                locked_after_s = held.locked_after.as_secs_f64(),
                attempts = held.attempts,
                "lease transfer: writes to the rows homed in the dead region waited"
            ),
            Err(error) => tracing::warn!(region, "lease transfer: releasing the rows: {error:#}"),
        }
    });
    Ok(())
}
