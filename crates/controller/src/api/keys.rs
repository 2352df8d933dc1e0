//! Signing-key registry and governance. With `RITMA_CLOUD_URL` set, the
//! `ritma_cloud` registry is the source of truth: changes go there first and
//! the answer is what is kept here. Key ids are per org (here and in the
//! registry's paths) and refused when they could play tricks in a path.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use ritma_api::keys::{GovernancePatch, KeyCreate, KeyList, KeySummaryView, KeyView};
use ritma_db::keys::{self, KeyRecord, KeyUpsert};
use ritma_protocol::{KeyStatus, OrgId};
use serde_json::json;

use super::fleet_common::org_authorized;
use super::{AppState, JsonBody, PathParams, path_id};
use crate::audit::{self, WithStates};
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::upstream::ritma_cloud::{CloudKey, GovernanceUpdate};

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

fn key_id_check(raw: &str) -> Result<(), ApiError> {
    ritma_protocol::keys::key_id_check(raw).map_err(|e| bad(e.to_string()))
}

pub async fn list(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
) -> Result<Json<KeyList>, ApiError> {
    let org = org_authorized(&p, Action::ReadFleet, &org)?;
    let items = keys::key_list(&state.pool, org.as_str()).await?;
    let cloud = state.fleet.cloud_status.lock().await.clone();
    Ok(Json(KeyList {
        items: items.into_iter().map(key_view).collect::<Result<_, _>>()?,
        cloud,
    }))
}

pub async fn summary(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
) -> Result<Json<KeySummaryView>, ApiError> {
    let org = org_authorized(&p, Action::ReadFleet, &org)?;
    let local = keys::key_summary(&state.pool, org.as_str()).await?;
    let cloud = match &state.fleet.cloud {
        Some(cloud) => Some(match cloud.org_summary(org.as_str()).await {
            Ok(v) => v,
            Err(e) => json!({ "error": e.to_string() }),
        }),
        None => None,
    };
    Ok(Json(KeySummaryView {
        active: local.active,
        revoked: local.revoked,
        compromised: local.compromised,
        expired: local.expired,
        rotation_due: local.rotation_due,
        nodes_with_warnings: local.nodes_with_warnings,
        cloud,
    }))
}

/// The API's view of a key record.
fn key_view(k: KeyRecord) -> Result<KeyView, ApiError> {
    let status = KeyStatus::parse(&k.status)
        .ok_or_else(|| ApiError::Internal(format!("stored key status {:?}", k.status)))?;
    Ok(KeyView {
        key_id: k.key_id,
        org_id: k.org_id,
        label: k.label,
        status,
        source: k.source,
        created_at: k.created_at,
        rotated_at: k.rotated_at,
        rotate_by: k.rotate_by,
        expires_at: k.expires_at,
        last_used_at: k.last_used_at,
        updated_at: k.updated_at,
        updated_by: k.updated_by,
        nodes_using: k.nodes_using,
    })
}

/// Register a key used by this org's nodes.
pub async fn create(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
    JsonBody(body): JsonBody<KeyCreate>,
) -> Result<(StatusCode, Json<KeyView>), ApiError> {
    let org = org_authorized(&p, Action::ManageIntegrators, &org)?;
    key_id_check(&body.key_id)?;
    if body.label.len() > 256 {
        return Err(bad("label is longer than 256 bytes"));
    }
    if keys::key_get(&state.pool, org.as_str(), &body.key_id)
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict(format!(
            "key {} is already registered",
            body.key_id
        )));
    }
    let actor = p.actor();
    let upsert = KeyUpsert {
        key_id: &body.key_id,
        org_id: org.as_str(),
        label: &body.label,
        status: KeyStatus::Active.as_str(),
        source: "console",
        rotated_at: None,
        rotate_by: body.rotate_by,
        expires_at: body.expires_at,
        updated_by: &actor,
    };
    let record = key_apply(&state, &p, org.as_str(), &upsert, "key.register", None).await?;
    Ok((StatusCode::CREATED, Json(key_view(record)?)))
}

