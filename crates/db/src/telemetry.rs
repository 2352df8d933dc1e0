//! Reads of the hourly telemetry rollups, and retention.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::DbError;

/// The rollup bucket `at` falls in: its UTC hour. The ingest buckets
/// summaries by it, and a reader starting at a bucket's start reads whole
/// buckets.
pub fn rollup_hour(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at)
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct UsageTotals {
    pub decisions: i64,
    pub dig_files: i64,
    pub storage_bytes: i64,
    pub snapshot_exports: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TenantUsage {
    pub tenant_id: String,
    /// Active nodes of the tenant now.
    pub nodes: i64,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub usage: UsageTotals,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DailyUsage {
    pub day: DateTime<Utc>,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub usage: UsageTotals,
}

const SUMS: &str = "COALESCE(sum(decisions), 0)::bigint AS decisions,
     COALESCE(sum(dig_files), 0)::bigint AS dig_files,
     COALESCE(sum(storage_bytes), 0)::bigint AS storage_bytes,
     COALESCE(sum(snapshot_exports), 0)::bigint AS snapshot_exports";

/// Usage per tenant over `[from, to)`.
pub async fn usage_by_tenant(
    pool: &PgPool,
    org_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<TenantUsage>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT u.tenant_id,
                (SELECT count(*) FROM nodes n WHERE n.org_id = $1 AND n.tenant_id = u.tenant_id
                   AND n.status <> 'decommissioned') AS nodes,
                {SUMS}
         FROM usage_hourly u WHERE u.org_id = $1 AND u.hour >= $2 AND u.hour < $3
         GROUP BY u.tenant_id ORDER BY u.tenant_id"
    )))
    .bind(org_id)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?)
}

/// Usage of one tenant on one UTC day.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TenantDay {
    pub day: DateTime<Utc>,
    pub tenant_id: String,
    #[sqlx(flatten)]
    pub usage: UsageTotals,
}

/// Usage per tenant and UTC day over `[from, to)` (at most tenants x days rows).
pub async fn usage_daily_by_tenant(
    pool: &PgPool,
    org_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<TenantDay>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT date_trunc('day', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS day, tenant_id, {SUMS}
         FROM usage_hourly WHERE org_id = $1 AND hour >= $2 AND hour < $3
         GROUP BY 1, 2 ORDER BY 1, 2"
    )))
    .bind(org_id)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?)
}

/// Usage per UTC day over `[from, to)`.
pub async fn usage_daily(
    pool: &PgPool,
    org_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<DailyUsage>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT date_trunc('day', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS day, {SUMS}
         FROM usage_hourly WHERE org_id = $1 AND hour >= $2 AND hour < $3
         GROUP BY 1 ORDER BY 1"
    )))
    .bind(org_id)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SloBucket {
    pub hour: DateTime<Utc>,
    pub component: String,
    pub operation: String,
    pub outcome: String,
    pub count: i64,
}

/// A key of the SLO rollups: (hour, component, operation, outcome).
pub type SloKey = (DateTime<Utc>, String, String, String);

