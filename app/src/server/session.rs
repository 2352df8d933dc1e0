//! Cookie sessions kept in PostgreSQL (`console_sessions`), shared by every
//! console replica: the browser holds a random id (HTTP-only cookie), the
//! database holds its SHA-256 and the tokens sealed with a key derived from
//! the id, so neither a copy of the table nor a console's memory outlives a
//! sign-out. Nothing is cached in the process: a sign-out on one replica
//! (the row deleted) is refused by every other at the next request.

use crate::model::OrgInfo;
use aes_gcm::Aes256Gcm;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead as _, KeyInit as _};
use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use chrono::{DateTime, Utc};
use rand::RngCore as _;
use ritma_db::console as store;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;
use std::time::{Duration, Instant};

pub const COOKIE_NAME: &str = "ritma_console_session";
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session store: {0}")]
    Store(#[from] ritma_db::DbError),
    #[error("session row unreadable: {0}")]
    Corrupt(String),
}

#[derive(Clone, Debug)]
pub struct Session {
    /// The bearer token the console calls the API with on this person's behalf.
    pub token: String,
    /// For single sign-on: renews `token` before `token_expires`.
    pub refresh_token: Option<String>,
    pub token_expires: Option<Instant>,
    /// Who signed in, for display (`operator` for the admin token).
    pub user: String,
    pub org: String,
    pub orgs: Vec<OrgInfo>,
}

impl Session {
    /// The access token runs out within `margin` and can be renewed.
    pub fn needs_refresh(&self, margin: Duration) -> bool {
        self.refresh_token.is_some()
            && self
                .token_expires
                .is_some_and(|at| at <= Instant::now() + margin)
    }
}

/// What a sign-in produced: the credential and, for single sign-on, how it renews.
#[derive(Clone, Debug)]
pub struct Credential {
    pub token: String,
    pub refresh_token: Option<String>,
    pub token_expires: Option<Instant>,
    pub user: String,
}

/// The secret part of a session row, sealed.
#[derive(Serialize, Deserialize)]
struct Secrets {
    token: String,
    refresh_token: Option<String>,
}

fn id_hash(id: &str) -> Vec<u8> {
    Sha256::digest(id.as_bytes()).to_vec()
}

/// The sealing key of session `id` (not derivable from its stored hash).
fn seal_key(id: &str) -> Aes256Gcm {
    let mut h = Sha256::new();
    h.update(b"ritma-console-session-seal\0");
    h.update(id.as_bytes());
    Aes256Gcm::new(&h.finalize())
}

fn seal(id: &str, secrets: &Secrets) -> Result<Vec<u8>, SessionError> {
    let plain = serde_json::to_vec(secrets).map_err(|e| SessionError::Corrupt(e.to_string()))?;
    let mut nonce = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut nonce);
    let mut out = nonce.to_vec();
    out.extend(
        seal_key(id)
            .encrypt(GenericArray::from_slice(&nonce), plain.as_slice())
            .map_err(|_| SessionError::Corrupt("cannot seal".into()))?,
    );
    Ok(out)
}

fn unseal(id: &str, sealed: &[u8]) -> Result<Secrets, SessionError> {
    if sealed.len() < 12 {
        return Err(SessionError::Corrupt("sealed tokens too short".into()));
    }
    let (nonce, body) = sealed.split_at(12);
    let plain = seal_key(id)
        .decrypt(GenericArray::from_slice(nonce), body)
        .map_err(|_| SessionError::Corrupt("sealed tokens do not open".into()))?;
    serde_json::from_slice(&plain).map_err(|e| SessionError::Corrupt(e.to_string()))
}

fn to_utc(at: Instant) -> DateTime<Utc> {
    let now = Instant::now();
    let utc = Utc::now();
    if at >= now {
        utc + chrono::Duration::from_std(at - now).unwrap_or(chrono::Duration::zero())
    } else {
        utc - chrono::Duration::from_std(now - at).unwrap_or(chrono::Duration::zero())
    }
}

