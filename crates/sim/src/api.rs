//! The controller API client: org, enrollment token and node registration.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use nkeys::KeyPair;
use ritma_api::client::{Client, ClientError};
use ritma_api::orgs::CreateOrg;
use ritma_api::params::{NoParams, OrgPath};
use ritma_api::routes;
use ritma_api::tokens::CreateToken;
use ritma_protocol::enrollment::{RegisterRequest, RegisterResponse};
use ritma_protocol::{NodeId, NodeSubject, OrgId, TenantId};

use crate::{SimError, SimNode};

/// The simulator's admin client: the contract's typed client (`client`)
/// and, for the benchmarks' other HTTP calls, its connection pool (`http`).
#[derive(Clone)]
pub struct Api {
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
    pub client: Client,
}

/// A refusal or failure of `what`, as the simulator reports it.
fn failed(what: &'static str) -> impl FnOnce(ClientError) -> SimError {
    move |e| match e {
        ClientError::Transport(e) => SimError::Http(e),
        other => SimError::Api {
            what,
            status: other.status().unwrap_or(0),
            body: other.message(),
        },
    }
}

impl Api {
    pub fn new(url: &str, token: &str) -> Result<Self, SimError> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            client: Client::new(http.clone(), url),
            http,
        })
    }

    /// Create the org unless it exists.
    pub async fn org_ensure(&self, org: &OrgId) -> Result<(), SimError> {
        let create = CreateOrg {
            id: org.as_str().to_owned(),
            name: None,
        };
        let result = self
            .client
            .bearer(&self.token)
            .call::<routes::CreateOrg>(&NoParams {}, &NoParams {}, &create)
            .await;
        match result {
            Err(e) if e.status() == Some(409) => Ok(()),
            other => other.map(|_| ()).map_err(failed("create org")),
        }
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
        let create = CreateToken {
            tenant_id: tenant.as_str().to_owned(),
            ttl_secs: None,
            max_uses: Some(max_uses),
            labels: [("sim".to_owned(), "true".to_owned())].into(),
        };
        let org = OrgPath::new(org.as_str());
        self.client
            .bearer(&self.token)
            .call::<routes::CreateToken>(&org, &NoParams {}, &create)
            .await
            .map_err(failed("create token"))?
            .token
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
        let reply = self
            .client
            .call::<routes::RegisterNode>(&NoParams {}, &NoParams {}, &req)
            .await
            .map_err(failed("register node"))?;
        Ok((reply, key))
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
