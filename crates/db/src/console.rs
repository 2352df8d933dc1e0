//! The console's shared state: sessions and pending single-sign-on starts,
//! so that any console replica can serve any browser. Keys are SHA-256
//! hashes of the browser's secrets (session id, sign-in `state`); the
//! caller hashes, this module never sees the secrets.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};

use crate::DbError;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConsoleSessionRow {
    /// The tokens, sealed by the console (opaque here).
    pub sealed: Vec<u8>,
    pub token_expires: Option<DateTime<Utc>>,
    pub renewable: bool,
    pub user_name: String,
    pub org: String,
    /// The orgs the person may switch to: `[{"id":..,"name":..}]`.
    pub orgs: serde_json::Value,
    pub expires_at: DateTime<Utc>,
    pub generation: i64,
}

const COLUMNS: &str =
    "sealed, token_expires, renewable, user_name, org, orgs, expires_at, generation";

pub struct NewConsoleSession<'a> {
    pub id_hash: &'a [u8],
    pub sealed: &'a [u8],
    pub token_expires: Option<DateTime<Utc>>,
    pub renewable: bool,
    pub user_name: &'a str,
    pub org: &'a str,
    pub orgs: serde_json::Value,
    pub expires_at: DateTime<Utc>,
}

pub async fn console_session_insert(
    pool: &PgPool,
    s: &NewConsoleSession<'_>,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO console_sessions
           (id_hash, sealed, token_expires, renewable, user_name, org, orgs, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(s.id_hash)
    .bind(s.sealed)
    .bind(s.token_expires)
    .bind(s.renewable)
    .bind(s.user_name)
    .bind(s.org)
    .bind(&s.orgs)
    .bind(s.expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// The session, unless it expired or was deleted.
pub async fn console_session_get(
    pool: &PgPool,
    id_hash: &[u8],
) -> Result<Option<ConsoleSessionRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM console_sessions WHERE id_hash = $1 AND expires_at > now()"
    )))
    .bind(id_hash)
    .fetch_optional(pool)
    .await?)
}

/// Show `org`, if it is one of the session's orgs. False otherwise (or no session).
pub async fn console_session_set_org(
    pool: &PgPool,
    id_hash: &[u8],
    org: &str,
) -> Result<bool, DbError> {
    Ok(sqlx::query(
        "UPDATE console_sessions SET org = $2
         WHERE id_hash = $1 AND expires_at > now()
           AND orgs @> jsonb_build_array(jsonb_build_object('id', $2::text))",
    )
    .bind(id_hash)
    .bind(org)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

pub async fn console_session_set_orgs(
    pool: &PgPool,
    id_hash: &[u8],
    orgs: serde_json::Value,
) -> Result<(), DbError> {
    sqlx::query("UPDATE console_sessions SET orgs = $2 WHERE id_hash = $1")
        .bind(id_hash)
        .bind(orgs)
        .execute(pool)
        .await?;
    Ok(())
}

/// Sign-out: true when there was such a session.
pub async fn console_session_delete(pool: &PgPool, id_hash: &[u8]) -> Result<bool, DbError> {
    Ok(
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(pool)
            .await?
            .rows_affected()
            == 1,
    )
}

/// The session, locked for a token renewal until `tx` ends: a second replica
/// renewing the same session waits here, then sees the renewed row (a new
/// `generation`) and does not renew again.
pub async fn console_session_lock(
    tx: &mut Transaction<'_, Postgres>,
    id_hash: &[u8],
) -> Result<Option<ConsoleSessionRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM console_sessions
         WHERE id_hash = $1 AND expires_at > now() FOR UPDATE"
    )))
    .bind(id_hash)
    .fetch_optional(tx.as_mut())
    .await?)
}

/// Store renewed tokens (under the lock of [`console_session_lock`]).
pub async fn console_session_renewed(
    tx: &mut Transaction<'_, Postgres>,
    id_hash: &[u8],
    sealed: &[u8],
    token_expires: Option<DateTime<Utc>>,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE console_sessions
         SET sealed = $2, token_expires = $3, generation = generation + 1
         WHERE id_hash = $1",
    )
    .bind(id_hash)
    .bind(sealed)
    .bind(token_expires)
    .execute(tx.as_mut())
    .await?;
    Ok(())
}

/// Delete expired sessions and sign-in starts; returns how many rows went.
pub async fn console_prune(pool: &PgPool) -> Result<u64, DbError> {
    let a = sqlx::query("DELETE FROM console_sessions WHERE expires_at <= now()")
        .execute(pool)
        .await?
        .rows_affected();
    let b = sqlx::query("DELETE FROM console_sso_pending WHERE expires_at <= now()")
        .execute(pool)
        .await?
        .rows_affected();
    Ok(a + b)
}

pub struct NewSsoPending<'a> {
    pub state_hash: &'a [u8],
    pub verifier: &'a str,
    pub next: &'a str,
    pub client_key: &'a str,
    pub expires_at: DateTime<Utc>,
}

/// Record a sign-in start if fewer than `per_client` starts of its client
/// and fewer than `total` in all are pending. False when over a bound.
/// (Two replicas admitting at the same instant may each pass the count:
/// the bound can be exceeded by the number of concurrent starts, no more.)
pub async fn console_sso_pending_insert(
    pool: &PgPool,
    p: &NewSsoPending<'_>,
    per_client: i64,
    total: i64,
) -> Result<bool, DbError> {
    Ok(sqlx::query(
        "INSERT INTO console_sso_pending (state_hash, verifier, next, client_key, expires_at)
         SELECT $1, $2, $3, $4, $5
         WHERE (SELECT count(*) FROM console_sso_pending
                WHERE client_key = $4 AND expires_at > now()) < $6
           AND (SELECT count(*) FROM console_sso_pending WHERE expires_at > now()) < $7",
    )
    .bind(p.state_hash)
    .bind(p.verifier)
    .bind(p.next)
    .bind(p.client_key)
    .bind(p.expires_at)
    .bind(per_client)
    .bind(total)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// The PKCE verifier and next URL of a pending start; it is deleted by the
/// same statement, so a `state` serves one callback on one replica only.
pub async fn console_sso_pending_take(
    pool: &PgPool,
    state_hash: &[u8],
) -> Result<Option<(String, String)>, DbError> {
    Ok(sqlx::query_as(
        "DELETE FROM console_sso_pending WHERE state_hash = $1
         RETURNING verifier, next, expires_at > now() AS live",
    )
    .bind(state_hash)
    .fetch_optional(pool)
    .await?
    .and_then(|(verifier, next, live): (String, String, bool)| live.then_some((verifier, next))))
}

/// Pending starts now (all clients).
pub async fn console_sso_pending_count(pool: &PgPool) -> Result<i64, DbError> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM console_sso_pending WHERE expires_at > now()")
            .fetch_one(pool)
            .await?,
    )
}
