//! Client of the controller REST API, mapping its JSON to the console's view types.

use crate::model::{
    AppError, AuditEntry, AuditQuery, HistoryEntry, HostFacts, Instant, NodeDetail, NodePage,
    NodeQuery, NodeRow, OrgInfo, Spool, Status, TokenInfo,
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::Duration;

/// `GET /api/orgs/{org}/nodes/summary`.
#[derive(Deserialize)]
pub struct NodeSummary {
    pub by_status: BTreeMap<String, i64>,
    #[serde(default)]
    pub drifted: i64,
    #[serde(default)]
    pub key_warnings: i64,
}

#[derive(Clone, Debug)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    /// The browser's address, forwarded to the controller (`X-Forwarded-For`),
    /// which trusts it from the console's address only (`RITMA_API_TRUSTED_PROXIES`).
    forwarded_for: Option<std::net::IpAddr>,
}

/// The console's bus credential, as the controller hands it out.
#[derive(Deserialize, Clone, Debug)]
pub struct BusCredential {
    pub jwt: String,
    pub expires_at: DateTime<Utc>,
    #[serde(default)]
    pub nats_urls: Vec<String>,
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

#[derive(Deserialize)]
struct ApiError {
    error: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct ApiOrg {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
pub struct ApiNode {
    id: String,
    #[serde(default)]
    org_id: String,
    tenant_id: String,
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    status: Status,
    agent_version: Option<String>,
    policy_version: Option<String>,
    policy_assigned: Option<String>,
    policy_mode: Option<String>,
    #[serde(default)]
    drifted: bool,
    drift_since: Option<DateTime<Utc>>,
    key_warning: Option<String>,
    key_id: Option<String>,
    #[serde(default)]
    interval_secs: i64,
    last_seen_at: Option<DateTime<Utc>>,
    status_changed_at: DateTime<Utc>,
    enrolled_at: DateTime<Utc>,
    #[serde(default)]
    connector_count: i64,
    host: Option<ApiHost>,
    spool: Option<ApiSpool>,
    #[serde(default)]
    status_history: Vec<ApiHistory>,
}

#[derive(Deserialize)]
struct ApiHost {
    hostname: Option<String>,
    os: Option<String>,
    kernel: Option<String>,
    arch: Option<String>,
    cpus: Option<i64>,
    memory_bytes: Option<i64>,
    uptime_secs: Option<i64>,
}

#[derive(Deserialize)]
struct ApiSpool {
    #[serde(default)]
    depth: i64,
    #[serde(default)]
    dropped: i64,
}

#[derive(Deserialize)]
struct ApiHistory {
    #[serde(alias = "from_status")]
    from: Status,
    #[serde(alias = "to_status")]
    to: Status,
    #[serde(default)]
    reason: String,
    at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct ApiNodePage {
    items: Vec<ApiNode>,
    next_cursor: Option<String>,
    total: i64,
    #[serde(default = "yes")]
    total_exact: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct ApiToken {
    id: String,
    token: Option<String>,
    tenant_id: String,
    expires_at: DateTime<Utc>,
    #[serde(default)]
    max_uses: i64,
    #[serde(default)]
    uses: i64,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    created_at: DateTime<Utc>,
}

impl ApiNode {
    fn row(&self) -> NodeRow {
        NodeRow {
            id: self.id.clone(),
            tenant_id: self.tenant_id.clone(),
            hostname: self.hostname.clone(),
            labels: self.labels.clone(),
            status: self.status,
            agent_version: self.agent_version.clone(),
            policy_version: self.policy_version.clone(),
            policy_assigned: self.policy_assigned.clone(),
            policy_mode: self.policy_mode.clone(),
            drifted: self.drifted,
            drift_since: self.drift_since.map(instant),
            key_warning: self.key_warning.clone(),
            connector_count: self.connector_count,
            last_seen: self.last_seen_at.map(instant),
            status_changed: instant(self.status_changed_at),
        }
    }
}

impl ApiToken {
    fn info(&self) -> TokenInfo {
        TokenInfo {
            id: self.id.clone(),
            tenant_id: self.tenant_id.clone(),
            expires: instant(self.expires_at),
            max_uses: self.max_uses,
            uses: self.uses,
            labels: self.labels.clone(),
            created: instant(self.created_at),
        }
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
    ) -> Result<BusCredential, AppError> {
        let req = self
            .request(
                reqwest::Method::POST,
                service_token,
                "/api/console/bus-credential",
            )
            .json(&serde_json::json!({ "public_key": public_key }));
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
        let message = serde_json::from_slice::<ApiError>(&bytes)
            .ok()
            .map(|e| e.message.or(e.error).unwrap_or_else(|| status.to_string()))
            .unwrap_or_else(|| status.to_string());
        let node_unreachable = serde_json::from_slice::<ApiError>(&bytes)
            .ok()
            .and_then(|e| e.error)
            .is_some_and(|e| e == "node_unreachable");
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
        #[derive(Deserialize)]
        struct Me {
            #[serde(default)]
            orgs: Vec<MeOrg>,
        }
        #[derive(Deserialize)]
        struct MeOrg {
            id: String,
            #[serde(default)]
            roles: Vec<String>,
        }
        let me: Me = self.send(self.get(token, "/api/me")).await?;
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
        #[derive(Deserialize)]
        struct Me {
            subject: String,
            email: Option<String>,
            name: Option<String>,
        }
        let me: Me = self.send(self.get(token, "/api/me")).await?;
        Ok(me.email.or(me.name).unwrap_or(me.subject))
    }

    pub async fn orgs(&self, token: &str) -> Result<Vec<OrgInfo>, AppError> {
        let orgs: Vec<ApiOrg> = self.send(self.get(token, "/api/orgs")).await?;
        Ok(orgs
            .into_iter()
            .map(|o| OrgInfo {
                name: o
                    .name
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| o.id.clone()),
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
        let page: ApiNodePage = self.send(req).await?;
        Ok(NodePage {
            items: page.items.iter().map(ApiNode::row).collect(),
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
        let n: ApiNode = self
            .send(self.get(token, &format!("/api/orgs/{}/nodes/{}", seg(org), seg(id))))
            .await?;
        let mut history: Vec<HistoryEntry> = n
            .status_history
            .iter()
            .map(|h| HistoryEntry {
                from: h.from,
                to: h.to,
                reason: h.reason.clone(),
                at: instant(h.at),
            })
            .collect();
        history.sort_by_key(|h| std::cmp::Reverse(h.at.ms));
        Ok(NodeDetail {
            node: n.row(),
            org_id: if n.org_id.is_empty() {
                org.to_string()
            } else {
                n.org_id.clone()
            },
            key_id: n.key_id.clone(),
            interval_secs: n.interval_secs,
            enrolled: instant(n.enrolled_at),
            host: n.host.as_ref().map(|h| HostFacts {
                hostname: h.hostname.clone(),
                os: h.os.clone(),
                kernel: h.kernel.clone(),
                arch: h.arch.clone(),
                cpus: h.cpus,
                memory_bytes: h.memory_bytes,
                uptime_secs: h.uptime_secs,
            }),
            spool: n.spool.as_ref().map(|s| Spool {
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
        let body = serde_json::json!({
            "tenant_id": tenant,
            "ttl_secs": ttl_secs,
            "max_uses": max_uses,
            "labels": labels,
        });
        let req = self
            .request(
                reqwest::Method::POST,
                token,
                &format!("/api/orgs/{}/enrollment-tokens", seg(org)),
            )
            .json(&body);
        let t: ApiToken = self.send(req).await?;
        let secret = t
            .token
            .clone()
            .ok_or_else(|| AppError::Internal("the API returned no token secret".into()))?;
        Ok((t.info(), secret))
    }

    pub async fn tokens(&self, token: &str, org: &str) -> Result<Vec<TokenInfo>, AppError> {
        let list: Vec<ApiToken> = self
            .send(self.get(token, &format!("/api/orgs/{}/enrollment-tokens", seg(org))))
            .await?;
        Ok(list.iter().map(ApiToken::info).collect())
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
        #[derive(Deserialize)]
        struct ApiAudit {
            id: i64,
            actor: String,
            action: String,
            target: String,
            source: Option<String>,
            before: Option<serde_json::Value>,
            after: Option<serde_json::Value>,
            at: DateTime<Utc>,
            hash: String,
        }
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
        let mut list: Vec<ApiAudit> = self.send(req).await?;
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
