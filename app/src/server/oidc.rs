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
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
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

/// A sign-in waiting for the IdP's answer.
#[derive(Debug)]
pub struct Pending {
    pub verifier: String,
    pub next: String,
    expires: Instant,
    /// Its place in the per-address and total bounds, freed when it goes.
    _slot: PendingSlot,
}

/// Bounds on single sign-on starts pending at once: per client address (an
/// IPv6 address counts by its /64) and in total. A flood from one address
/// uses up only its own share.
#[derive(Debug)]
pub struct PendingLimits {
    per_address: usize,
    total: usize,
    counts: Mutex<(usize, HashMap<Option<IpAddr>, usize>)>,
}

/// One pending start counted in [`PendingLimits`]; dropping it frees the place.
#[derive(Debug)]
pub struct PendingSlot {
    limits: Option<Arc<PendingLimits>>,
    key: Option<IpAddr>,
}

impl PendingSlot {
    /// A slot outside any bounds (tests).
    pub fn unbounded() -> Self {
        PendingSlot {
            limits: None,
            key: None,
        }
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        if let Some(l) = &self.limits {
            let mut c = l.counts.lock().unwrap_or_else(|p| p.into_inner());
            c.0 = c.0.saturating_sub(1);
            if let Some(n) = c.1.get_mut(&self.key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.1.remove(&self.key);
                }
            }
        }
    }
}

/// The address a bound applies to: IPv4 as is, IPv6 by its /64 (one host
/// usually has a whole /64 to pick addresses from).
fn bound_key(ip: Option<IpAddr>) -> Option<IpAddr> {
    ip.map(|ip| match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    })
}

impl PendingLimits {
    pub fn new(per_address: usize, total: usize) -> Self {
        PendingLimits {
            per_address: per_address.max(1),
            total: total.max(1),
            counts: Mutex::new((0, HashMap::new())),
        }
    }

    /// A place for one more pending start from `ip`, if within both bounds.
    pub fn acquire(self: &Arc<Self>, ip: Option<IpAddr>) -> Option<PendingSlot> {
        let key = bound_key(ip);
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mine = c.1.get(&key).copied().unwrap_or(0);
        if c.0 >= self.total || mine >= self.per_address {
            return None;
        }
        c.0 += 1;
        c.1.insert(key, mine + 1);
        Some(PendingSlot {
            limits: Some(self.clone()),
            key,
        })
    }

    /// Pending starts counted now (all addresses).
    pub fn pending(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).0
    }
}

pub struct OidcClient {
    settings: OidcSettings,
    http: reqwest::Client,
    discovery: OnceCell<Discovery>,
    pending: Mutex<HashMap<String, Pending>>,
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
    pub fn new(settings: OidcSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            settings,
            http,
            discovery: OnceCell::new(),
            pending: Mutex::new(HashMap::new()),
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
    /// `state` to put in its cookie.
    pub async fn start(
        &self,
        next: String,
        slot: PendingSlot,
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
        let now = Instant::now();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        // Expired starts go, and free their places in the bounds.
        pending.retain(|_, p| p.expires > now);
        pending.insert(
            state.clone(),
            Pending {
                verifier,
                next,
                expires: now + PENDING_TTL,
                _slot: slot,
            },
        );
        Ok((url.to_string(), state))
    }

    /// Forget expired sign-ins, freeing their places in the bounds.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, p| p.expires > now);
    }

    /// The sign-in started with `state`, if it is still valid. Used once.
    pub fn take_pending(&self, state: &str) -> Option<Pending> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.remove(state).filter(|p| p.expires > Instant::now())
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
    fn pending_sign_ins_are_used_once() {
        let c = OidcClient::new(OidcSettings {
            issuer: "http://127.0.0.1:1".into(),
            client_id: "c".into(),
            client_secret: None,
            audience: None,
            scopes: "openid".into(),
            redirect_uri: "http://127.0.0.1:2/auth/callback".into(),
        })
        .unwrap();
        c.pending.lock().unwrap().insert(
            "s".into(),
            Pending {
                verifier: "v".into(),
                next: "/".into(),
                expires: Instant::now() + PENDING_TTL,
                _slot: PendingSlot::unbounded(),
            },
        );
        assert!(c.take_pending("s").is_some());
        assert!(
            c.take_pending("s").is_none(),
            "a state is good for one sign-in"
        );
        assert!(c.take_pending("forged").is_none());
    }

    #[test]
    fn pending_starts_are_bounded_per_address_and_in_total() {
        let l = Arc::new(PendingLimits::new(2, 5));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = l.acquire(Some(a)).unwrap();
        let _a2 = l.acquire(Some(a)).unwrap();
        assert!(l.acquire(Some(a)).is_none(), "a's share is used up");
        let _b1 = l.acquire(Some(b)).expect("b is not affected");
        drop(a1);
        assert!(
            l.acquire(Some(a)).is_some(),
            "a finished one, may start one"
        );
        assert_eq!(l.pending(), 2, "a dropped slot frees its place");
        // IPv6: one /64 is one address.
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        let _x = l.acquire(Some(v6a)).unwrap();
        let _y = l.acquire(Some(v6b)).unwrap();
        assert!(l.acquire(Some("2001:db8::3".parse().unwrap())).is_none());
        // The total holds across addresses.
        let _z = l.acquire(Some("10.0.0.9".parse().unwrap()));
        assert!(l.acquire(Some("10.0.0.10".parse().unwrap())).is_none());
    }
}
