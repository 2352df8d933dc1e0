use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::DbError;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRecord {
    pub id: Uuid,
    pub org_id: String,
    pub tenant_id: String,
    pub labels: sqlx::types::Json<BTreeMap<String, String>>,
    pub max_uses: i32,
    pub uses: i32,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, org_id, tenant_id, labels, max_uses, uses, expires_at, revoked_at, created_by, created_at";

pub struct NewToken<'a> {
    pub id: Uuid,
    pub org_id: &'a str,
    pub tenant_id: &'a str,
    pub secret_hash: &'a [u8],
    pub labels: &'a BTreeMap<String, String>,
    pub max_uses: i32,
    pub expires_at: DateTime<Utc>,
    pub created_by: &'a str,
}

pub async fn token_insert(pool: &PgPool, t: &NewToken<'_>) -> Result<TokenRecord, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO enrollment_tokens (id, org_id, tenant_id, secret_hash, labels, max_uses, expires_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    )))
    .bind(t.id)
    .bind(t.org_id)
    .bind(t.tenant_id)
    .bind(t.secret_hash)
    .bind(sqlx::types::Json(t.labels))
    .bind(t.max_uses)
    .bind(t.expires_at)
    .bind(t.created_by)
    .fetch_one(pool)
    .await?)
}

pub async fn token_list(pool: &PgPool, org_id: &str) -> Result<Vec<TokenRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM enrollment_tokens WHERE org_id = $1 ORDER BY created_at DESC LIMIT 500"
    )))
    .bind(org_id)
    .fetch_all(pool)
    .await?)
}

/// Revoke; returns false when no such token exists in the org.
pub async fn token_revoke(pool: &PgPool, org_id: &str, id: Uuid) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE enrollment_tokens SET revoked_at = COALESCE(revoked_at, now())
         WHERE org_id = $1 AND id = $2",
    )
    .bind(org_id)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Lock the token with this secret hash for the enrollment transaction.
pub async fn token_lock_by_hash(
    tx: &mut Transaction<'_, Postgres>,
    secret_hash: &[u8],
) -> Result<Option<TokenRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM enrollment_tokens WHERE secret_hash = $1 FOR UPDATE"
    )))
    .bind(secret_hash)
    .fetch_optional(&mut **tx)
    .await?)
}

pub async fn token_use(tx: &mut Transaction<'_, Postgres>, id: Uuid) -> Result<(), DbError> {
    sqlx::query("UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
