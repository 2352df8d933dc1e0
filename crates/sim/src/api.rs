//! The controller API client: org, enrollment token and node registration.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use nkeys::KeyPair;
use ritma_api::orgs::CreateOrg;
use ritma_api::tokens::{CreateToken, TokenView};
use ritma_protocol::enrollment::{RegisterRequest, RegisterResponse};
use ritma_protocol::{NodeId, NodeSubject, OrgId, TenantId};

use crate::{SimError, SimNode};

/// A thin admin client for the few calls the simulator makes.
#[derive(Clone)]
pub struct Api {
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(url: &str, token: &str) -> Result<Self, SimError> {
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    async fn post(
        &self,
        what: &'static str,
        path: &str,
        body: &impl serde::Serialize,
        ok: &[u16],
    ) -> Result<serde_json::Value, SimError> {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        if !ok.contains(&status) {
            return Err(SimError::Api {
                what,
                status,
                body: text.chars().take(500).collect(),
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }

    /// Create the org unless it exists.
    pub async fn org_ensure(&self, org: &OrgId) -> Result<(), SimError> {
        self.post(
            "create org",
            "/api/orgs",
            &CreateOrg {
                id: org.as_str().to_owned(),
                name: None,
            },
            &[200, 201, 409],
        )
        .await
        .map(|_| ())
    }

    /// An enrollment token for `max_uses` nodes; returns its secret.
    pub async fn token_create(
        &self,
        org: &OrgId,
        tenant: &TenantId,
        max_uses: usize,
    ) -> Result<String, SimError> {
        let max_uses = i32::try_from(max_uses)
            .map_err(|_| SimError::Config("too many nodes for one token".into()))?;
        let body = self
            .post(
                "create token",
                &format!("/api/orgs/{org}/enrollment-tokens"),
                &CreateToken {
                    tenant_id: tenant.as_str().to_owned(),
                    ttl_secs: None,
                    max_uses: Some(max_uses),
                    labels: [("sim".to_owned(), "true".to_owned())].into(),
                },
                &[200, 201],
            )
            .await?;
        serde_json::from_value::<TokenView>(body)
            .ok()
            .and_then(|t| t.token)
            .ok_or_else(|| SimError::Api {
                what: "create token",
                status: 201,
                body: "no token in the answer".into(),
            })
    }

    /// Register one node with its own fresh key, as the daemon does.
    pub async fn register(
        &self,
        token: &str,
        node: &NodeId,
    ) -> Result<(RegisterResponse, KeyPair), SimError> {
        let key = KeyPair::new_user();
        let req = RegisterRequest {
            token: token.to_owned(),
            public_key: key.public_key(),
            hostname: node.to_string(),
            labels: BTreeMap::new(),
            capabilities: vec![],
            agent_version: "ritma-sim".into(),
            node_id: Some(node.clone()),
        };
        let resp = self
            .http
            .post(format!("{}/api/nodes/register", self.url))
            .json(&req)
            .send()
            .await?;
        let status = resp.status().as_u16();
        if status != 200 && status != 201 {
            return Err(SimError::Api {
                what: "register node",
                status,
                body: resp.text().await.unwrap_or_default(),
            });
        }
        Ok((resp.json().await?, key))
    }
}

/// Enroll `n` nodes through the API with one token of `max_uses = n`.
/// Returns the nodes and the NATS URLs enrollment handed out.
pub async fn enroll(
    api: &Api,
    org: &OrgId,
    tenant: &TenantId,
    prefix: &str,
    n: usize,
    concurrency: usize,
    progress: bool,
) -> Result<(Vec<SimNode>, Vec<String>), SimError> {
    api.org_ensure(org).await?;
    let token = Arc::new(api.token_create(org, tenant, n.max(1)).await?);
    let ids = (0..n)
        .map(|i| NodeId::new(format!("{prefix}-{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    let started = std::time::Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let mut results = futures::stream::iter(ids.into_iter().map(|id| {
        let api = api.clone();
        let token = token.clone();
        let done = done.clone();
        async move {
            let r = api.register(&token, &id).await;
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            if progress && d.is_multiple_of(1000) {
                eprintln!(
                    "  enrolled {d}/{n} ({:.0}/s)",
                    d as f64 / started.elapsed().as_secs_f64()
                );
            }
            r
        }
    }))
    .buffer_unordered(concurrency.max(1));
    let mut nodes = Vec::with_capacity(n);
    let mut urls = vec![];
    while let Some(r) = results.next().await {
        let (reply, key) = r?;
        if urls.is_empty() {
            urls = reply.nats_urls.clone();
        }
        nodes.push(SimNode {
            scope: NodeSubject::new(reply.org_id, reply.tenant_id, reply.node_id),
            creds: Some((Arc::new(key), reply.jwt)),
        });
    }
    Ok((nodes, urls))
}
