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

pub async fn slo_buckets(
    pool: &PgPool,
    node_id: &str,
    from: DateTime<Utc>,
) -> Result<Vec<SloBucket>, DbError> {
    Ok(sqlx::query_as(
        "SELECT hour, component, operation, outcome, count FROM slo_hourly
         WHERE node_id = $1 AND hour >= $2 ORDER BY hour, component, operation, outcome",
    )
    .bind(node_id)
    .bind(from)
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

pub async fn enforcement_buckets(
    pool: &PgPool,
    node_id: &str,
    from: DateTime<Utc>,
) -> Result<Vec<EnforcementBucket>, DbError> {
    Ok(sqlx::query_as(
        "SELECT hour, allow_count AS allow, deny_count AS deny, throttle_count AS throttle,
                isolate_count AS isolate
         FROM enforcement_hourly WHERE node_id = $1 AND hour >= $2 ORDER BY hour",
    )
    .bind(node_id)
    .bind(from)
    .fetch_all(pool)
    .await?)
}

/// How long raw summaries and hourly rollups are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub raw_days: i32,
    pub rollup_days: i32,
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
    for table in ["usage_hourly", "enforcement_hourly", "slo_hourly"] {
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
