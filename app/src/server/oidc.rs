//! Signing people in with the IdP: OpenID Connect authorization code with
//! PKCE (S256). The browser only ever holds the console's session cookie; the
//! access and refresh tokens stay on the server.
//!
//! A sign-in is bound to the browser that started it: the `state` value is
//! both in the IdP round trip and in a short-lived HTTP-only cookie, and is
//! used once. The tokens come straight from the IdP's token endpoint (no
//! token in a URL), and the controller verifies the access token's
//! signature, issuer, audience and expiry on every API call.

use data_encoding::BASE64URL_NOPAD;
use rand::RngCore as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// Cookie carrying the `state` of a sign-in in progress.
pub const STATE_COOKIE: &str = "ritma_oidc_state";
/// How long a started sign-in may take at the IdP.
pub const PENDING_TTL: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("identity provider unreachable: {0}")]
    Unreachable(String),
    #[error("identity provider answered {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("identity provider sent an unusable answer: {0}")]
    BadAnswer(String),
    #[error("too many single sign-on starts pending")]
    Busy,
    #[error("sign-in store: {0}")]
    Store(String),
}

#[derive(Clone, Debug)]
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// Resource indicator (RFC 8707) for the controller API, when the IdP needs one.
    pub audience: Option<String>,
    pub scopes: String,
    /// This console's `/auth/callback`, as registered at the IdP.
    pub redirect_uri: String,
}

#[derive(Deserialize, Clone, Debug)]
struct Discovery {
    authorization_endpoint: String,
    token_endpoint: String,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<u64>,
}

/// Tokens of a signed-in person.
#[derive(Clone, Debug)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: Option<Instant>,
}

/// A sign-in waiting for the IdP's answer (taken from the shared store).
#[derive(Debug)]
pub struct Pending {
    pub verifier: String,
    pub next: String,
}

/// Pending single sign-on starts, in PostgreSQL (`console_sso_pending`) so
/// that the IdP's callback may reach any replica. Bounded per client address
/// (an IPv6 address counts by its /64) and in total: a flood from one
/// address uses up only its own share.
#[derive(Clone)]
pub struct PendingStarts {
    pool: sqlx::PgPool,
    per_address: i64,
    total: i64,
}

impl PendingStarts {
    pub fn new(pool: sqlx::PgPool, per_address: usize, total: usize) -> Self {
        PendingStarts {
            pool,
            per_address: i64::try_from(per_address.max(1)).unwrap_or(i64::MAX),
            total: i64::try_from(total.max(1)).unwrap_or(i64::MAX),
        }
    }

    /// Pending starts counted now (all addresses).
    pub async fn pending(&self) -> Result<i64, OidcError> {
        ritma_db::console::console_sso_pending_count(&self.pool)
            .await
            .map_err(|e| OidcError::Store(e.to_string()))
    }
}

fn state_hash(state: &str) -> Vec<u8> {
    Sha256::digest(state.as_bytes()).to_vec()
}

/// The address a bound applies to: IPv4 as is, IPv6 by its /64 (one host
/// usually has a whole /64 to pick addresses from).
fn bound_key(ip: Option<IpAddr>) -> String {
    match ip {
        None => "-".to_string(),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0).to_string()
        }
    }
}

pub struct OidcClient {
    settings: OidcSettings,
    http: reqwest::Client,
    discovery: OnceCell<Discovery>,
    pending: PendingStarts,
}

fn random_token() -> String {
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    BASE64URL_NOPAD.encode(&raw)
}

/// The PKCE S256 challenge of `verifier` (RFC 7636).
pub fn pkce_challenge(verifier: &str) -> String {
    BASE64URL_NOPAD.encode(&Sha256::digest(verifier.as_bytes()))
}

