//! Client of the controller REST API, mapping its JSON to the console's view types.

use crate::model::{
    AppError, AuditEntry, AuditQuery, HistoryEntry, HostFacts, Instant, NodeDetail, NodePage,
    NodeQuery, NodeRow, OrgInfo, Spool, TokenInfo,
};
use chrono::{DateTime, Utc};
use ritma_api::ErrorBody;
use ritma_api::access::{AuditEntryView, MeView};
use ritma_api::console::{ConsoleCredentialRequest, ConsoleCredentialResponse};
use ritma_api::nodes::{NodeList, NodeSummary, NodeView};
use ritma_api::orgs::OrgView;
use ritma_api::tokens::{CreateToken, TokenView};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    /// The browser's address, forwarded to the controller (`X-Forwarded-For`),
    /// which trusts it from the console's address only (`RITMA_API_TRUSTED_PROXIES`).
    forwarded_for: Option<std::net::IpAddr>,
}

pub fn instant(at: DateTime<Utc>) -> Instant {
    Instant {
        ms: at.timestamp_millis(),
        text: at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    }
}

pub fn now() -> Instant {
    instant(Utc::now())
}

fn node_row(n: &NodeView) -> NodeRow {
    NodeRow {
        id: n.id.clone(),
        tenant_id: n.tenant_id.clone(),
        hostname: n.hostname.clone(),
        labels: n.labels.clone(),
        status: n.status.into(),
        agent_version: n.agent_version.clone(),
        policy_version: n.policy_version.clone(),
        policy_assigned: n.policy_assigned.clone(),
        policy_mode: n.policy_mode.clone(),
        drifted: n.drifted,
        drift_since: n.drift_since.map(instant),
        key_warning: n.key_warning.clone(),
        connector_count: n.connector_count,
        last_seen: n.last_seen_at.map(instant),
        status_changed: instant(n.status_changed_at),
    }
}

fn token_info(t: &TokenView) -> TokenInfo {
    TokenInfo {
        id: t.id.to_string(),
        tenant_id: t.tenant_id.clone(),
        expires: instant(t.expires_at),
        max_uses: i64::from(t.max_uses),
        uses: i64::from(t.uses),
        labels: t.labels.clone(),
        created: instant(t.created_at),
    }
}

/// Percent-encodes one path segment.
pub fn seg(s: &str) -> String {
    crate::model::url_encode(s)
}