fn to_instant(at: DateTime<Utc>) -> Instant {
    let now = Instant::now();
    match (at - Utc::now()).to_std() {
        Ok(ahead) => now + ahead,
        Err(_) => now
            .checked_sub((Utc::now() - at).to_std().unwrap_or_default())
            .unwrap_or(now),
    }
}

fn session_of(id: &str, row: store::ConsoleSessionRow) -> Result<Session, SessionError> {
    let secrets = unseal(id, &row.sealed)?;
    let orgs: Vec<OrgInfo> =
        serde_json::from_value(row.orgs).map_err(|e| SessionError::Corrupt(e.to_string()))?;
    Ok(Session {
        token: secrets.token,
        refresh_token: secrets.refresh_token,
        token_expires: row.token_expires.map(to_instant),
        user: row.user_name,
        org: row.org,
        orgs,
    })
}

fn orgs_json(orgs: &[OrgInfo]) -> serde_json::Value {
    serde_json::Value::Array(
        orgs.iter()
            .map(|o| serde_json::json!({ "id": o.id, "name": o.name }))
            .collect(),
    )
}

/// How a token renewal went.
pub enum Renewal<E> {
    /// The session's token is good (renewed here, by another replica, or not due).
    Current(Session),
    /// The session is gone (signed out, expired, or renewal refused and deleted).
    Ended,
    /// The IdP could not be asked; the caller decides with the old session.
    Failed(E),
}

#[derive(Clone)]
pub struct Sessions {
    pool: PgPool,
}

impl Sessions {
    pub fn new(pool: PgPool) -> Self {
        Sessions { pool }
    }

