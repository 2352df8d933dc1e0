//! Commands to nodes, sent from the controller's connection in the node's
//! org account (subjects built by `ritma-protocol`).

use std::time::Duration;

use chrono::Utc;
use ritma_db::policies::PolicyReassigned;
use ritma_protocol::connectors::{ConnectorConfig, DryRunReport};
use ritma_protocol::{Command, CommandKind, NodeId, NodeSubject, OrgId, SCHEMA_VERSION, TenantId};

use crate::accounts::Accounts;
use crate::error::ApiError;

fn scope(org: &str, tenant: &str, node: &str) -> Result<NodeSubject, ApiError> {
    let bad = |e: ritma_protocol::IdError| ApiError::Internal(e.to_string());
    Ok(NodeSubject::new(
        OrgId::new(org).map_err(bad)?,
        TenantId::new(tenant).map_err(bad)?,
        NodeId::new(node).map_err(bad)?,
    ))
}

fn command(kind: CommandKind) -> Command {
    Command {
        v: SCHEMA_VERSION,
        id: uuid::Uuid::new_v4(),
        issued_at: Utc::now(),
        command: kind,
    }
}

fn encode(cmd: &Command) -> bytes::Bytes {
    serde_json::to_vec(cmd).unwrap_or_default().into()
}

/// Tell each reassigned node to fetch its policy. Best effort: a node that
/// misses it (offline) picks the change up at its next periodic sync.
pub async fn policy_changed_send(accounts: &Accounts, org: &str, reassigned: &[PolicyReassigned]) {
    if reassigned.is_empty() {
        return;
    }
    let client = match accounts.org_client(org).await {
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
        let cmd = command(CommandKind::PolicyChanged {
            version: r.assigned.clone().unwrap_or_else(|| "none".into()),
        });
        if let Err(e) = client
            .publish(scope.command(cmd.command.token()), encode(&cmd))
            .await
        {
            tracing::warn!(error = %e, node = %r.node_id, "policy change not pushed");
        }
    }
    let _ = client.flush().await;
}

/// Ask a node to run a connector's checks and wait for its report.
pub async fn connector_dry_run(
    accounts: &Accounts,
    org: &str,
    tenant: &str,
    node: &str,
    connector_id: &str,
    config: &ConnectorConfig,
    timeout: Duration,
) -> Result<DryRunReport, ApiError> {
    let scope = scope(org, tenant, node)?;
    let client = accounts.org_client(org).await?;
    let cmd = command(CommandKind::ConnectorDryRun {
        connector_id: connector_id.to_owned(),
        config: config.clone(),
    });
    let request = client.send_request(
        scope.command(cmd.command.token()),
        async_nats::Request::new()
            .payload(encode(&cmd))
            .timeout(Some(timeout)),
    );
    // The bus's own timeout answers first; this one only guards a stuck call.
    let reply = match tokio::time::timeout(timeout + Duration::from_secs(1), request).await {
        Err(_) => {
            return Err(ApiError::NodeUnreachable(format!(
                "node {node} did not answer the dry run within {}s",
                timeout.as_secs()
            )));
        }
        Ok(Err(e)) => {
            return Err(ApiError::NodeUnreachable(format!(
                "node {node} is not reachable on the bus: {e}"
            )));
        }
        Ok(Ok(msg)) => msg,
    };
    serde_json::from_slice(&reply.payload).map_err(|e| {
        ApiError::NodeUnreachable(format!(
            "node {node} sent an unreadable dry-run report: {e}"
        ))
    })
}