/// Write a key, bring node warnings in line, audit; one transaction.
async fn key_apply(
    state: &AppState,
    p: &Principal,
    org: &str,
    k: &KeyUpsert<'_>,
    action: &str,
    before: Option<&KeyRecord>,
) -> Result<KeyRecord, ApiError> {
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    keys::key_upsert(&mut tx, k).await?;
    keys::key_warnings_sync(&mut tx, org).await?;
    audit::record(
        &mut tx,
        audit::entry(p, Some(org), action, k.key_id).states(
            before
                .map(|b| json!({ "status": b.status, "label": b.label, "rotate_by": b.rotate_by })),
            Some(json!({ "status": k.status, "label": k.label, "rotate_by": k.rotate_by })),
        ),
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    keys::key_get(&state.pool, org, k.key_id)
        .await?
        .ok_or_else(|| ApiError::Internal("key vanished".into()))
}

/// `PATCH /api/orgs/{org}/keys/{key_id}/governance` (org owners and admins).
pub async fn governance(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams((org_raw, key_id)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<GovernancePatch>,
) -> Result<Json<KeyView>, ApiError> {
    key_id_check(&key_id)?;
    let org: OrgId = path_id(&org_raw, "org")?;
    p.authorize(&org, Action::ReadFleet)
        .map_err(|_| ApiError::NotFound(format!("key {key_id}")))?;
    let before = keys::key_get(&state.pool, org.as_str(), &key_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("key {key_id}")))?;
    p.authorize(&org, Action::ManageIntegrators)?;
    if let Some(s) = &body.status {
        KeyStatus::parse(s)
            .ok_or_else(|| bad("status must be active, revoked, compromised or expired"))?;
    }
    if body.label.as_ref().is_some_and(|l| l.len() > 256)
        || body.reason.as_ref().is_some_and(|r| r.len() > 1024)
    {
        return Err(bad("label (256) or reason (1024) is too long"));
    }
    if body.status.is_none() && body.label.is_none() && body.rotate_by.is_none() {
        return Err(bad("nothing to change: give status, label or rotate_by"));
    }
    let actor = p.actor();
    // The registry first: if it refuses, nothing changes here.
    let cloud_key: Option<CloudKey> = match &state.fleet.cloud {
        Some(cloud) => Some(
            cloud
                .governance_update(
                    org.as_str(),
                    &key_id,
                    &GovernanceUpdate {
                        status: body.status.as_deref(),
                        label: body.label.as_deref(),
                        rotate_by: body.rotate_by,
                        reason: body.reason.as_deref(),
                        actor: &actor,
                    },
                )
                .await?,
        ),
        None => None,
    };
    let status = cloud_key
        .as_ref()
        .map(|c| c.status.clone())
        .or(body.status.clone())
        .unwrap_or_else(|| before.status.clone());
    if KeyStatus::parse(&status).is_none() {
        return Err(ApiError::Upstream(format!(
            "ritma_cloud reported an unknown key status {status:?}"
        )));
    }
    let label = cloud_key
        .as_ref()
        .map(|c| c.label.clone())
        .or(body.label.clone())
        .unwrap_or_else(|| before.label.clone());
    let rotated_at = match (&cloud_key, body.status.as_deref()) {
        (Some(c), _) => c.rotated_at,
        _ => before.rotated_at,
    };
    let upsert = KeyUpsert {
        key_id: &key_id,
        org_id: &before.org_id,
        label: &label,
        status: &status,
        source: if cloud_key.is_some() {
            "ritma_cloud"
        } else {
            &before.source
        },
        rotated_at,
        rotate_by: cloud_key
            .as_ref()
            .map_or(body.rotate_by.or(before.rotate_by), |c| c.rotate_by),
        expires_at: cloud_key
            .as_ref()
            .map_or(before.expires_at, |c| c.expires_at),
        updated_by: &actor,
    };
    let record = key_apply(
        &state,
        &p,
        &before.org_id,
        &upsert,
        "key.governance",
        Some(&before),
    )
    .await?;
    Ok(Json(key_view(record)?))
}
