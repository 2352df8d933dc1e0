//! Client of the controller REST API, mapping its JSON to the console's view types.

use crate::model::{
    AppError, AuditEntry, AuditQuery, HistoryEntry, HostFacts, Instant, NodeDetail, NodePage,
    NodeQuery, NodeRow, OrgInfo, Spool, TokenInfo,
};
use chrono::{DateTime, Utc};
use ritma_api::access::MeView;
use ritma_api::client::{Client, ClientError};
use ritma_api::console::{ConsoleCredentialRequest, ConsoleCredentialResponse};
use ritma_api::endpoint::{Endpoint, RequestBody, ResponseBody};
use ritma_api::nodes::{NodeListQuery, NodeSummary, NodeView};
use ritma_api::params::{NoParams, OrgNodePath, OrgPath, OrgUuidPath};
use ritma_api::routes;
use ritma_api::tokens::{CreateToken, TokenView};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::Duration;

/// The contract's typed client, answering in the console's errors.
#[derive(Clone, Debug)]
pub struct Api {
    client: Client,
}

impl From<ClientError> for AppError {
    fn from(e: ClientError) -> Self {
        let message = e.message();
        match e {
            ClientError::Transport(e) => {
                tracing::warn!(error = %e, "controller API request failed");
                AppError::Unavailable(if e.is_timeout() {
                    "request timed out".to_string()
                } else {
                    "cannot connect".to_string()
                })
            }
            ClientError::Decode(e) => {
                tracing::warn!(error = %e, "unexpected controller API response");
                AppError::Internal(format!("unexpected API response: {e}"))
            }
            ClientError::Path(name) => AppError::Internal(format!("path parameter {name}")),
            ClientError::Status { status, body, .. } => {
                // `message` is already the body's sentence when it has one.
                let node_unreachable = body.is_some_and(|b| b.error == "node_unreachable");
                match status {
                    504 if node_unreachable => AppError::NodeUnreachable(message),
                    401 => AppError::Unauthorized,
                    403 => AppError::Forbidden(message),
                    404 => AppError::NotFound(message),
                    400 | 409 | 422 => AppError::BadRequest(message),
                    _ => AppError::Unavailable(format!("{status}: {message}")),
                }
            }
        }
    }
}

