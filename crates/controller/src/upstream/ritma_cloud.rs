//! The `ritma_cloud` signing-key registry: `GET /orgs/{org}/keys`,
//! `GET /orgs/{org}/keys/{id}`, `PATCH /orgs/{org}/keys/{id}/governance`,
//! `GET /orgs/{org}/keys/summary`. Key ids are per org, so every key path
//! names its org; every segment is percent-encoded, and ids that could play
//! path tricks are refused before any request.

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

    /// A request to the registry at `base` + the given path segments, each
    /// percent-encoded as one segment (a `/` or `..` in a value can never
    /// reach another path).
    fn request(&self, method: reqwest::Method, segments: &[&str]) -> reqwest::RequestBuilder {
        let mut url = match reqwest::Url::parse(&self.base) {
            Ok(u) => u,
            // Checked at start; an unparsable base fails the request below.
            Err(_) => return self.http.request(method, self.base.as_str()),
        };
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        let r = self.http.request(method, url);
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub async fn org_keys(&self, org: &str) -> Result<Vec<CloudKey>, UpstreamError> {
        let list: KeyList = send_json(
            SERVICE,
            self.request(reqwest::Method::GET, &["orgs", org, "keys"]),
        )
        .await?;
        Ok(match list {
            KeyList::Bare(k) | KeyList::Wrapped { keys: k } => k,
        })
    }

    pub async fn key(&self, org: &str, key_id: &str) -> Result<CloudKey, UpstreamError> {
        key_id_ok(key_id)?;
        send_json(
            SERVICE,
            self.request(reqwest::Method::GET, &["orgs", org, "keys", key_id]),
        )
        .await
    }

    pub async fn governance_update(
        &self,
        org: &str,
        key_id: &str,
        update: &GovernanceUpdate<'_>,
    ) -> Result<CloudKey, UpstreamError> {
        key_id_ok(key_id)?;
        send_json(
            SERVICE,
            self.request(
                reqwest::Method::PATCH,
                &["orgs", org, "keys", key_id, "governance"],
            )
            .json(update),
        )
        .await
    }

    pub async fn org_summary(&self, org: &str) -> Result<serde_json::Value, UpstreamError> {
        send_json(
            SERVICE,
            self.request(reqwest::Method::GET, &["orgs", org, "keys", "summary"]),
        )
        .await
    }
}

fn key_id_ok(key_id: &str) -> Result<(), UpstreamError> {
    ritma_protocol::keys::key_id_check(key_id).map_err(|e| UpstreamError::Refused {
        service: SERVICE,
        status: 400,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_org_and_encode_every_segment() {
        let c = CloudClient::new("http://registry.example/api/", None);
        let r = c
            .request(
                reqwest::Method::GET,
                &["orgs", "acme", "keys", "a/b%2f..", "governance"],
            )
            .build()
            .unwrap();
        assert_eq!(
            r.url().as_str(),
            "http://registry.example/api/orgs/acme/keys/a%2Fb%252f../governance"
        );
    }
}
