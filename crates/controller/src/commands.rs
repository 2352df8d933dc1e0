//! Commands to nodes, sent from the controller's connection in the node's
//! org account (subjects built by `ritma-protocol`), each signed by the org's
//! control key for one node, with an expiry and a unique id.

use std::time::Duration;

use nkeys::KeyPair;
use ritma_db::policies::PolicyReassigned;
use ritma_protocol::connectors::{ConnectorConfig, DryRunReport};
use ritma_protocol::diagnostics::DiagnosticBundle;
use ritma_protocol::{Command, CommandKind, NodeId, NodeSubject, OrgId, SignedCommand, TenantId};

use crate::accounts::Accounts;
use crate::error::ApiError;
use crate::trust::ControlKeys;

fn scope(org: &str, tenant: &str, node: &str) -> Result<NodeSubject, ApiError> {
    let bad = |e: ritma_protocol::IdError| ApiError::Internal(e.to_string());
    Ok(NodeSubject::new(
        OrgId::new(org).map_err(bad)?,
        TenantId::new(tenant).map_err(bad)?,
        NodeId::new(node).map_err(bad)?,
    ))
}

/// The signed body of `kind` for the node of `scope`.
fn signed(
    key: &KeyPair,
    ttl_secs: i64,
    scope: &NodeSubject,
    kind: CommandKind,
) -> Result<bytes::Bytes, ApiError> {
    let cmd = Command::new(scope.org.clone(), scope.node.clone(), ttl_secs, kind);
    let signed = SignedCommand::sign(&cmd, key).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(signed.encode().into())
}

/// Tell each reassigned node to fetch its policy. Best effort: a node that
/// misses it (offline) picks the change up at its next periodic sync.
pub async fn policy_changed_send(
    accounts: &Accounts,
    control: &ControlKeys,
    org: &str,
    reassigned: &[PolicyReassigned],
) {
    if reassigned.is_empty() {
        return;
    }
    let ready =
        async { Ok::<_, ApiError>((accounts.org_client(org).await?, control.key(org).await?)) };
    let (client, key) = match ready.await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, org, "policy change not pushed; nodes will re-sync");
            return;
        }
    };
    for r in reassigned {
        let Ok(scope) = scope(org, &r.tenant_id, &r.node_id) else {
            continue;
        };
        let kind = CommandKind::PolicyChanged {
            version: r.assigned.clone().unwrap_or_else(|| "none".into()),
        };
        let subject = scope.command(kind.token());
        let body = match signed(&key, control.command_ttl_secs, &scope, kind) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, node = %r.node_id, "policy change not signed");
                continue;
            }
        };
        if let Err(e) = client.publish(subject, body).await {
            tracing::warn!(error = %e, node = %r.node_id, "policy change not pushed");
        }
    }
    let _ = client.flush().await;
}

/// The node a request goes to, and how long to wait for its answer.
pub struct NodeRequest<'a> {
    pub accounts: &'a Accounts,
    pub control: &'a ControlKeys,
    pub org: &'a str,
    pub tenant: &'a str,
    pub node: &'a str,
    pub timeout: Duration,
}

impl NodeRequest<'_> {
    /// Send `kind` and read the node's answer as `T`; `what` names the
    /// request in errors ("the dry run").
    async fn ask<T: serde::de::DeserializeOwned>(
        &self,
        kind: CommandKind,
        what: &str,
    ) -> Result<T, ApiError> {
        let node = self.node;
        let scope = scope(self.org, self.tenant, node)?;
        let client = self.accounts.org_client(self.org).await?;
        let subject = scope.command(kind.token());
        let body = signed(
            &self.control.key(self.org).await?,
            self.control.command_ttl_secs,
            &scope,
            kind,
        )?;
        let request = client.send_request(
            subject,
            async_nats::Request::new()
                .payload(body)
                .timeout(Some(self.timeout)),
        );
        // The bus's own timeout answers first; this one only guards a stuck call.
        let reply = match tokio::time::timeout(self.timeout + Duration::from_secs(1), request).await
        {
            Err(_) => {
                return Err(ApiError::NodeUnreachable(format!(
                    "node {node} did not answer {what} within {}s",
                    self.timeout.as_secs()
                )));
            }
            Ok(Err(e)) => {
                return Err(ApiError::NodeUnreachable(format!(
                    "node {node} is not reachable on the bus: {e}"
                )));
            }
            Ok(Ok(msg)) => msg,
        };
        // A node that refused the command says why (e.g. it pinned another key).
        if let Ok(refusal) = serde_json::from_slice::<serde_json::Value>(&reply.payload)
            && refusal["status"] == "refused"
        {
            return Err(ApiError::NodeUnreachable(format!(
                "node {node} refused {what}: {}",
                refusal["error"].as_str().unwrap_or("no reason given")
            )));
        }
        serde_json::from_slice(&reply.payload).map_err(|e| {
            ApiError::NodeUnreachable(format!(
                "node {node} sent an unreadable answer to {what}: {e}"
            ))
        })
    }

    /// Ask the node to run a connector's checks and wait for its report.
    pub async fn connector_dry_run(
        &self,
        connector_id: &str,
        config: &ConnectorConfig,
    ) -> Result<DryRunReport, ApiError> {
        let kind = CommandKind::ConnectorDryRun {
            connector_id: connector_id.to_owned(),
            config: config.clone(),
        };
        self.ask(kind, "the dry run").await
    }

    /// Ask the node for its diagnostic bundle.
    pub async fn diagnose(&self) -> Result<DiagnosticBundle, ApiError> {
        self.ask(CommandKind::Diagnose, "the diagnose request")
            .await
    }
}
