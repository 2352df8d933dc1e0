//! The signing-key registry per org and its governance.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};

use crate::DbError;
use crate::outbox::NodeChange;

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct KeyRecord {
    pub key_id: String,
    pub org_id: String,
    pub label: String,
    pub status: String,
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
    pub rotate_by: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
    /// Active nodes reporting this key in their heartbeats.
    pub nodes_using: i64,
}

const COLUMNS: &str = "k.key_id, k.org_id, k.label, k.status, k.source, k.created_at, k.rotated_at,
     k.rotate_by, k.expires_at, k.last_used_at, k.updated_at, k.updated_by,
     (SELECT count(*) FROM nodes n WHERE n.org_id = k.org_id AND n.key_id = k.key_id
        AND n.status <> 'decommissioned') AS nodes_using";

pub async fn key_list(pool: &PgPool, org_id: &str) -> Result<Vec<KeyRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM signing_keys k WHERE k.org_id = $1 ORDER BY k.key_id"
    )))
    .bind(org_id)
    .fetch_all(pool)
    .await?)
}

/// One key of one org (ids are per org: two orgs may use the same id).
pub async fn key_get(
    pool: &PgPool,
    org_id: &str,
    key_id: &str,
) -> Result<Option<KeyRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM signing_keys k WHERE k.org_id = $1 AND k.key_id = $2"
    )))
    .bind(org_id)
    .bind(key_id)
    .fetch_optional(pool)
    .await?)
}

/// A key as registered here or as the `ritma_cloud` registry reports it.
#[derive(Debug, Clone)]
pub struct KeyUpsert<'a> {
    pub key_id: &'a str,
    pub org_id: &'a str,
    pub label: &'a str,
    pub status: &'a str,
    pub source: &'a str,
    pub rotated_at: Option<DateTime<Utc>>,
    pub rotate_by: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub updated_by: &'a str,
}

/// Insert, or update the org's key of that id; true when inserted, false
/// when updated or unchanged. Key ids are per org.
pub async fn key_upsert(
    tx: &mut Transaction<'_, Postgres>,
    k: &KeyUpsert<'_>,
) -> Result<bool, DbError> {
    let row: Option<(bool,)> = sqlx::query_as(
        "INSERT INTO signing_keys (key_id, org_id, label, status, source, rotated_at, rotate_by,
                                   expires_at, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (org_id, key_id) DO UPDATE SET label = EXCLUDED.label, status = EXCLUDED.status,
             source = EXCLUDED.source, rotated_at = EXCLUDED.rotated_at,
             rotate_by = EXCLUDED.rotate_by, expires_at = EXCLUDED.expires_at,
             updated_by = EXCLUDED.updated_by, updated_at = now()
         WHERE (signing_keys.label, signing_keys.status, signing_keys.rotated_at,
                signing_keys.rotate_by, signing_keys.expires_at)
               IS DISTINCT FROM
               (EXCLUDED.label, EXCLUDED.status, EXCLUDED.rotated_at, EXCLUDED.rotate_by,
                EXCLUDED.expires_at)
         RETURNING (xmax = 0)",
    )
    .bind(k.key_id)
    .bind(k.org_id)
    .bind(k.label)
    .bind(k.status)
    .bind(k.source)
    .bind(k.rotated_at)
    .bind(k.rotate_by)
    .bind(k.expires_at)
    .bind(k.updated_by)
    .fetch_optional(tx.as_mut())
    .await?;
    Ok(row.is_some_and(|r| r.0))
}

/// Bring every node's key warning in line with its key's status; the nodes
/// whose warning changed get a `key_warning` state change (same transaction).
pub async fn key_warnings_sync(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
) -> Result<Vec<NodeChange>, DbError> {
    let rows: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
        "UPDATE nodes n SET key_warning = w.warning
         FROM (SELECT n2.id, (SELECT k.status FROM signing_keys k
                              WHERE k.key_id = n2.key_id AND k.org_id = n2.org_id
                                AND k.status <> 'active') AS warning
               FROM nodes n2 WHERE n2.org_id = $1 AND n2.key_id IS NOT NULL
                 AND n2.status <> 'decommissioned') w
         WHERE n.id = w.id AND n.key_warning IS DISTINCT FROM w.warning
         RETURNING n.id, n.tenant_id, n.key_id, n.key_warning",
    )
    .bind(org_id)
    .fetch_all(tx.as_mut())
    .await?;
    let changes: Vec<NodeChange> = rows
        .into_iter()
        .map(|(node_id, tenant_id, key_id, warning)| NodeChange {
            org_id: org_id.to_owned(),
            tenant_id,
            node_id,
            payload: serde_json::json!({
                "kind": "key_warning", "key_id": key_id, "key_status": warning,
            }),
        })
        .collect();
    crate::outbox::changes_record(tx, &changes).await?;
    Ok(changes)
}

/// Keys past their expiry date become `expired`; returns the orgs touched.
pub async fn keys_expire(pool: &PgPool) -> Result<Vec<String>, DbError> {
    Ok(sqlx::query_scalar(
        "WITH expired AS (
             UPDATE signing_keys SET status = 'expired', updated_at = now(), updated_by = 'system'
             WHERE status = 'active' AND expires_at <= now()
             RETURNING org_id
         )
         SELECT DISTINCT org_id FROM expired",
    )
    .fetch_all(pool)
    .await?)
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct KeySummary {
    pub active: i64,
    pub revoked: i64,
    pub compromised: i64,
    pub expired: i64,
    /// Active keys whose rotation date has passed.
    pub rotation_due: i64,
    pub nodes_with_warnings: i64,
}

pub async fn key_summary(pool: &PgPool, org_id: &str) -> Result<KeySummary, DbError> {
    let (active, revoked, compromised, expired, rotation_due, nodes_with_warnings) =
        sqlx::query_as::<_, (i64, i64, i64, i64, i64, i64)>(
            "SELECT count(*) FILTER (WHERE status = 'active'),
                    count(*) FILTER (WHERE status = 'revoked'),
                    count(*) FILTER (WHERE status = 'compromised'),
                    count(*) FILTER (WHERE status = 'expired'),
                    count(*) FILTER (WHERE status = 'active' AND rotate_by <= now()),
                    (SELECT count(*) FROM nodes WHERE org_id = $1 AND key_warning IS NOT NULL)
             FROM signing_keys WHERE org_id = $1",
        )
        .bind(org_id)
        .fetch_one(pool)
        .await?;
    Ok(KeySummary {
        active,
        revoked,
        compromised,
        expired,
        rotation_due,
        nodes_with_warnings,
    })
}