impl OidcClient {
    pub fn new(settings: OidcSettings, pending: PendingStarts) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            settings,
            http,
            discovery: OnceCell::new(),
            pending,
        })
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// The discovery document, fetched once (a failure is retried next time).
    async fn discovery(&self) -> Result<&Discovery, OidcError> {
        self.discovery
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.settings.issuer.trim_end_matches('/')
                );
                let resp = self
                    .http
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| OidcError::Unreachable(e.to_string()))?;
                if !resp.status().is_success() {
                    return Err(OidcError::Refused {
                        status: resp.status().as_u16(),
                        body: format!("discovery document at {url}"),
                    });
                }
                resp.json::<Discovery>()
                    .await
                    .map_err(|e| OidcError::BadAnswer(format!("discovery document: {e}")))
            })
            .await
    }

    /// Start a sign-in: returns the IdP URL to send the browser to, and the
    /// `state` to put in its cookie; `Busy` when `ip` (or everyone) has too
    /// many sign-ins pending.
    pub async fn start(
        &self,
        next: String,
        ip: Option<IpAddr>,
    ) -> Result<(String, String), OidcError> {
        let d = self.discovery().await?;
        let state = random_token();
        let verifier = random_token();
        let mut url = reqwest::Url::parse(&d.authorization_endpoint)
            .map_err(|e| OidcError::BadAnswer(format!("authorization_endpoint: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.settings.client_id)
                .append_pair("redirect_uri", &self.settings.redirect_uri)
                .append_pair("scope", &self.settings.scopes)
                .append_pair("state", &state)
                .append_pair("code_challenge", &pkce_challenge(&verifier))
                .append_pair("code_challenge_method", "S256");
            if let Some(aud) = &self.settings.audience {
                q.append_pair("resource", aud);
            }
        }
        let stored = ritma_db::console::console_sso_pending_insert(
            &self.pending.pool,
            &ritma_db::console::NewSsoPending {
                state_hash: &state_hash(&state),
                verifier: &verifier,
                next: &next,
                client_key: &bound_key(ip),
                expires_at: chrono::Utc::now()
                    + chrono::Duration::seconds(PENDING_TTL.as_secs() as i64),
            },
            self.pending.per_address,
            self.pending.total,
        )
        .await
        .map_err(|e| OidcError::Store(e.to_string()))?;
        if !stored {
            return Err(OidcError::Busy);
        }
        Ok((url.to_string(), state))
    }

    /// The sign-in started with `state`, if it is still valid. Used once,
    /// on whichever replica the callback reaches.
    pub async fn take_pending(&self, state: &str) -> Result<Option<Pending>, OidcError> {
        Ok(
            ritma_db::console::console_sso_pending_take(&self.pending.pool, &state_hash(state))
                .await
                .map_err(|e| OidcError::Store(e.to_string()))?
                .map(|(verifier, next)| Pending { verifier, next }),
        )
    }

    /// Exchange the authorization code (with the PKCE verifier) for tokens.
    pub async fn exchange(&self, code: &str, verifier: &str) -> Result<Tokens, OidcError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.settings.redirect_uri.as_str()),
            ("code_verifier", verifier),
        ];
        if let Some(aud) = &self.settings.audience {
            form.push(("resource", aud.as_str()));
        }
        self.token_request(form).await
    }

    /// A fresh access token from a refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, OidcError> {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        if let Some(aud) = &self.settings.audience {
            form.push(("resource", aud.as_str()));
        }
        self.token_request(form).await
    }

    async fn token_request(&self, mut form: Vec<(&str, &str)>) -> Result<Tokens, OidcError> {
        let d = self.discovery().await?;
        let mut req = self.http.post(&d.token_endpoint);
        match &self.settings.client_secret {
            Some(secret) => req = req.basic_auth(&self.settings.client_id, Some(secret)),
            None => form.push(("client_id", self.settings.client_id.as_str())),
        }
        let resp = req
            .form(&form)
            .send()
            .await
            .map_err(|e| OidcError::Unreachable(e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            // The error body is the IdP's (`invalid_grant`, ...): no secret in it.
            let body: String = resp
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            return Err(OidcError::Refused {
                status: status.as_u16(),
                body,
            });
        }
        let answer: TokenAnswer = resp
            .json()
            .await
            .map_err(|e| OidcError::BadAnswer(format!("token answer: {e}")))?;
        Ok(Tokens {
            access_token: answer.access_token,
            refresh_token: answer.refresh_token,
            expires_at: answer
                .expires_in
                .map(|s| Instant::now() + Duration::from_secs(s)),
        })
    }
}

pub fn state_cookie(state: &str, secure: bool) -> String {
    format!(
        "{STATE_COOKIE}={state}; Path=/auth; HttpOnly; SameSite=Lax; Max-Age={}{}",
        PENDING_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

pub fn clear_state_cookie(secure: bool) -> String {
    format!(
        "{STATE_COOKIE}=; Path=/auth; HttpOnly; SameSite=Lax; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_matches_rfc7636_example() {
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn bounds_count_an_ipv6_host_by_its_64() {
        let a = bound_key(Some("2001:db8::1".parse().unwrap()));
        let b = bound_key(Some("2001:db8::ffff:2".parse().unwrap()));
        assert_eq!(a, b);
        assert_ne!(a, bound_key(Some("2001:db8:0:1::1".parse().unwrap())));
        assert_eq!(bound_key(Some("10.0.0.1".parse().unwrap())), "10.0.0.1");
    }
}
