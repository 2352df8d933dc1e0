use axum::extract::State;
use axum::{Extension, Json};
use data_encoding::BASE64URL_NOPAD;
use ritma_api::nodes::{
    HostView, NodeDetail, NodeList, NodeListQuery, NodeSummary, NodeView, SpoolView, StatusChange,
};
use ritma_db::nodes::{self, NodeFilter, NodeRecord, NodeSort, StatusHistoryEntry};
use ritma_db::outbox::{StatusTransition, transitions_record};
use ritma_protocol::diagnostics::DiagnosticBundle;
use ritma_protocol::{NodeId, NodeStatus, OrgId};
use serde_json::json;

use super::{AppState, PathParams, QueryParams, path_id};
use crate::audit::{self, WithStates};
use crate::auth::{Action, Principal};
use crate::error::ApiError;

/// The API's view of a node record.
pub(crate) fn node_view(n: NodeRecord) -> Result<NodeView, ApiError> {
    let host = n.host_os.map(|os| HostView {
        hostname: n.hostname.clone(),
        os,
        kernel: n.host_kernel,
        arch: n.host_arch,
        cpus: n.host_cpus,
        memory_bytes: n.host_memory_bytes,
        uptime_secs: n.host_uptime_secs,
    });
    let spool = n.spool_depth.map(|depth| SpoolView {
        depth,
        dropped: n.spool_dropped.unwrap_or(0),
    });
    Ok(NodeView {
        status: stored_status(&n.status)?,
        id: n.id,
        org_id: n.org_id,
        tenant_id: n.tenant_id,
        hostname: n.hostname,
        labels: n.labels.0,
        capabilities: n.capabilities.0,
        status_changed_at: n.status_changed_at,
        enrolled_at: n.enrolled_at,
        agent_version: n.agent_version,
        policy_version: n.policy_version,
        last_policy_sync_at: n.last_policy_sync_at,
        last_evidence_batch_at: n.last_evidence_batch_at,
        key_id: n.key_id,
        interval_secs: n.interval_secs,
        last_seen_at: n.last_seen_at,
        last_sent_at: n.last_sent_at,
        last_seq: n.last_seq,
        connector_count: n.connector_count,
        slo_counters: n.slo_counters.map(|j| j.0),
        host,
        spool,
        public_key: n.public_key,
        policy_assigned: n.policy_assigned,
        policy_mode: n.policy_mode,
        drifted: n.drifted,
        drift_since: n.drift_since,
        key_warning: n.key_warning,
        policy_rejected: n.policy_rejected,
    })
}

/// A status as the database stores it (its own CHECK keeps it one of ours).
pub(crate) fn stored_status(s: &str) -> Result<NodeStatus, ApiError> {
    NodeStatus::parse(s).ok_or_else(|| ApiError::Internal(format!("stored node status {s:?}")))
}

fn status_change(h: StatusHistoryEntry) -> Result<StatusChange, ApiError> {
    Ok(StatusChange {
        from_status: stored_status(&h.from_status)?,
        to_status: stored_status(&h.to_status)?,
        reason: h.reason,
        at: h.at,
    })
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

pub(crate) fn filter_from(q: NodeListQuery) -> Result<NodeFilter, ApiError> {
    let non_empty = |s: Option<String>| s.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let mut f = NodeFilter {
        tenant: non_empty(q.tenant),
        agent_version: non_empty(q.version),
        text: non_empty(q.q),
        limit: q.limit.unwrap_or(50).clamp(1, 500),
        drifted: q.drifted.unwrap_or(false),
        key_warning: q.key_warning.unwrap_or(false),
        ..Default::default()
    };
    if let Some(t) = &f.text
        && t.len() > 128
    {
        return Err(bad("q is longer than 128 characters"));
    }
    if let Some(statuses) = non_empty(q.status) {
        for s in statuses.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            NodeStatus::parse(s).ok_or_else(|| bad(format!("unknown status {s:?}")))?;
            f.statuses.push(s.to_owned());
        }
    }
    if let Some(labels) = non_empty(q.label) {
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad(format!("label filter {pair:?} must be key=value")))?;
            f.labels.insert(k.trim().to_owned(), v.trim().to_owned());
        }
    }
    f.sort = match q.sort.as_deref() {
        None | Some("") | Some("name") | Some("id") => NodeSort::Name,
        Some("last_seen") => NodeSort::LastSeen,
        Some("status") => NodeSort::Status,
        Some(other) => return Err(bad(format!("cannot sort by {other:?}"))),
    };
    f.descending = match q.order.as_deref() {
        None | Some("") | Some("asc") => false,
        Some("desc") => true,
        Some(other) => return Err(bad(format!("order must be asc or desc, not {other:?}"))),
    };
    if let Some(cursor) = non_empty(q.cursor) {
        let raw = BASE64URL_NOPAD
            .decode(cursor.as_bytes())
            .map_err(|_| bad("invalid cursor"))?;
        let (value, id): (Option<String>, String) =
            serde_json::from_slice(&raw).map_err(|_| bad("invalid cursor"))?;
        f.after = Some((value, id));
    }
    Ok(f)
}

