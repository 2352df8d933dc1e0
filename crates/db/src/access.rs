//! Stored role grants and issued integrator credentials.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::DbError;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct RoleGrant {
    pub org_id: String,
    pub subject: String,
    pub role: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub granted_by: String,
    pub granted_at: DateTime<Utc>,
}

/// Grants of `subject` that have not expired, in every org.
pub async fn role_grants_active(pool: &PgPool, subject: &str) -> Result<Vec<RoleGrant>, DbError> {
    Ok(sqlx::query_as(
        "SELECT * FROM role_grants WHERE subject = $1 AND (expires_at IS NULL OR expires_at > now())",
    )
    .bind(subject)
    .fetch_all(pool)
    .await?)
}

pub async fn role_grants_list(pool: &PgPool, org_id: &str) -> Result<Vec<RoleGrant>, DbError> {
    Ok(
        sqlx::query_as("SELECT * FROM role_grants WHERE org_id = $1 ORDER BY subject, role")
            .bind(org_id)
            .fetch_all(pool)
            .await?,
    )
}

pub async fn role_grant_upsert(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    g: &RoleGrant,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO role_grants (org_id, subject, role, expires_at, granted_by) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (org_id, subject, role) DO UPDATE SET expires_at = EXCLUDED.expires_at,
             granted_by = EXCLUDED.granted_by, granted_at = now()",
    )
    .bind(&g.org_id)
    .bind(&g.subject)
    .bind(&g.role)
    .bind(g.expires_at)
    .bind(&g.granted_by)
    .execute(tx.as_mut())
    .await?;
    Ok(())
}

pub async fn role_grant_delete(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    org_id: &str,
    subject: &str,
    role: &str,
) -> Result<bool, DbError> {
    let done =
        sqlx::query("DELETE FROM role_grants WHERE org_id = $1 AND subject = $2 AND role = $3")
            .bind(org_id)
            .bind(subject)
            .bind(role)
            .execute(tx.as_mut())
            .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct IntegratorCredential {
    pub public_key: String,
    pub org_id: String,
    pub tenant_id: Option<String>,
    pub name: String,
    pub subjects: sqlx::types::Json<Vec<String>>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// What [`integrator_upsert`] did.
#[derive(Debug)]
pub enum IntegratorUpsert {
    /// Stored; `previous` is the org's earlier entry for that key, if any.
    Stored {
        previous: Option<IntegratorCredential>,
    },
    /// The key is issued in another org: nothing changed.
    OtherOrg,
}

/// Issue (or re-issue) a credential: a public key belongs to one org. A
/// re-issue in the same org replaces the entry (name, tenant, subjects,
/// expiry) and clears its revocation.
pub async fn integrator_upsert(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    c: &IntegratorCredential,
) -> Result<IntegratorUpsert, DbError> {
    let previous: Option<IntegratorCredential> =
        sqlx::query_as("SELECT * FROM integrator_credentials WHERE public_key = $1 FOR UPDATE")
            .bind(&c.public_key)
            .fetch_optional(tx.as_mut())
            .await?;
    if previous.as_ref().is_some_and(|p| p.org_id != c.org_id) {
        return Ok(IntegratorUpsert::OtherOrg);
    }
    let stored = sqlx::query(
        "INSERT INTO integrator_credentials (public_key, org_id, tenant_id, name, subjects, expires_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (public_key) DO UPDATE SET tenant_id = EXCLUDED.tenant_id,
             name = EXCLUDED.name, subjects = EXCLUDED.subjects,
             expires_at = EXCLUDED.expires_at, revoked_at = NULL,
             created_by = EXCLUDED.created_by, created_at = now()
         WHERE integrator_credentials.org_id = EXCLUDED.org_id",
    )
    .bind(&c.public_key)
    .bind(&c.org_id)
    .bind(&c.tenant_id)
    .bind(&c.name)
    .bind(&c.subjects)
    .bind(c.expires_at)
    .bind(&c.created_by)
    .execute(tx.as_mut())
    .await?;
    // Another org inserted the key since the read above.
    if stored.rows_affected() == 0 {
        return Ok(IntegratorUpsert::OtherOrg);
    }
    Ok(IntegratorUpsert::Stored { previous })
}

/// True when `public_key` was issued as an integrator's (in any org).
pub async fn integrator_key_in_use(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    public_key: &str,
) -> Result<bool, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM integrator_credentials WHERE public_key = $1)",
    )
    .bind(public_key)
    .fetch_one(tx.as_mut())
    .await?)
}

pub async fn integrator_list(
    pool: &PgPool,
    org_id: &str,
) -> Result<Vec<IntegratorCredential>, DbError> {
    Ok(sqlx::query_as(
        "SELECT * FROM integrator_credentials WHERE org_id = $1 ORDER BY created_at DESC",
    )
    .bind(org_id)
    .fetch_all(pool)
    .await?)
}

/// Mark revoked; returns the credential when it existed in the org.
pub async fn integrator_revoke(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    org_id: &str,
    public_key: &str,
) -> Result<Option<IntegratorCredential>, DbError> {
    Ok(sqlx::query_as(
        "UPDATE integrator_credentials SET revoked_at = COALESCE(revoked_at, now())
         WHERE org_id = $1 AND public_key = $2 RETURNING *",
    )
    .bind(org_id)
    .bind(public_key)
    .fetch_optional(tx.as_mut())
    .await?)
}
