//! Verifying OpenID Connect access tokens (JWTs) against the provider's JWKS:
//! signature, issuer, audience, expiry. Keys are cached and refetched when a
//! token names a key id we do not have (the provider rotated its keys).

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use tokio::sync::RwLock;

/// Refetch the key set at most this often when an unknown key id shows up.
const MIN_REFRESH: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("token is not a valid JWT: {0}")]
    Malformed(String),
    #[error("token was signed with an unknown key")]
    UnknownKey,
    #[error("token rejected: {0}")]
    Rejected(String),
    #[error("identity provider unreachable: {0}")]
    Provider(String),
}

#[derive(Debug, Clone)]
pub struct OidcSettings {
    pub issuer: String,
    pub audience: String,
    pub jwks_url: Option<String>,
    pub roles_claim: String,
}

/// The claims the API uses; everything else in the token is ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    pub email: Option<String>,
    pub name: Option<String>,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

pub struct OidcVerifier {
    settings: OidcSettings,
    http: reqwest::Client,
    keys: RwLock<(JwkSet, Option<Instant>)>,
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

impl OidcVerifier {
    pub fn new(settings: OidcSettings) -> Self {
        Self {
            settings,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            keys: RwLock::new((JwkSet { keys: vec![] }, None)),
        }
    }

    pub fn roles_claim(&self) -> &str {
        &self.settings.roles_claim
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, OidcError> {
        let provider = |e: reqwest::Error| OidcError::Provider(e.to_string());
        self.http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(provider)?
            .json()
            .await
            .map_err(provider)
    }

    async fn jwks_url(&self) -> Result<String, OidcError> {
        if let Some(url) = &self.settings.jwks_url {
            return Ok(url.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.trim_end_matches('/')
        );
        let d: Discovery = self.get_json(&url).await?;
        Ok(d.jwks_uri)
    }

    async fn refresh(&self) -> Result<(), OidcError> {
        let url = self.jwks_url().await?;
        let set: JwkSet = self.get_json(&url).await?;
        *self.keys.write().await = (set, Some(Instant::now()));
        Ok(())
    }

    async fn key_for(&self, kid: Option<&str>) -> Result<DecodingKey, OidcError> {
        let find = |set: &JwkSet| -> Option<DecodingKey> {
            let jwk = match kid {
                Some(k) => set.find(k),
                None => set.keys.first(),
            }?;
            DecodingKey::from_jwk(jwk).ok()
        };
        {
            let guard = self.keys.read().await;
            if let Some(k) = find(&guard.0) {
                return Ok(k);
            }
            if guard.1.is_some_and(|at| at.elapsed() < MIN_REFRESH) {
                return Err(OidcError::UnknownKey);
            }
        }
        self.refresh().await?;
        find(&self.keys.read().await.0).ok_or(OidcError::UnknownKey)
    }

    pub async fn verify(&self, token: &str) -> Result<AccessClaims, OidcError> {
        let header = decode_header(token).map_err(|e| OidcError::Malformed(e.to_string()))?;
        let key = self.key_for(header.kid.as_deref()).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        decode::<AccessClaims>(token, &key, &validation)
            .map(|d| d.claims)
            .map_err(|e| OidcError::Rejected(e.to_string()))
    }
}
