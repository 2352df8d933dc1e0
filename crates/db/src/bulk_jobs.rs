//! Bulk jobs and their per-node results (see the migration `bulk_jobs`).
//! The worker's page steps take the caller's transaction, which holds the
//! job row locked and checks the lease, so each page commits whole or not
//! at all.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::DbError;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct BulkJobRecord {
    pub id: Uuid,
    pub org_id: String,
    pub action: String,
    pub params: Value,
    pub selection: Value,
    pub idempotency_key: Option<String>,
    pub state: String,
    pub expanded: bool,
    #[serde(skip)]
    pub expand_cursor: Option<String>,
    pub total: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub skipped: i32,
    pub error: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub lease_token: Option<Uuid>,
}

const COLUMNS: &str = "id, org_id, action, params, selection, idempotency_key, state, expanded,
    expand_cursor, total, succeeded, failed, skipped, error, created_by, created_at, started_at,
    finished_at, lease_token";

pub struct NewBulkJob<'a> {
    pub org_id: &'a str,
    pub action: &'a str,
    pub params: &'a Value,
    pub selection: &'a Value,
    pub idempotency_key: Option<&'a str>,
    pub created_by: &'a str,
    pub source: Option<&'a str>,
    /// The expected count (a filter's matches at creation); explicit ids
    /// set it from their items.
    pub total: i32,
}

/// Serialises job creation per org, so the cap on active jobs holds under
/// concurrent requests (released at commit).
pub async fn bulk_job_org_lock(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
) -> Result<(), DbError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('bulk_jobs:' || $1, 0))")
        .bind(org_id)
        .execute(tx.as_mut())
        .await?;
    Ok(())
}

/// Jobs of the org that are pending or running.
pub async fn bulk_jobs_active_count(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM bulk_jobs WHERE org_id = $1 AND state IN ('pending', 'running')",
    )
    .bind(org_id)
    .fetch_one(tx.as_mut())
    .await?)
}

pub async fn bulk_job_by_key(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
    key: &str,
) -> Result<Option<BulkJobRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM bulk_jobs WHERE org_id = $1 AND idempotency_key = $2"
    )))
    .bind(org_id)
    .bind(key)
    .fetch_optional(tx.as_mut())
    .await?)
}

pub async fn bulk_job_create(
    tx: &mut Transaction<'_, Postgres>,
    j: &NewBulkJob<'_>,
) -> Result<BulkJobRecord, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO bulk_jobs (id, org_id, action, params, selection, idempotency_key,
                                created_by, source, total)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
    )))
    .bind(Uuid::new_v4())
    .bind(j.org_id)
    .bind(j.action)
    .bind(j.params)
    .bind(j.selection)
    .bind(j.idempotency_key)
    .bind(j.created_by)
    .bind(j.source)
    .bind(j.total)
    .fetch_one(tx.as_mut())
    .await?)
}

/// The items of an explicit selection: the org's nodes pending, any other
/// id (another org's, unknown) skipped at once and never acted on. The job
/// is then fully expanded.
pub async fn bulk_job_items_insert_ids(
    tx: &mut Transaction<'_, Postgres>,
    job: &BulkJobRecord,
    ids: &[String],
) -> Result<BulkJobRecord, DbError> {
    sqlx::query(
        "INSERT INTO bulk_job_items (job_id, node_id, state, detail, done_at)
         SELECT $1, i, CASE WHEN n.id IS NULL THEN 'skipped' ELSE 'pending' END,
                CASE WHEN n.id IS NULL THEN 'no such node in this org' END,
                CASE WHEN n.id IS NULL THEN now() END
         FROM unnest($3::text[]) AS i LEFT JOIN nodes n ON n.id = i AND n.org_id = $2
         ON CONFLICT DO NOTHING",
    )
    .bind(job.id)
    .bind(&job.org_id)
    .bind(ids)
    .execute(tx.as_mut())
    .await?;
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE bulk_jobs SET expanded = true,
             total = (SELECT count(*) FROM bulk_job_items WHERE job_id = $1),
             skipped = (SELECT count(*) FROM bulk_job_items WHERE job_id = $1 AND state = 'skipped')
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(job.id)
    .fetch_one(tx.as_mut())
    .await?)
}

pub async fn bulk_job_get(
    pool: &PgPool,
    org_id: &str,
    id: Uuid,
) -> Result<Option<BulkJobRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM bulk_jobs WHERE org_id = $1 AND id = $2"
    )))
    .bind(org_id)
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// The org's most recent jobs, newest first; an explicit selection is shown
/// as its count of ids (up to 10,000 each: the list stays small).
pub async fn bulk_job_list(
    pool: &PgPool,
    org_id: &str,
    limit: i64,
) -> Result<Vec<BulkJobRecord>, DbError> {
    let columns = COLUMNS.replacen(
        "selection,",
        "CASE WHEN selection ? 'ids'
              THEN jsonb_build_object('ids', jsonb_array_length(selection->'ids'))
              ELSE selection END AS selection,",
        1,
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {columns} FROM bulk_jobs WHERE org_id = $1 ORDER BY created_at DESC LIMIT $2"
    )))
    .bind(org_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct BulkJobItem {
    pub node_id: String,
    pub state: String,
    pub detail: Option<String>,
    pub done_at: Option<DateTime<Utc>>,
}

/// One keyset page of a job's results, in node id order.
pub async fn bulk_job_items_list(
    pool: &PgPool,
    job_id: Uuid,
    state: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<BulkJobItem>, DbError> {
    Ok(sqlx::query_as(
        "SELECT node_id, state, detail, done_at FROM bulk_job_items
         WHERE job_id = $1 AND ($2::text IS NULL OR state = $2)
           AND ($3::text IS NULL OR node_id > $3)
         ORDER BY node_id LIMIT $4",
    )
    .bind(job_id)
    .bind(state)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Lease up to `limit` jobs that are pending, or running with a lapsed
/// lease (their controller stopped): each gets a new lease token, so a
/// worker that lost its lease can no longer commit a page.
pub async fn bulk_jobs_claim(
    pool: &PgPool,
    limit: i64,
    lease_secs: f64,
) -> Result<Vec<BulkJobRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE bulk_jobs SET state = 'running', lease_token = gen_random_uuid(),
             lease_until = now() + make_interval(secs => $2),
             started_at = COALESCE(started_at, now())
         WHERE id IN (
             SELECT id FROM bulk_jobs
             WHERE state IN ('pending', 'running') AND (lease_until IS NULL OR lease_until < now())
             ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING {COLUMNS}"
    )))
    .bind(limit)
    .bind(lease_secs)
    .fetch_all(pool)
    .await?)
}