impl Api {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(15))
            .build()?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_string(),
            forwarded_for: None,
        })
    }

    /// The same client, calling on behalf of the browser at `ip`.
    pub fn for_client(&self, ip: Option<std::net::IpAddr>) -> Api {
        Api {
            forwarded_for: ip,
            ..self.clone()
        }
    }

    /// The console's own bus credential (`POST /api/console/bus-credential`,
    /// with the console's service token; only the public key travels).
    pub async fn console_bus_credential(
        &self,
        service_token: &str,
        public_key: &str,
    ) -> Result<ConsoleCredentialResponse, AppError> {
        let req = self
            .request(
                reqwest::Method::POST,
                service_token,
                "/api/console/bus-credential",
            )
            .json(&ConsoleCredentialRequest {
                public_key: public_key.to_owned(),
            });
        self.send(req).await
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, AppError> {
        let resp = req.send().await.map_err(|e| {
            tracing::warn!(error = %e, "controller API request failed");
            AppError::Unavailable(if e.is_timeout() {
                "request timed out".to_string()
            } else {
                "cannot connect".to_string()
            })
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| AppError::Unavailable(format!("reading response: {e}")))?;
        if status.is_success() {
            if bytes.is_empty() {
                // DELETE and friends: treat an empty body as JSON null.
                return serde_json::from_slice(b"null")
                    .map_err(|e| AppError::Internal(format!("empty response: {e}")));
            }
            return serde_json::from_slice(&bytes).map_err(|e| {
                tracing::warn!(error = %e, "unexpected controller API response");
                AppError::Internal(format!("unexpected API response: {e}"))
            });
        }
        let body = serde_json::from_slice::<ErrorBody>(&bytes).ok();
        let node_unreachable = body.as_ref().is_some_and(|e| e.error == "node_unreachable");
        let message = body
            .map(|e| e.message)
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| status.to_string());
        Err(match status.as_u16() {
            504 if node_unreachable => AppError::NodeUnreachable(message),
            401 => AppError::Unauthorized,
            403 => AppError::Forbidden(message),
            404 => AppError::NotFound(message),
            400 | 409 | 422 => AppError::BadRequest(message),
            _ => AppError::Unavailable(format!("{status}: {message}")),
        })
    }

    fn get(&self, token: &str, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, token, path)
    }

    fn request(&self, method: reqwest::Method, token: &str, path: &str) -> reqwest::RequestBuilder {
        let req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        match self.forwarded_for {
            Some(ip) => req.header("x-forwarded-for", ip.to_string()),
            None => req,
        }
    }

    /// `GET path?query` (path segments already encoded), JSON back.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        token: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, AppError> {
        self.send(self.get(token, path).query(query)).await
    }

    /// `GET path?query` whose body the caller streams on (exports): the
    /// client's overall timeout would cut a long download, so this one has
    /// an hour (the connection's own timeout still applies).
    pub async fn stream_get(
        &self,
        token: &str,
        path: &str,
        query: &[(String, String)],
    ) -> Result<reqwest::Response, reqwest::Error> {
        self.get(token, path)
            .query(query)
            .timeout(Duration::from_secs(3600))
            .send()
            .await
    }

    /// `method path` with a JSON body (None: no body), JSON (or nothing) back.
    pub async fn call_json<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, AppError> {
        let req = self.request(method, token, path);
        let req = match body {
            Some(b) => req.json(b),
            None => req,
        };
        self.send(req).await
    }

    /// `method path` with a typed JSON body, JSON (or nothing) back.
    pub async fn call_typed<B: serde::Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: &B,
    ) -> Result<T, AppError> {
        self.send(self.request(method, token, path).json(body))
            .await
    }

    /// `method path` when only success matters (204 and friends).
    pub async fn call(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(), AppError> {
        let _: serde_json::Value = self.call_json(method, token, path, body).await?;
        Ok(())
    }

    /// The caller's roles in `org` (every role for an operator), from `/api/me`.
    pub async fn roles(&self, token: &str, org: &str) -> Result<Vec<String>, AppError> {
        let me: MeView = self.send(self.get(token, "/api/me")).await?;
        Ok(me
            .orgs
            .into_iter()
            .find(|o| o.id == org)
            .map(|o| o.roles)
            .unwrap_or_default())
    }

    pub async fn ready(&self) -> bool {
        match self.http.get(format!("{}/readyz", self.base)).send().await {
            Ok(r) => r.status().is_success(),
            Err(_) => false,
        }
    }

    /// How to show the caller: email, else name, else subject.
    pub async fn me(&self, token: &str) -> Result<String, AppError> {
        let me: MeView = self.send(self.get(token, "/api/me")).await?;
        Ok(me.email.or(me.name).unwrap_or(me.subject))
    }

    pub async fn orgs(&self, token: &str) -> Result<Vec<OrgInfo>, AppError> {
        let orgs: Vec<OrgView> = self.send(self.get(token, "/api/orgs")).await?;
        Ok(orgs
            .into_iter()
            .map(|o| OrgInfo {
                name: if o.name.is_empty() {
                    o.id.clone()
                } else {
                    o.name
                },
                id: o.id,
            })
            .collect())
    }

    /// One page of nodes.
    pub async fn nodes(
        &self,
        token: &str,
        org: &str,
        q: &NodeQuery,
        limit: u32,
    ) -> Result<NodePage, AppError> {
        let mut params: Vec<(&str, String)> = vec![("limit", limit.to_string())];
        for key in NodeQuery::KEYS {
            if let Some(v) = q.get(key) {
                params.push((key, v.to_string()));
            }
        }
        let req = self
            .get(token, &format!("/api/orgs/{}/nodes", seg(org)))
            .query(&params);
        let page: NodeList = self.send(req).await?;
        Ok(NodePage {
            items: page.items.iter().map(node_row).collect(),
            next_cursor: page.next_cursor.filter(|c| !c.is_empty()),
            total: page.total,
            total_exact: page.total_exact,
            fetched_ms: Utc::now().timestamp_millis(),
        })
    }

    /// Exact node counts by status, plus drifted nodes and key warnings.
    pub async fn node_counts(&self, token: &str, org: &str) -> Result<NodeSummary, AppError> {
        self.send(self.get(token, &format!("/api/orgs/{}/nodes/summary", seg(org))))
            .await
    }

    pub async fn node(
        &self,
        token: &str,
        org: &str,
        id: &str,
        controller_url: &str,
    ) -> Result<NodeDetail, AppError> {
        let detail: ritma_api::nodes::NodeDetail = self
            .send(self.get(token, &format!("/api/orgs/{}/nodes/{}", seg(org), seg(id))))
            .await?;
        let mut history: Vec<HistoryEntry> = detail
            .status_history
            .iter()
            .map(|h| HistoryEntry {
                from: h.from_status.into(),
                to: h.to_status.into(),
                reason: h.reason.clone(),
                at: instant(h.at),
            })
            .collect();
        history.sort_by_key(|h| std::cmp::Reverse(h.at.ms));
        let n = detail.node;
        Ok(NodeDetail {
            node: node_row(&n),
            org_id: n.org_id.clone(),
            key_id: n.key_id.clone(),
            interval_secs: i64::from(n.interval_secs),
            enrolled: instant(n.enrolled_at),
            host: n.host.map(|h| HostFacts {
                hostname: Some(h.hostname),
                os: Some(h.os),
                kernel: h.kernel,
                arch: h.arch,
                cpus: h.cpus.map(i64::from),
                memory_bytes: h.memory_bytes,
                uptime_secs: h.uptime_secs,
            }),
            spool: n.spool.map(|s| Spool {
                depth: s.depth,
                dropped: s.dropped,
            }),
            history,
            controller_url: controller_url.to_string(),
            fetched_ms: Utc::now().timestamp_millis(),
        })
    }

    pub async fn create_token(
        &self,
        token: &str,
        org: &str,
        tenant: &str,
        ttl_secs: i64,
        max_uses: i64,
        labels: &BTreeMap<String, String>,
    ) -> Result<(TokenInfo, String), AppError> {
        let max_uses = i32::try_from(max_uses)
            .map_err(|_| AppError::BadRequest(format!("max uses {max_uses} is out of range")))?;
        let body = CreateToken {
            tenant_id: tenant.to_owned(),
            ttl_secs: Some(ttl_secs),
            max_uses: Some(max_uses),
            labels: labels.clone(),
        };
        let req = self
            .request(
                reqwest::Method::POST,
                token,
                &format!("/api/orgs/{}/enrollment-tokens", seg(org)),
            )
            .json(&body);
        let t: TokenView = self.send(req).await?;
        let secret = t
            .token
            .clone()
            .ok_or_else(|| AppError::Internal("the API returned no token secret".into()))?;
        Ok((token_info(&t), secret))
    }

    pub async fn tokens(&self, token: &str, org: &str) -> Result<Vec<TokenInfo>, AppError> {
        let list: Vec<TokenView> = self
            .send(self.get(token, &format!("/api/orgs/{}/enrollment-tokens", seg(org))))
            .await?;
        Ok(list.iter().map(token_info).collect())
    }

    /// One page of the org's audit trail, newest first; `limit + 1` are
    /// fetched to know whether an older page exists.
    pub async fn audit(
        &self,
        token: &str,
        org: &str,
        q: &AuditQuery,
        limit: u32,
    ) -> Result<(Vec<AuditEntry>, bool), AppError> {
        let mut params: Vec<(&str, String)> = vec![("limit", (limit + 1).to_string())];
        for (k, v) in [
            ("actor", &q.actor),
            ("action", &q.action),
            ("target", &q.target),
        ] {
            if let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                params.push((k, v.to_string()));
            }
        }
        if let Some(b) = q.before {
            params.push(("before_id", b.to_string()));
        }
        let req = self
            .get(token, &format!("/api/orgs/{}/audit", seg(org)))
            .query(&params);
        let mut list: Vec<AuditEntryView> = self.send(req).await?;
        let more = list.len() > limit as usize;
        list.truncate(limit as usize);
        let pretty = |v: Option<serde_json::Value>| {
            v.filter(|v| !v.is_null())
                .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
        };
        let entries = list
            .into_iter()
            .map(|a| AuditEntry {
                id: a.id,
                actor: a.actor,
                action: a.action,
                target: a.target,
                source: a.source,
                before: pretty(a.before),
                after: pretty(a.after),
                at: instant(a.at),
                hash: a.hash,
            })
            .collect();
        Ok((entries, more))
    }

    pub async fn revoke_token(&self, token: &str, org: &str, id: &str) -> Result<(), AppError> {
        let req = self.request(
            reqwest::Method::DELETE,
            token,
            &format!("/api/orgs/{}/enrollment-tokens/{}", seg(org), seg(id)),
        );
        let _: serde_json::Value = self.send(req).await?;
        Ok(())
    }
}
