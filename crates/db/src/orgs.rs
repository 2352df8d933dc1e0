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

/// Revoked user keys of an org, with the revocation time (unix seconds).
pub async fn org_revocations(
    pool: &PgPool,
    org_id: &str,
) -> Result<BTreeMap<String, i64>, DbError> {
    let rows: Vec<(String, DateTime<Utc>)> =
        sqlx::query_as("SELECT public_key, revoked_at FROM org_revocations WHERE org_id = $1")
            .bind(org_id)
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(k, at)| (k, at.timestamp()))
        .collect())
}

pub async fn org_revocation_insert(
    pool: &PgPool,
    org_id: &str,
    public_key: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO org_revocations (org_id, public_key) VALUES ($1, $2)
         ON CONFLICT (org_id, public_key) DO UPDATE SET revoked_at = now()",
    )
    .bind(org_id)
    .bind(public_key)
    .execute(pool)
    .await?;
    Ok(())
}
