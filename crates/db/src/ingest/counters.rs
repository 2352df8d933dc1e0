//! Per-org ingest counters, by the hour.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::DbError;

/// One org's ingest counters to add to the current hour.
#[derive(Debug, Clone, Default)]
pub struct OrgIngestCounts {
    pub org_id: String,
    pub accepted: u64,
    pub throttled_node: u64,
    pub throttled_org: u64,
    pub dead_letters_kept: u64,
    pub dead_letters_dropped: u64,
}

/// Add counters to `org_ingest_counters` (current UTC hour).
pub async fn org_counters_add(pool: &PgPool, rows: &[OrgIngestCounts]) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    let n = |f: fn(&OrgIngestCounts) -> u64| {
        rows.iter()
            .map(|r| i64::try_from(f(r)).unwrap_or(i64::MAX))
            .collect::<Vec<_>>()
    };
    sqlx::query(
        "INSERT INTO org_ingest_counters
             (org_id, hour, accepted, throttled_node, throttled_org, dead_letters_kept, dead_letters_dropped)
         SELECT u.org_id, date_trunc('hour', now()), u.a, u.tn, u.torg, u.dk, u.dd
         FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])
              AS u(org_id, a, tn, torg, dk, dd)
         ORDER BY u.org_id
         ON CONFLICT (org_id, hour) DO UPDATE SET
             accepted = org_ingest_counters.accepted + EXCLUDED.accepted,
             throttled_node = org_ingest_counters.throttled_node + EXCLUDED.throttled_node,
             throttled_org = org_ingest_counters.throttled_org + EXCLUDED.throttled_org,
             dead_letters_kept = org_ingest_counters.dead_letters_kept + EXCLUDED.dead_letters_kept,
             dead_letters_dropped = org_ingest_counters.dead_letters_dropped + EXCLUDED.dead_letters_dropped",
    )
    .bind(rows.iter().map(|r| r.org_id.as_str()).collect::<Vec<_>>())
    .bind(n(|r| r.accepted))
    .bind(n(|r| r.throttled_node))
    .bind(n(|r| r.throttled_org))
    .bind(n(|r| r.dead_letters_kept))
    .bind(n(|r| r.dead_letters_dropped))
    .execute(pool)
    .await?;
    Ok(())
}

/// One hour of an org's ingest counters.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct OrgIngestHour {
    pub hour: DateTime<Utc>,
    pub accepted: i64,
    pub throttled_node: i64,
    pub throttled_org: i64,
    pub dead_letters_kept: i64,
    pub dead_letters_dropped: i64,
}

/// An org's ingest counters per hour since `from`, oldest first.
pub async fn org_counters(
    pool: &PgPool,
    org: &str,
    from: DateTime<Utc>,
) -> Result<Vec<OrgIngestHour>, DbError> {
    Ok(sqlx::query_as(
        "SELECT hour, accepted, throttled_node, throttled_org, dead_letters_kept, dead_letters_dropped
         FROM org_ingest_counters WHERE org_id = $1 AND hour >= $2 ORDER BY hour",
    )
    .bind(org)
    .bind(from)
    .fetch_all(pool)
    .await?)
}