    pub async fn create(
        &self,
        credential: Credential,
        org: String,
        orgs: Vec<OrgInfo>,
    ) -> Result<String, SessionError> {
        let mut raw = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut raw);
        let id = hex::encode(raw);
        let session_end = Utc::now() + chrono::Duration::seconds(SESSION_TTL.as_secs() as i64);
        let token_expires = credential.token_expires.map(to_utc);
        // A token that cannot be renewed ends the session when it expires.
        let expires_at = match (&credential.refresh_token, token_expires) {
            (None, Some(at)) => at.min(session_end),
            _ => session_end,
        };
        let sealed = seal(
            &id,
            &Secrets {
                token: credential.token,
                refresh_token: credential.refresh_token.clone(),
            },
        )?;
        store::console_session_insert(
            &self.pool,
            &store::NewConsoleSession {
                id_hash: &id_hash(&id),
                sealed: &sealed,
                token_expires,
                renewable: credential.refresh_token.is_some(),
                user_name: &credential.user,
                org: &org,
                orgs: orgs_json(&orgs),
                expires_at,
            },
        )
        .await?;
        Ok(id)
    }

    /// Whether the store answers (readiness).
    pub async fn ping(&self) -> bool {
        ritma_db::ping(&self.pool).await
    }

    /// The live session `id` (None when signed out or expired).
    pub async fn get(&self, id: &str) -> Result<Option<Session>, SessionError> {
        match store::console_session_get(&self.pool, &id_hash(id)).await? {
            Some(row) => session_of(id, row).map(Some),
            None => Ok(None),
        }
    }

    pub async fn set_org(&self, id: &str, org: &str) -> Result<bool, SessionError> {
        Ok(store::console_session_set_org(&self.pool, &id_hash(id), org).await?)
    }

    /// The orgs the person may switch to, as the controller lists them now.
    pub async fn set_orgs(&self, id: &str, orgs: Vec<OrgInfo>) -> Result<(), SessionError> {
        Ok(store::console_session_set_orgs(&self.pool, &id_hash(id), orgs_json(&orgs)).await?)
    }

    /// Renew the session's token with `renew` if it runs out within
    /// `margin`, once across all replicas: the row stays locked while the
    /// IdP is asked, and a replica that waited on the lock finds the renewed
    /// token instead of renewing again (refresh tokens are often single use).
    pub async fn renew_once<E, F, Fut>(
        &self,
        id: &str,
        margin: Duration,
        renew: F,
    ) -> Result<Renewal<E>, SessionError>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<Option<RenewedToken>, E>>,
    {
        let hash = id_hash(id);
        let mut tx = self.pool.begin().await.map_err(ritma_db::DbError::from)?;
        let Some(row) = store::console_session_lock(&mut tx, &hash).await? else {
            return Ok(Renewal::Ended);
        };
        let session = session_of(id, row)?;
        let Some(refresh) = session
            .refresh_token
            .clone()
            .filter(|_| session.needs_refresh(margin))
        else {
            return Ok(Renewal::Current(session));
        };
        match renew(refresh).await {
            Ok(Some(t)) => {
                let secrets = Secrets {
                    token: t.token,
                    // Kept when the IdP does not rotate it.
                    refresh_token: t.refresh_token.or(session.refresh_token.clone()),
                };
                let sealed = seal(id, &secrets)?;
                store::console_session_renewed(
                    &mut tx,
                    &hash,
                    &sealed,
                    t.token_expires.map(to_utc),
                )
                .await?;
                tx.commit().await.map_err(ritma_db::DbError::from)?;
                Ok(Renewal::Current(Session {
                    token: secrets.token,
                    refresh_token: secrets.refresh_token,
                    token_expires: t.token_expires,
                    ..session
                }))
            }
            Ok(None) => {
                drop(tx);
                store::console_session_delete(&self.pool, &hash).await?;
                Ok(Renewal::Ended)
            }
            Err(e) => Ok(Renewal::Failed(e)),
        }
    }

    /// Sign-out: the row goes, on every replica at once.
    pub async fn remove(&self, id: &str) -> Result<(), SessionError> {
        store::console_session_delete(&self.pool, &id_hash(id)).await?;
        Ok(())
    }

    /// The session named by the request's cookie.
    pub async fn from_headers(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<(String, Session)>, SessionError> {
        let Some(id) = cookie_value(headers, COOKIE_NAME) else {
            return Ok(None);
        };
        // Only ids this console could have made reach the database.
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        Ok(self.get(&id).await?.map(|s| (id, s)))
    }

    /// Delete expired sessions and sign-in starts, every `every` (each
    /// replica runs this; deleting an expired row twice is harmless).
    pub fn spawn_pruner(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            loop {
                match store::console_prune(&pool).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(rows = n, "expired console sessions pruned"),
                    Err(e) => tracing::warn!(error = %e, "pruning console sessions failed"),
                }
                tokio::time::sleep(every).await;
            }
        })
    }
}

/// A token from the IdP's refresh grant.
pub struct RenewedToken {
    pub token: String,
    pub refresh_token: Option<String>,
    pub token_expires: Option<Instant>,
}

pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

pub fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_open_only_with_their_session_id() {
        let secrets = Secrets {
            token: "admin-token".into(),
            refresh_token: Some("r".into()),
        };
        let sealed = seal("id-1", &secrets).unwrap();
        assert!(
            !sealed.windows(11).any(|w| w == b"admin-token"),
            "no token in clear"
        );
        let back = unseal("id-1", &sealed).unwrap();
        assert_eq!(back.token, "admin-token");
        assert!(unseal("id-2", &sealed).is_err(), "another id opens nothing");
        assert!(unseal("id-1", &sealed[..5]).is_err());
        assert_ne!(id_hash("id-1"), id_hash("id-2"));
    }

    #[test]
    fn instants_round_trip_through_utc() {
        let at = Instant::now() + Duration::from_secs(600);
        let back = to_instant(to_utc(at));
        let diff = if back > at { back - at } else { at - back };
        assert!(diff < Duration::from_millis(50), "{diff:?}");
    }
}
