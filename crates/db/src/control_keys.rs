//! Org control keys (see migrations/20261207200001_control_keys.sql): the
//! active key per org, created on first use, and the rotation chain.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};

use crate::DbError;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ControlKeyRecord {
    pub org_id: String,
    pub public_key: String,
    pub seed_enc: Vec<u8>,
    pub previous_key: Option<String>,
    pub endorsement: Option<String>,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "org_id, public_key, seed_enc, previous_key, endorsement, created_at, retired_at";

pub async fn control_key_active(
    pool: &PgPool,
    org_id: &str,
) -> Result<Option<ControlKeyRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM org_control_keys WHERE org_id = $1 AND retired_at IS NULL"
    )))
    .bind(org_id)
    .fetch_optional(pool)
    .await?)
}

/// Store an org's first key, unless another controller stored one first:
/// either way, the org's active key is returned.
pub async fn control_key_insert_first(
    pool: &PgPool,
    org_id: &str,
    public_key: &str,
    seed_enc: &[u8],
) -> Result<ControlKeyRecord, DbError> {
    sqlx::query(
        "INSERT INTO org_control_keys (org_id, public_key, seed_enc) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(org_id)
    .bind(public_key)
    .bind(seed_enc)
    .execute(pool)
    .await?;
    control_key_active(pool, org_id)
        .await?
        .ok_or_else(|| DbError::Corrupt(format!("org {org_id} has no active control key")))
}

/// The active key, locked for a rotation.
pub async fn control_key_lock_active(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
) -> Result<Option<ControlKeyRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM org_control_keys WHERE org_id = $1 AND retired_at IS NULL
         FOR UPDATE"
    )))
    .bind(org_id)
    .fetch_optional(tx.as_mut())
    .await?)
}

/// Retire the active key and make `public_key` (endorsed by it) active.
pub async fn control_key_rotate(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
    previous_key: &str,
    public_key: &str,
    seed_enc: &[u8],
    endorsement: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE org_control_keys SET retired_at = now()
         WHERE org_id = $1 AND public_key = $2 AND retired_at IS NULL",
    )
    .bind(org_id)
    .bind(previous_key)
    .execute(tx.as_mut())
    .await?;
    sqlx::query(
        "INSERT INTO org_control_keys (org_id, public_key, seed_enc, previous_key, endorsement)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(org_id)
    .bind(public_key)
    .bind(seed_enc)
    .bind(previous_key)
    .bind(endorsement)
    .execute(tx.as_mut())
    .await?;
    Ok(())
}

/// Every rotation of an org, oldest first: (previous, key, endorsement).
pub async fn control_key_chain(
    pool: &PgPool,
    org_id: &str,
) -> Result<Vec<(String, String, String)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT previous_key, public_key, endorsement FROM org_control_keys
         WHERE org_id = $1 AND previous_key IS NOT NULL ORDER BY created_at",
    )
    .bind(org_id)
    .fetch_all(pool)
    .await?)
}