/// Lock the job for one page, if `token` still holds its lease; renews it.
pub async fn bulk_job_lock_leased(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    token: Uuid,
    lease_secs: f64,
) -> Result<Option<BulkJobRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE bulk_jobs SET lease_until = now() + make_interval(secs => $3)
         WHERE id = $1 AND lease_token = $2 AND state = 'running'
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(token)
    .bind(lease_secs)
    .fetch_optional(tx.as_mut())
    .await?)
}

/// Add one page of a filter selection as pending items and move the cursor
/// past it; `last` marks the selection fully expanded (and the total, till
/// then the count at creation, becomes exact).
pub async fn bulk_job_expand(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    node_ids: &[String],
    last: bool,
) -> Result<(), DbError> {
    let added = sqlx::query(
        "INSERT INTO bulk_job_items (job_id, node_id)
         SELECT $1, i FROM unnest($2::text[]) AS i ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(node_ids)
    .execute(tx.as_mut())
    .await?
    .rows_affected();
    sqlx::query(
        "UPDATE bulk_jobs SET expand_cursor = COALESCE($2, expand_cursor), expanded = $3,
             total = CASE WHEN $3 THEN (SELECT count(*) FROM bulk_job_items WHERE job_id = $1)
                          ELSE total END
         WHERE id = $1",
    )
    .bind(id)
    .bind(node_ids.last())
    .bind(last)
    .execute(tx.as_mut())
    .await?;
    tracing::debug!(job = %id, added, last, "bulk job selection expanded by a page");
    Ok(())
}

/// The next pending node ids of a job, in id order.
pub async fn bulk_job_items_pending(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    limit: i64,
) -> Result<Vec<String>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT node_id FROM bulk_job_items WHERE job_id = $1 AND state = 'pending'
         ORDER BY node_id LIMIT $2",
    )
    .bind(id)
    .bind(limit)
    .fetch_all(tx.as_mut())
    .await?)
}

/// One node's outcome in a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemOutcome {
    pub node_id: String,
    /// `succeeded`, `failed` or `skipped`.
    pub state: &'static str,
    pub detail: Option<String>,
}

/// Record a page's outcomes and add them to the job's counts.
pub async fn bulk_job_items_record(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    outcomes: &[ItemOutcome],
) -> Result<(), DbError> {
    let ids: Vec<&str> = outcomes.iter().map(|o| o.node_id.as_str()).collect();
    let states: Vec<&str> = outcomes.iter().map(|o| o.state).collect();
    let details: Vec<Option<&str>> = outcomes.iter().map(|o| o.detail.as_deref()).collect();
    sqlx::query(
        "UPDATE bulk_job_items i SET state = o.state, detail = o.detail, done_at = now()
         FROM unnest($2::text[], $3::text[], $4::text[]) AS o(node_id, state, detail)
         WHERE i.job_id = $1 AND i.node_id = o.node_id AND i.state = 'pending'",
    )
    .bind(id)
    .bind(&ids)
    .bind(&states)
    .bind(&details)
    .execute(tx.as_mut())
    .await?;
    let count = |s: &str| outcomes.iter().filter(|o| o.state == s).count() as i32;
    sqlx::query(
        "UPDATE bulk_jobs SET succeeded = succeeded + $2, failed = failed + $3,
             skipped = skipped + $4
         WHERE id = $1",
    )
    .bind(id)
    .bind(count("succeeded"))
    .bind(count("failed"))
    .bind(count("skipped"))
    .execute(tx.as_mut())
    .await?;
    Ok(())
}

/// End a job: `done`, or `failed` with why; the lease is released.
pub async fn bulk_job_finish(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    state: &str,
    error: Option<&str>,
) -> Result<BulkJobRecord, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE bulk_jobs SET state = $2, error = $3, finished_at = now(), lease_until = NULL,
             lease_token = NULL
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(state)
    .bind(error)
    .fetch_one(tx.as_mut())
    .await?)
}

/// Give up a lease (shutdown): another worker may take the job at once.
pub async fn bulk_job_release(pool: &PgPool, id: Uuid, token: Uuid) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE bulk_jobs SET lease_until = NULL WHERE id = $1 AND lease_token = $2
           AND state = 'running'",
    )
    .bind(id)
    .bind(token)
    .execute(pool)
    .await?;
    Ok(())
}
