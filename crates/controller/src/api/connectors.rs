//! Connector configurations per node, their dry runs, and the cross-node view.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use ritma_api::connectors::{ConnectorList, ConnectorListQuery, ConnectorView};
use ritma_db::connectors::{self, ConnectorFilter, ConnectorRecord};
use ritma_protocol::connectors::{
    ConnectorAllowList, ConnectorConfig, ConnectorKind, DryRunReport,
};
use ritma_protocol::validate::Validate;

use super::fleet_common::{node_authorized, org_authorized};
use super::{AppState, JsonBody, PathParams, QueryParams};
use crate::audit::{self, WithStates};
use crate::auth::{Action, Principal};
use crate::commands;
use crate::error::ApiError;

fn connector_id_check(raw: &str) -> Result<String, ApiError> {
    ritma_protocol::NodeId::new(raw)
        .map(|id| id.as_str().to_owned())
        .map_err(|_| ApiError::NotFound(format!("connector {raw}")))
}

/// The org's connector allow-list, or the default when none was set.
async fn allow_list_of(state: &AppState, org: &str) -> Result<ConnectorAllowList, ApiError> {
    match connectors::connector_allow_list_get(&state.pool, org).await? {
        Some(v) => serde_json::from_value(v)
            .map_err(|e| ApiError::Internal(format!("stored connector allow-list: {e}"))),
        None => Ok(ConnectorAllowList::default()),
    }
}

fn permitted(list: &ConnectorAllowList, config: &ConnectorConfig) -> Result<(), ApiError> {
    list.permits(config).map_err(|e| {
        ApiError::BadRequest(format!(
            "{e} (see GET /api/orgs/{{org}}/connector-allow-list)"
        ))
    })
}

/// `GET /api/orgs/{org}/connector-allow-list`
pub async fn allow_list_get(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
) -> Result<Json<ConnectorAllowList>, ApiError> {
    let org = org_authorized(&p, Action::ReadFleet, &org)?;
    Ok(Json(allow_list_of(&state, org.as_str()).await?))
}

/// `PUT /api/orgs/{org}/connector-allow-list`: org owners decide what the
/// org's connectors may make its nodes touch. Audited.
pub async fn allow_list_put(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
    JsonBody(list): JsonBody<ConnectorAllowList>,
) -> Result<Json<ConnectorAllowList>, ApiError> {
    let org = org_authorized(&p, Action::ManageRoles, &org)?;
    list.validate()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let value = serde_json::to_value(&list).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    let before = connectors::connector_allow_list_put(&mut tx, org.as_str(), &value).await?;
    audit::record(
        &mut tx,
        audit::entry(&p, Some(org.as_str()), "connector.allow_list", org.as_str())
            .states(before, Some(value)),
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    Ok(Json(list))
}

pub async fn node_list(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(id): PathParams<String>,
) -> Result<Json<ConnectorList>, ApiError> {
    let node = node_authorized(&state, &p, Action::ReadFleet, &id).await?;
    let filter = ConnectorFilter {
        node_id: Some(node.id.clone()),
        ..Default::default()
    };
    let items = connectors::connector_list(&state.pool, &node.org_id, &filter).await?;
    connector_list(items)
}

/// Create or replace a connector. The body is the typed config; anything
/// that looks like an inline secret is refused (only references are kept).
pub async fn put(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams((id, cid)): PathParams<(String, String)>,
    JsonBody(config): JsonBody<ConnectorConfig>,
) -> Result<(StatusCode, Json<ConnectorView>), ApiError> {
    let node = node_authorized(&state, &p, Action::ManageNodes, &id).await?;
    let cid = connector_id_check(&cid)?;
    config
        .validate()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    permitted(&allow_list_of(&state, &node.org_id).await?, &config)?;
    let value = serde_json::to_value(&config).map_err(|e| ApiError::Internal(e.to_string()))?;
    // The change and its audit entry commit together.
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    let created = connectors::connector_upsert(
        &mut tx,
        &node.org_id,
        &node.id,
        &cid,
        config.kind().as_str(),
        &value,
    )
    .await?;
    audit::record(
        &mut tx,
        audit::entry(
            &p,
            Some(&node.org_id),
            "connector.put",
            format!("{}/{cid}", node.id),
        )
        .states(None, Some(value)),
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    let record = connectors::connector_get(&state.pool, &node.org_id, &node.id, &cid)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("connector {cid} vanished")))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(connector_view(record)?)))
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams((id, cid)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let node = node_authorized(&state, &p, Action::ManageNodes, &id).await?;
    let cid = connector_id_check(&cid)?;
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    if !connectors::connector_delete(&mut tx, &node.org_id, &node.id, &cid).await? {
        return Err(ApiError::NotFound(format!("connector {cid}")));
    }
    audit::record(
        &mut tx,
        audit::entry(
            &p,
            Some(&node.org_id),
            "connector.delete",
            format!("{}/{cid}", node.id),
        ),
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ask the node to run the connector's checks now; the findings are kept as
/// the connector's last run.
pub async fn dry_run(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams((id, cid)): PathParams<(String, String)>,
) -> Result<Json<DryRunReport>, ApiError> {
    let node = node_authorized(&state, &p, Action::ManageNodes, &id).await?;
    let cid = connector_id_check(&cid)?;
    let record = connectors::connector_get(&state.pool, &node.org_id, &node.id, &cid)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("connector {cid}")))?;
    let config: ConnectorConfig = serde_json::from_value(record.config)
        .map_err(|e| ApiError::Internal(format!("stored connector config: {e}")))?;
    // The list may have narrowed since the connector was saved.
    permitted(&allow_list_of(&state, &node.org_id).await?, &config)?;
    // Each dry run makes the node open files and connections.
    super::fleet_common::work_budget(&state, &node.id, &format!("dry runs for node {}", node.id))?;
    let report = commands::NodeRequest {
        accounts: &state.accounts,
        control: &state.control,
        org: &node.org_id,
        tenant: &node.tenant_id,
        node: &node.id,
        timeout: state.fleet.dry_run_timeout,
    }
    .connector_dry_run(&cid, &config)
    .await?;
    let value = serde_json::to_value(&report).map_err(|e| ApiError::Internal(e.to_string()))?;
    connectors::connector_record_run(
        &state.pool,
        &node.id,
        &cid,
        &value,
        report.outcome.as_str(),
        report.finished_at,
    )
    .await?;
    Ok(Json(report))
}

