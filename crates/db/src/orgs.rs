use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::DbError;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgRecord {
    pub id: String,
    pub name: String,
    pub nats_account_public_key: String,
    pub nats_account_seed_enc: Vec<u8>,
    pub nats_signing_public_key: String,
    pub nats_signing_seed_enc: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

pub async fn org_insert(pool: &PgPool, org: &OrgRecord) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO orgs (id, name, nats_account_public_key, nats_account_seed_enc,
                           nats_signing_public_key, nats_signing_seed_enc)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&org.id)
    .bind(&org.name)
    .bind(&org.nats_account_public_key)
    .bind(&org.nats_account_seed_enc)
    .bind(&org.nats_signing_public_key)
    .bind(&org.nats_signing_seed_enc)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn org_get(pool: &PgPool, id: &str) -> Result<Option<OrgRecord>, DbError> {
    Ok(sqlx::query_as("SELECT * FROM orgs WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

pub async fn org_list(pool: &PgPool) -> Result<Vec<OrgRecord>, DbError> {
    Ok(sqlx::query_as("SELECT * FROM orgs ORDER BY id")
        .fetch_all(pool)
        .await?)
}

/// Revocations are pushed this long past the last expiry of the key's
/// credentials, against clock skew between the controller and the broker.
pub const REVOCATION_PRUNE_MARGIN_SECS: i64 = 600;

/// Revoked user keys of an org that still matter, with the revocation time
/// (unix seconds): those whose credentials issued before the revocation may
/// not all have expired yet (or never expire).
pub async fn org_revocations(
    pool: &PgPool,
    org_id: &str,
) -> Result<BTreeMap<String, i64>, DbError> {
    let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT public_key, revoked_at FROM org_revocations
         WHERE org_id = $1
           AND (keep_until IS NULL OR keep_until > now() - make_interval(secs => $2))",
    )
    .bind(org_id)
    .bind(REVOCATION_PRUNE_MARGIN_SECS as f64)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(k, at)| (k, at.timestamp()))
        .collect())
}

/// When `public_key` was last revoked in the org's account (None: never).
pub async fn org_revocation_at(
    pool: &PgPool,
    org_id: &str,
    public_key: &str,
) -> Result<Option<DateTime<Utc>>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT revoked_at FROM org_revocations WHERE org_id = $1 AND public_key = $2",
    )
    .bind(org_id)
    .bind(public_key)
    .fetch_optional(pool)
    .await?)
}

/// Revoke `public_key` from now: kept in the account JWT until the latest
/// expiry of the credentials issued to it so far (for ever when one never
/// expires or none is on record).
pub async fn org_revocation_insert(
    pool: &PgPool,
    org_id: &str,
    public_key: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO org_revocations (org_id, public_key, keep_until)
         VALUES ($1, $2, (SELECT expires_at FROM credential_expiries
                          WHERE org_id = $1 AND public_key = $2))
         ON CONFLICT (org_id, public_key) DO UPDATE
             SET revoked_at = now(), keep_until = EXCLUDED.keep_until",
    )
    .bind(org_id)
    .bind(public_key)
    .execute(pool)
    .await?;
    Ok(())
}

/// [`org_revocation_insert`] for many keys, inside the caller's transaction
/// (a bulk decommission: the revocations exist exactly when the change does).
pub async fn org_revocations_insert(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    org_id: &str,
    public_keys: &[String],
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO org_revocations (org_id, public_key, keep_until)
         SELECT $1, k, (SELECT expires_at FROM credential_expiries e
                        WHERE e.org_id = $1 AND e.public_key = k)
         FROM unnest($2::text[]) AS k
         ON CONFLICT (org_id, public_key) DO UPDATE
             SET revoked_at = now(), keep_until = EXCLUDED.keep_until",
    )
    .bind(org_id)
    .bind(public_keys)
    .execute(tx.as_mut())
    .await?;
    Ok(())
}

/// Remember that a credential for `public_key` valid until `expires_at`
/// (None: never) was issued in the org; call before handing it out.
pub async fn credential_expiry_record(
    pool: &PgPool,
    org_id: &str,
    public_key: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO credential_expiries (org_id, public_key, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (org_id, public_key) DO UPDATE SET expires_at =
             CASE WHEN credential_expiries.expires_at IS NULL OR EXCLUDED.expires_at IS NULL
                  THEN NULL
                  ELSE GREATEST(credential_expiries.expires_at, EXCLUDED.expires_at) END
         WHERE credential_expiries.expires_at IS NOT NULL
           AND credential_expiries.expires_at IS DISTINCT FROM EXCLUDED.expires_at",
    )
    .bind(org_id)
    .bind(public_key)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}
