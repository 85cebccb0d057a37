//! Vote sharing through the database: each replica overwrites its own row
//! per region after every probe round; the leader reads them all and keeps
//! the fresh ones (freshness by the database clock).

use sqlx::PgPool;

use crate::db::DbError;
use crate::quorum::Vote;
use crate::verdict::Verdict;

/// One replica's verdict on one region, to publish.
#[derive(Debug, Clone)]
pub struct OwnVote {
    pub region: String,
    pub verdict: Verdict,
    pub consecutive: u32,
    /// How long the current run of successful probes has lasted, by this
    /// replica's clock (none while the region fails).
    pub healthy_for: Option<std::time::Duration>,
    pub rtt_ms: Option<f64>,
    pub last_error: String,
}

/// Publishes this vantage point's verdicts in one statement.
pub async fn publish(pool: &PgPool, vantage: &str, votes: &[OwnVote]) -> Result<(), DbError> {
    let regions: Vec<String> = votes.iter().map(|v| v.region.clone()).collect();
    let verdicts: Vec<String> = votes
        .iter()
        .map(|v| v.verdict.as_str().to_string())
        .collect();
    let consecutive: Vec<i64> = votes.iter().map(|v| v.consecutive as i64).collect();
    let rtts: Vec<Option<f64>> = votes.iter().map(|v| v.rtt_ms).collect();
    let errors: Vec<String> = votes.iter().map(|v| v.last_error.clone()).collect();
    let healthy_ms: Vec<Option<f64>> = votes
        .iter()
        .map(|v| v.healthy_for.map(|d| d.as_secs_f64() * 1000.0))
        .collect();
    sqlx::query(
        "INSERT INTO failover_votes (vantage, region, verdict, consecutive, rtt_ms, last_error, observed_at, healthy_since) \
         SELECT $1, t.region, t.verdict, t.consecutive, t.rtt_ms, t.last_error, now(), \
                now() - t.healthy_ms * INTERVAL '1 millisecond' \
         FROM UNNEST($2::TEXT[], $3::TEXT[], $4::INT8[], $5::FLOAT8[], $6::TEXT[], $7::FLOAT8[]) \
              AS t(region, verdict, consecutive, rtt_ms, last_error, healthy_ms) \
         ON CONFLICT (vantage, region) DO UPDATE SET verdict = excluded.verdict, \
           consecutive = excluded.consecutive, rtt_ms = excluded.rtt_ms, \
           last_error = excluded.last_error, observed_at = excluded.observed_at, \
           healthy_since = excluded.healthy_since",
    )
    .bind(vantage)
    .bind(&regions)
    .bind(&verdicts)
    .bind(&consecutive)
    .bind(&rtts)
    .bind(&errors)
    .bind(&healthy_ms)
    .execute(pool)
    .await?;
    Ok(())
}

/// One row of `failover_votes` as read back, ages by the database clock.
#[derive(sqlx::FromRow)]
struct VoteRow {
    vantage: String,
    region: String,
    verdict: String,
    rtt_ms: Option<f64>,
    age_ms: f64,
    healthy_ms: Option<f64>,
}

/// Reads the votes no older than `freshness_ms`.
pub async fn fresh(pool: &PgPool, freshness_ms: u64) -> Result<Vec<Vote>, DbError> {
    let rows: Vec<VoteRow> = sqlx::query_as(
        "SELECT vantage, region, verdict, rtt_ms, \
                (EXTRACT(EPOCH FROM (now() - observed_at)) * 1000)::FLOAT8 AS age_ms, \
                (EXTRACT(EPOCH FROM (now() - healthy_since)) * 1000)::FLOAT8 AS healthy_ms \
         FROM failover_votes \
         WHERE observed_at > now() - ($1::BIGINT * INTERVAL '1 millisecond')",
    )
    .bind(freshness_ms as i64)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let VoteRow {
                vantage,
                region,
                verdict,
                rtt_ms,
                age_ms,
                healthy_ms,
            } = row;
            let verdict = Verdict::parse(&verdict)?;
            Some(Vote {
                vantage,
                region,
                verdict,
                rtt_ms,
                age_ms,
                // Only an up vote vouches for health (a row written by an
                // older replica has none: no credit).
                healthy_ms: match verdict {
                    Verdict::Up => healthy_ms.unwrap_or(0.0).max(0.0),
                    Verdict::Down => 0.0,
                },
            })
        })
        .collect())
}