pub async fn list(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org_raw): PathParams<String>,
    QueryParams(query): QueryParams<NodeListQuery>,
) -> Result<Json<NodeList>, ApiError> {
    let org: OrgId = path_id(&org_raw, "org")?;
    p.authorize(&org, Action::ReadFleet)?;
    let filter = filter_from(query)?;
    let page = nodes::node_list(&state.pool, org.as_str(), &filter).await?;
    let next_cursor = (page.items.len() as i64 == filter.limit)
        .then(|| page.items.last())
        .flatten()
        .map(|last| {
            let key = (nodes::sort_value(last, filter.sort), last.id.clone());
            BASE64URL_NOPAD.encode(&serde_json::to_vec(&key).unwrap_or_default())
        });
    Ok(Json(NodeList {
        items: page
            .items
            .into_iter()
            .map(node_view)
            .collect::<Result<_, _>>()?,
        next_cursor,
        total: page.total,
        total_exact: page.total_exact,
    }))
}

async fn load(
    state: &AppState,
    p: &Principal,
    action: Action,
    org: &str,
    id: &str,
) -> Result<NodeRecord, ApiError> {
    let org: OrgId = path_id(org, "org")?;
    p.authorize(&org, action)?;
    let id: NodeId = path_id(id, "node")?;
    nodes::node_get(&state.pool, org.as_str(), id.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("node {id}")))
}

pub async fn get(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams((org, id)): PathParams<(String, String)>,
) -> Result<Json<NodeDetail>, ApiError> {
    let node = load(&state, &p, Action::ReadFleet, &org, &id).await?;
    let status_history = nodes::node_status_history(&state.pool, &node.id, 100).await?;
    Ok(Json(NodeDetail {
        node: node_view(node)?,
        status_history: status_history
            .into_iter()
            .map(status_change)
            .collect::<Result<_, _>>()?,
    }))
}

/// Counts by status, for dashboards.
pub async fn summary(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org_raw): PathParams<String>,
) -> Result<Json<NodeSummary>, ApiError> {
    let org: OrgId = path_id(&org_raw, "org")?;
    p.authorize(&org, Action::ReadFleet)?;
    let nodes::NodeCounts {
        mut by_status,
        drifted,
        key_warnings,
    } = nodes::node_counts(&state.pool, org.as_str()).await?;
    for status in NodeStatus::ALL {
        by_status.entry(status.as_str().to_owned()).or_insert(0);
    }
    let total: i64 = by_status.values().sum();
    Ok(Json(NodeSummary {
        total,
        by_status,
        drifted,
        key_warnings,
    }))
}

/// Remove a node: its key is revoked at the broker at once, so its
/// connection is cut and cannot come back, and it can no longer refresh.
pub async fn decommission(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams((org, id)): PathParams<(String, String)>,
) -> Result<Json<NodeView>, ApiError> {
    let node = load(&state, &p, Action::ManageNodes, &org, &id).await?;
    let org_record = ritma_db::orgs::org_get(&state.pool, &node.org_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("org {}", node.org_id)))?;
    if node.status != NodeStatus::Decommissioned.as_str() {
        let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
        nodes::node_decommission(&mut tx, &node.id).await?;
        transitions_record(
            &mut tx,
            &[StatusTransition::of(
                &node,
                &node.status,
                NodeStatus::Decommissioned.as_str(),
                "decommissioned by an operator".into(),
            )],
        )
        .await?;
        audit::record(
            &mut tx,
            audit::entry(&p, Some(&node.org_id), "node.decommission", &node.id).states(
                Some(json!({ "status": node.status, "public_key": node.public_key })),
                Some(json!({ "status": "decommissioned", "key_revoked": true })),
            ),
        )
        .await?;
        tx.commit().await.map_err(ritma_db::DbError::from)?;
    }
    // Idempotent: pushing the revocation again is harmless.
    state
        .accounts
        .revoke_user(&org_record, &node.public_key)
        .await?;
    tracing::info!(node = %node.id, org = %node.org_id, "node decommissioned and its key revoked");
    let node = load(&state, &p, Action::ManageNodes, &node.org_id, &node.id).await?;
    Ok(Json(node_view(node)?))
}

/// Ask a node for its diagnostic bundle over its command subject (signed
/// by the org's control key). Audited; a budget per node, shared with
/// connector dry runs, since each makes the node read its state folder.
pub async fn diagnose(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams((org, id)): PathParams<(String, String)>,
) -> Result<Json<DiagnosticBundle>, ApiError> {
    let node = load(&state, &p, Action::ManageNodes, &org, &id).await?;
    if node.status == NodeStatus::Decommissioned.as_str() {
        return Err(ApiError::Conflict(format!(
            "node {} is decommissioned: it has no connection to ask",
            node.id
        )));
    }
    super::fleet_common::work_budget(
        &state,
        &format!("diagnose:{}", node.id),
        &format!("diagnose requests for node {}", node.id),
    )?;
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    audit::record(
        &mut tx,
        audit::entry(&p, Some(&node.org_id), "node.diagnose", &node.id),
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    let bundle = crate::commands::NodeRequest {
        accounts: &state.accounts,
        control: &state.control,
        org: &node.org_id,
        tenant: &node.tenant_id,
        node: &node.id,
        timeout: state.fleet.dry_run_timeout,
    }
    .diagnose()
    .await?;
    Ok(Json(bundle))
}
