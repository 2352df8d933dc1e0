//! The org's control key: what nodes pin, and its rotation.

use axum::extract::State;
use axum::{Extension, Json};
use ritma_api::service::{ControlKeyRotated, ControlKeyView};
use serde_json::json;

use super::fleet_common::org_authorized;
use super::{AppState, PathParams};
use crate::audit::{self, WithStates};
use crate::auth::{Action, Principal};
use crate::error::ApiError;

/// A key is made on first use: never for an org that does not exist.
async fn org_exists(state: &AppState, org: &ritma_protocol::OrgId) -> Result<(), ApiError> {
    ritma_db::orgs::org_get(&state.pool, org.as_str())
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::NotFound(format!("org {org}")))
}

/// `GET /api/orgs/{org}/control-key`: the key nodes pin, and its rotations.
pub async fn get(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
) -> Result<Json<ControlKeyView>, ApiError> {
    let org = org_authorized(&p, Action::ReadFleet, &org)?;
    org_exists(&state, &org).await?;
    let key = state.control.key(org.as_str()).await?;
    let rotations = state.control.chain(org.as_str()).await?;
    Ok(Json(ControlKeyView {
        public_key: key.public_key(),
        rotations,
    }))
}

/// `POST /api/orgs/{org}/control-key/rotate`: a new key, endorsed by the
/// old one; nodes move over at their next policy sync.
pub async fn rotate(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
) -> Result<Json<ControlKeyRotated>, ApiError> {
    let org = org_authorized(&p, Action::ManageIntegrators, &org)?;
    org_exists(&state, &org).await?;
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    let (before, public_key, resigned) = state.control.rotate(&mut tx, &org).await?;
    audit::record(
        &mut tx,
        audit::entry(&p, Some(org.as_str()), "control_key.rotate", org.as_str()).states(
            Some(json!({ "public_key": before })),
            Some(json!({ "public_key": public_key, "revisions_signed_again": resigned })),
        ),
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    tracing::info!(org = %org, from = %before, to = %public_key, "org control key rotated");
    Ok(Json(ControlKeyRotated {
        public_key,
        previous_key: before,
        revisions_signed_again: resigned,
    }))
}