/// One page of a node's SLO buckets since `from`, in key order, after `after`.
pub async fn slo_buckets(
    pool: &PgPool,
    node_id: &str,
    from: DateTime<Utc>,
    after: Option<&SloKey>,
    limit: i64,
) -> Result<Vec<SloBucket>, DbError> {
    Ok(sqlx::query_as(
        "SELECT hour, component, operation, outcome, count FROM slo_hourly
         WHERE node_id = $1 AND hour >= $2
           AND ($3::timestamptz IS NULL
                OR (hour, component, operation, outcome) > ($3, $4::text, $5::text, $6::text))
         ORDER BY hour, component, operation, outcome
         LIMIT $7",
    )
    .bind(node_id)
    .bind(from)
    .bind(after.map(|k| k.0))
    .bind(after.map(|k| k.1.as_str()))
    .bind(after.map(|k| k.2.as_str()))
    .bind(after.map(|k| k.3.as_str()))
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// SLO totals of a node since `from`, per label, largest first, at most `limit`.
pub async fn slo_totals(
    pool: &PgPool,
    node_id: &str,
    from: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<(String, String, String, i64)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT component, operation, outcome,
                LEAST(sum(count), 9223372036854775807)::bigint AS count
         FROM slo_hourly WHERE node_id = $1 AND hour >= $2
         GROUP BY component, operation, outcome
         ORDER BY count DESC, component, operation, outcome
         LIMIT $3",
    )
    .bind(node_id)
    .bind(from)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct EnforcementCounts {
    pub allow: i64,
    pub deny: i64,
    pub throttle: i64,
    pub isolate: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EnforcementBucket {
    pub hour: DateTime<Utc>,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub counts: EnforcementCounts,
}

/// One page of a node's enforcement buckets since `from`, after the hour `after`.
pub async fn enforcement_buckets(
    pool: &PgPool,
    node_id: &str,
    from: DateTime<Utc>,
    after: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<EnforcementBucket>, DbError> {
    Ok(sqlx::query_as(
        "SELECT hour, allow_count AS allow, deny_count AS deny, throttle_count AS throttle,
                isolate_count AS isolate
         FROM enforcement_hourly
         WHERE node_id = $1 AND hour >= $2 AND ($3::timestamptz IS NULL OR hour > $3)
         ORDER BY hour LIMIT $4",
    )
    .bind(node_id)
    .bind(from)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// A node's enforcement totals since `from` (saturating).
pub async fn enforcement_totals(
    pool: &PgPool,
    node_id: &str,
    from: DateTime<Utc>,
) -> Result<EnforcementCounts, DbError> {
    let cap =
        |c: &str| format!("LEAST(COALESCE(sum({c}_count), 0), 9223372036854775807)::bigint AS {c}");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {}, {}, {}, {} FROM enforcement_hourly WHERE node_id = $1 AND hour >= $2",
        cap("allow"),
        cap("deny"),
        cap("throttle"),
        cap("isolate")
    )))
    .bind(node_id)
    .bind(from)
    .fetch_one(pool)
    .await?)
}

/// How long raw summaries, hourly rollups, dead letters, node status
/// history and the per-org ingest counters (kept as long as rollups) are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub raw_days: i32,
    pub rollup_days: i32,
    pub dead_letter_days: i32,
    pub status_history_days: i32,
}

/// Rows deleted per statement by the retention of append-only tables: a
/// backlog of millions of rows is removed in short transactions, never in
/// one that holds locks and bloats the WAL at once.
pub const PRUNE_BATCH: i64 = 5_000;

/// Delete rows of `table` whose `column` is older than `days`, in batches.
async fn prune_batched(
    pool: &PgPool,
    table: &str,
    column: &str,
    days: i32,
) -> Result<u64, DbError> {
    let sql = format!(
        "DELETE FROM {table} WHERE ctid = ANY(ARRAY(
             SELECT ctid FROM {table} WHERE {column} < now() - make_interval(days => $1)
             LIMIT $2))"
    );
    let mut deleted = 0;
    loop {
        let n = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(days)
            .bind(PRUNE_BATCH)
            .execute(pool)
            .await?
            .rows_affected();
        deleted += n;
        if n < PRUNE_BATCH as u64 {
            return Ok(deleted);
        }
    }
}

/// Dead letters and node status history past their retention, in batches;
/// returns the rows deleted.
pub async fn history_prune(pool: &PgPool, r: Retention) -> Result<u64, DbError> {
    Ok(
        prune_batched(pool, "dead_letters", "received_at", r.dead_letter_days).await?
            + prune_batched(pool, "node_status_history", "at", r.status_history_days).await?
            + prune_batched(pool, "org_ingest_counters", "hour", r.rollup_days).await?,
    )
}

/// Delete what is older than the retention; returns the rows deleted.
pub async fn telemetry_prune(pool: &PgPool, r: Retention) -> Result<u64, DbError> {
    let mut deleted = 0;
    for table in [
        "node_slo_summaries",
        "node_usage_reports",
        "node_enforcement_summaries",
    ] {
        deleted += sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE received_at < now() - make_interval(days => $1)"
        )))
        .bind(r.raw_days)
        .execute(pool)
        .await?
        .rows_affected();
    }
    for table in [
        "usage_hourly",
        "enforcement_hourly",
        "enforcement_tenant_hourly",
        "slo_hourly",
    ] {
        deleted += sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE hour < now() - make_interval(days => $1)"
        )))
        .bind(r.rollup_days)
        .execute(pool)
        .await?
        .rows_affected();
    }
    Ok(deleted)
}
