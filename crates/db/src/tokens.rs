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

/// A token by the hash of its secret, without locking it: enrollments check
/// it first and take their use at the end ([`token_use_take`]), so they do
/// not queue behind each other for the whole of their transactions.
pub async fn token_get_by_hash(
    tx: &mut Transaction<'_, Postgres>,
    secret_hash: &[u8],
) -> Result<Option<TokenRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM enrollment_tokens WHERE secret_hash = $1"
    )))
    .bind(secret_hash)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Whether a token with this secret hash exists (in any state): the
/// enrollment rate limiter charges refusals of a real token to that token.
pub async fn token_exists_by_hash(pool: &PgPool, secret_hash: &[u8]) -> Result<bool, DbError> {
    Ok(
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM enrollment_tokens WHERE secret_hash = $1)",
        )
        .bind(secret_hash)
        .fetch_one(pool)
        .await?,
    )
}

/// Take one use of a token if it still has one and is still valid; false if
/// not. The row stays locked until the transaction ends, and a concurrent
/// taker re-checks the condition once it gets the row (READ COMMITTED), so
/// a token never gives more than `max_uses`.
pub async fn token_use_take(tx: &mut Transaction<'_, Postgres>, id: Uuid) -> Result<bool, DbError> {
    let taken = sqlx::query(
        "UPDATE enrollment_tokens SET uses = uses + 1
         WHERE id = $1 AND uses < max_uses AND revoked_at IS NULL AND expires_at > now()",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(taken.rows_affected() == 1)
}

/// Enrollments of one public key, one at a time (a node retrying its
/// request gets its node back rather than a duplicate-key error); other
/// keys are not held up.
pub async fn token_enrollment_key_lock(
    tx: &mut Transaction<'_, Postgres>,
    public_key: &str,
) -> Result<(), DbError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('enroll:' || $1, 0))")
        .bind(public_key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