/// Every connector of the org with its last result.
pub async fn org_list(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
    QueryParams(q): QueryParams<ConnectorListQuery>,
) -> Result<Json<ConnectorList>, ApiError> {
    let org = org_authorized(&p, Action::ReadFleet, &org)?;
    let kind = q.kind.filter(|k| !k.is_empty());
    if let Some(k) = &kind
        && ConnectorKind::parse(k).is_none()
    {
        return Err(ApiError::BadRequest(format!(
            "kind must be host, storage, k8s, aws or gcp, not {k:?}"
        )));
    }
    let outcome = q.outcome.filter(|o| !o.is_empty());
    if let Some(o) = &outcome
        && !["pass", "fail", "incomplete", "never"].contains(&o.as_str())
    {
        return Err(ApiError::BadRequest(format!(
            "outcome must be pass, fail, incomplete or never, not {o:?}"
        )));
    }
    let filter = ConnectorFilter {
        node_id: None,
        kind,
        outcome,
    };
    let items = connectors::connector_list(&state.pool, org.as_str(), &filter).await?;
    connector_list(items)
}

fn connector_list(items: Vec<ConnectorRecord>) -> Result<Json<ConnectorList>, ApiError> {
    Ok(Json(ConnectorList {
        items: items
            .into_iter()
            .map(connector_view)
            .collect::<Result<_, _>>()?,
    }))
}

/// The API's view of a connector record.
fn connector_view(c: ConnectorRecord) -> Result<ConnectorView, ApiError> {
    let kind = ConnectorKind::parse(&c.kind)
        .ok_or_else(|| ApiError::Internal(format!("stored connector kind {:?}", c.kind)))?;
    Ok(ConnectorView {
        node_status: super::nodes::stored_status(&c.node_status)?,
        id: c.id,
        node_id: c.node_id,
        tenant_id: c.tenant_id,
        kind,
        config: c.config,
        created_at: c.created_at,
        updated_at: c.updated_at,
        last_run: c.last_run,
        last_run_at: c.last_run_at,
        last_outcome: c.last_outcome,
        node_hostname: c.node_hostname,
    })
}