/// `{org}` and the uuid `{id}` of one of its resources; an id that is no
/// uuid cannot exist (404).
pub fn uuid_path(org: &str, id: &str) -> Result<OrgUuidPath, AppError> {
    let id = id
        .trim()
        .parse()
        .map_err(|_| AppError::NotFound(format!("no such item {id:?}")))?;
    Ok(OrgUuidPath {
        org: org.to_owned(),
        id,
    })
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

impl Api {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Api {
            client: Client::with_timeout(base, Duration::from_secs(15))?,
        })
    }

    /// The same client, calling on behalf of the browser at `ip`
    /// (`X-Forwarded-For`, which the controller trusts from the console's
    /// address only: `RITMA_API_TRUSTED_PROXIES`).
    pub fn for_client(&self, ip: Option<std::net::IpAddr>) -> Api {
        match ip {
            Some(ip) => Api {
                client: self.client.header("x-forwarded-for", ip.to_string()),
            },
            None => self.clone(),
        }
    }

    /// The console's own bus credential (`POST /api/console/bus-credential`,
    /// with the console's service token; only the public key travels).
    pub async fn console_bus_credential(
        &self,
        service_token: &str,
        public_key: &str,
    ) -> Result<ConsoleCredentialResponse, AppError> {
        let request = ConsoleCredentialRequest {
            public_key: public_key.to_owned(),
        };
        Ok(self
            .client
            .bearer(service_token)
            .call::<routes::MintConsoleBusCredential>(&NoParams {}, &NoParams {}, &request)
            .await?)
    }

    pub fn base(&self) -> &str {
        self.client.base()
    }

    /// Calls `E` as the signed-in user (`token`) and reads its answer.
    pub async fn call<E: Endpoint>(
        &self,
        token: &str,
        path: &E::Path,
        query: &E::Query,
        body: &<E::Request as RequestBody>::Value,
    ) -> Result<<E::Response as ResponseBody>::Value, AppError> {
        Ok(self
            .client
            .bearer(token)
            .call::<E>(path, query, body)
            .await?)
    }

    /// Calls `E` as the signed-in user and reads its answer as the page
    /// model `T` (`server::contract` tests that each reads the contract's JSON).
    pub async fn call_as<E: Endpoint, T: DeserializeOwned>(
        &self,
        token: &str,
        path: &E::Path,
        query: &E::Query,
        body: &<E::Request as RequestBody>::Value,
    ) -> Result<T, AppError> {
        Ok(self
            .client
            .bearer(token)
            .call_as::<E, T>(path, query, body)
            .await?)
    }

    /// Calls `E` whose body the caller streams on (exports): the client's
    /// overall timeout would cut a long download, so this one has an hour
    /// (the connection's own timeout still applies).
    pub async fn stream<E: Endpoint>(
        &self,
        token: &str,
        path: &E::Path,
        query: &E::Query,
    ) -> Result<reqwest::Response, ClientError>
    where
        E::Request: RequestBody<Value = ()>,
    {
        self.client
            .bearer(token)
            .stream::<E>(path, query, Duration::from_secs(3600))
            .await
    }

    /// The caller's roles in `org` (every role for an operator), from `/api/me`.
    pub async fn roles(&self, token: &str, org: &str) -> Result<Vec<String>, AppError> {
        let me = self.me_view(token).await?;
        Ok(me
            .orgs
            .into_iter()
            .find(|o| o.id == org)
            .map(|o| o.roles)
            .unwrap_or_default())
    }

    async fn me_view(&self, token: &str) -> Result<MeView, AppError> {
        self.call::<routes::GetMe>(token, &NoParams {}, &NoParams {}, &())
            .await
    }

    pub async fn ready(&self) -> bool {
        self.client
            .call::<routes::Readyz>(&NoParams {}, &NoParams {}, &())
            .await
            .is_ok_and(|r| r.ready)
    }

    /// How to show the caller: email, else name, else subject.
    pub async fn me(&self, token: &str) -> Result<String, AppError> {
        let me = self.me_view(token).await?;
        Ok(me.email.or(me.name).unwrap_or(me.subject))
    }

    pub async fn orgs(&self, token: &str) -> Result<Vec<OrgInfo>, AppError> {
        let orgs = self
            .call::<routes::ListOrgs>(token, &NoParams {}, &NoParams {}, &())
            .await?;
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
        let owned = |key| q.get(key).map(str::to_owned);
        let query = NodeListQuery {
            tenant: owned("tenant"),
            status: owned("status"),
            label: owned("label"),
            version: owned("version"),
            q: owned("q"),
            sort: owned("sort"),
            order: owned("order"),
            limit: Some(i64::from(limit)),
            cursor: owned("cursor"),
            drifted: q.get("drifted").map(|v| v == "true"),
            key_warning: q.get("key_warning").map(|v| v == "true"),
        };
        let page = self
            .call::<routes::ListNodes>(token, &OrgPath::new(org), &query, &())
            .await?;
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
        self.call::<routes::GetNodeSummary>(token, &OrgPath::new(org), &NoParams {}, &())
            .await
    }

    pub async fn node(
        &self,
        token: &str,
        org: &str,
        id: &str,
        controller_url: &str,
    ) -> Result<NodeDetail, AppError> {
        let path = OrgNodePath::new(org, id);
        let detail = self
            .call::<routes::GetNode>(token, &path, &NoParams {}, &())
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
        let t = self
            .call::<routes::CreateToken>(token, &OrgPath::new(org), &NoParams {}, &body)
            .await?;
        let secret = t
            .token
            .clone()
            .ok_or_else(|| AppError::Internal("the API returned no token secret".into()))?;
        Ok((token_info(&t), secret))
    }

    pub async fn tokens(&self, token: &str, org: &str) -> Result<Vec<TokenInfo>, AppError> {
        let list = self
            .call::<routes::ListTokens>(token, &OrgPath::new(org), &NoParams {}, &())
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
        let filter = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let query = ritma_api::access::AuditQuery {
            actor: filter(&q.actor),
            action: filter(&q.action),
            target: filter(&q.target),
            before_id: q.before,
            limit: Some(i64::from(limit) + 1),
        };
        let mut list = self
            .call::<routes::ListAudit>(token, &OrgPath::new(org), &query, &())
            .await?;
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
        self.call::<routes::RevokeToken>(token, &uuid_path(org, id)?, &NoParams {}, &())
            .await
    }
}
