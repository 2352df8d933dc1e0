//! Connector configurations per node and their last dry run.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};

use crate::DbError;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ConnectorRecord {
    pub id: String,
    pub node_id: String,
    pub tenant_id: String,
    pub kind: String,
    pub config: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_run: Option<serde_json::Value>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_outcome: Option<String>,
    pub node_hostname: String,
    pub node_status: String,
}

const COLUMNS: &str = "c.id, c.node_id, n.tenant_id, c.kind, c.config, c.created_at, c.updated_at,
     c.last_run, c.last_run_at, c.last_outcome, n.hostname AS node_hostname, n.status AS node_status";

/// Create or replace a connector; `true` when it was created.
pub async fn connector_upsert(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
    node_id: &str,
    id: &str,
    kind: &str,
    config: &serde_json::Value,
) -> Result<bool, DbError> {
    let created: bool = sqlx::query_scalar(
        "INSERT INTO node_connectors (node_id, id, org_id, kind, config)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (node_id, id) DO UPDATE SET kind = EXCLUDED.kind, config = EXCLUDED.config,
             updated_at = now(),
             -- A different configuration makes the last run meaningless.
             last_run = NULL, last_run_at = NULL, last_outcome = NULL
         RETURNING (xmax = 0)",
    )
    .bind(node_id)
    .bind(id)
    .bind(org_id)
    .bind(kind)
    .bind(config)
    .fetch_one(tx.as_mut())
    .await?;
    Ok(created)
}

pub async fn connector_get(
    pool: &PgPool,
    org_id: &str,
    node_id: &str,
    id: &str,
) -> Result<Option<ConnectorRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM node_connectors c JOIN nodes n ON n.id = c.node_id
         WHERE c.org_id = $1 AND c.node_id = $2 AND c.id = $3"
    )))
    .bind(org_id)
    .bind(node_id)
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

pub async fn connector_delete(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
    node_id: &str,
    id: &str,
) -> Result<bool, DbError> {
    let done =
        sqlx::query("DELETE FROM node_connectors WHERE org_id = $1 AND node_id = $2 AND id = $3")
            .bind(org_id)
            .bind(node_id)
            .bind(id)
            .execute(tx.as_mut())
            .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Default, Clone)]
pub struct ConnectorFilter {
    pub node_id: Option<String>,
    pub kind: Option<String>,
    pub outcome: Option<String>,
}

/// Connectors of an org (the cross-node view), or of one node.
pub async fn connector_list(
    pool: &PgPool,
    org_id: &str,
    f: &ConnectorFilter,
) -> Result<Vec<ConnectorRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM node_connectors c JOIN nodes n ON n.id = c.node_id
         WHERE c.org_id = $1 AND ($2::text IS NULL OR c.node_id = $2)
           AND ($3::text IS NULL OR c.kind = $3)
           AND ($4::text IS NULL OR COALESCE(c.last_outcome, 'never') = $4)
         ORDER BY c.node_id, c.id LIMIT 1000"
    )))
    .bind(org_id)
    .bind(&f.node_id)
    .bind(&f.kind)
    .bind(&f.outcome)
    .fetch_all(pool)
    .await?)
}

/// Keep a dry run's report as the connector's last run.
pub async fn connector_record_run(
    pool: &PgPool,
    node_id: &str,
    id: &str,
    report: &serde_json::Value,
    outcome: &str,
    at: DateTime<Utc>,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE node_connectors SET last_run = $3, last_outcome = $4, last_run_at = $5
         WHERE node_id = $1 AND id = $2",
    )
    .bind(node_id)
    .bind(id)
    .bind(report)
    .bind(outcome)
    .bind(at)
    .execute(pool)
    .await?;
    Ok(())
}

/// The org's connector allow-list as stored (None: never set).
pub async fn connector_allow_list_get(
    pool: &PgPool,
    org_id: &str,
) -> Result<Option<serde_json::Value>, DbError> {
    Ok(
        sqlx::query_scalar("SELECT allow_list FROM connector_allow_lists WHERE org_id = $1")
            .bind(org_id)
            .fetch_optional(pool)
            .await?,
    )
}

/// Set the org's connector allow-list; returns the one it replaces.
pub async fn connector_allow_list_put(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
    allow_list: &serde_json::Value,
) -> Result<Option<serde_json::Value>, DbError> {
    let before: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT allow_list FROM connector_allow_lists WHERE org_id = $1 FOR UPDATE",
    )
    .bind(org_id)
    .fetch_optional(tx.as_mut())
    .await?;
    sqlx::query(
        "INSERT INTO connector_allow_lists (org_id, allow_list) VALUES ($1, $2)
         ON CONFLICT (org_id) DO UPDATE SET allow_list = EXCLUDED.allow_list, updated_at = now()",
    )
    .bind(org_id)
    .bind(allow_list)
    .execute(tx.as_mut())
    .await?;
    Ok(before)
}
