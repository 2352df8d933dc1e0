//! The `ritma_cloud` signing-key registry: `GET /orgs/{org}/keys`,
//! `GET /keys/{id}`, `PATCH /keys/{id}/governance`, `GET /orgs/{org}/keys/summary`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{UpstreamError, http_client, send_json};

const SERVICE: &str = "ritma_cloud";

/// A key as the registry describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudKey {
    #[serde(alias = "id")]
    pub key_id: String,
    #[serde(default)]
    pub label: String,
    pub status: String,
    #[serde(default)]
    pub rotated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub rotate_by: Option<DateTime<Utc>>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// The registry answers a list either bare or as `{"keys": [...]}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum KeyList {
    Bare(Vec<CloudKey>),
    Wrapped { keys: Vec<CloudKey> },
}

#[derive(Debug, Clone, Serialize)]
pub struct GovernanceUpdate<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotate_by: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    pub actor: &'a str,
}

pub struct CloudClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl CloudClient {
    pub fn new(base: &str, token: Option<String>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http: http_client(),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub async fn org_keys(&self, org: &str) -> Result<Vec<CloudKey>, UpstreamError> {
        let list: KeyList = send_json(
            SERVICE,
            self.request(reqwest::Method::GET, &format!("/orgs/{org}/keys")),
        )
        .await?;
        Ok(match list {
            KeyList::Bare(k) | KeyList::Wrapped { keys: k } => k,
        })
    }

    pub async fn key(&self, key_id: &str) -> Result<CloudKey, UpstreamError> {
        send_json(
            SERVICE,
            self.request(reqwest::Method::GET, &format!("/keys/{key_id}")),
        )
        .await
    }

    pub async fn governance_update(
        &self,
        key_id: &str,
        update: &GovernanceUpdate<'_>,
    ) -> Result<CloudKey, UpstreamError> {
        send_json(
            SERVICE,
            self.request(
                reqwest::Method::PATCH,
                &format!("/keys/{key_id}/governance"),
            )
            .json(update),
        )
        .await
    }

    pub async fn org_summary(&self, org: &str) -> Result<serde_json::Value, UpstreamError> {
        send_json(
            SERVICE,
            self.request(reqwest::Method::GET, &format!("/orgs/{org}/keys/summary")),
        )
        .await
    }
}
