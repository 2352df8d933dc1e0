//! Connector configurations per node, their dry runs, and the cross-node view.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use ritma_db::connectors::{self, ConnectorFilter, ConnectorRecord};
use ritma_protocol::connectors::{ConnectorConfig, ConnectorKind, DryRunReport};
use ritma_protocol::validate::Validate;
use serde::Deserialize;
use serde_json::{Value, json};

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

pub async fn node_list(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let node = node_authorized(&state, &p, Action::ReadFleet, &id).await?;
    let filter = ConnectorFilter {
        node_id: Some(node.id.clone()),
        ..Default::default()
    };
    let items = connectors::connector_list(&state.pool, &node.org_id, &filter).await?;
    Ok(Json(json!({ "items": items })))
}

/// Create or replace a connector. The body is the typed config; anything
/// that looks like an inline secret is refused (only references are kept).
pub async fn put(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams((id, cid)): PathParams<(String, String)>,
    JsonBody(config): JsonBody<ConnectorConfig>,
) -> Result<(StatusCode, Json<ConnectorRecord>), ApiError> {
    let node = node_authorized(&state, &p, Action::ManageNodes, &id).await?;
    let cid = connector_id_check(&cid)?;
    config
        .validate()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
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
    Ok((status, Json(record)))
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
    let report = commands::connector_dry_run(
        &state.accounts,
        &node.org_id,
        &node.tenant_id,
        &node.id,
        &cid,
        &config,
        state.fleet.dry_run_timeout,
    )
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

#[derive(Deserialize, Default)]
pub struct OrgListQuery {
    pub kind: Option<String>,
    pub outcome: Option<String>,
}

/// Every connector of the org with its last result.
pub async fn org_list(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
    QueryParams(q): QueryParams<OrgListQuery>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({ "items": items })))
}
