use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use ritma_bus::accounts::UserPermissions;
use ritma_db::orgs;
use ritma_protocol::{OrgId, TenantId, validate};
use serde::{Deserialize, Serialize};

use super::{AppState, JsonBody, PathParams, path_id};
use crate::error::ApiError;

#[derive(Serialize)]
pub struct OrgView {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<OrgView>>, ApiError> {
    let orgs = orgs::org_list(&state.pool).await?;
    Ok(Json(
        orgs.into_iter()
            .map(|o| OrgView {
                id: o.id,
                name: o.name,
                created_at: o.created_at,
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    pub id: String,
    pub name: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateOrg>,
) -> Result<(StatusCode, Json<OrgView>), ApiError> {
    let id = OrgId::new(body.id).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let name = body.name.unwrap_or_else(|| id.to_string());
    validate::non_empty_text("name", &name, 128)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let org = state.accounts.org_create(&id, &name).await?;
    tracing::info!(org = %org.id, "org created with its own NATS account");
    Ok((
        StatusCode::CREATED,
        Json(OrgView {
            id: org.id,
            name: org.name,
            created_at: org.created_at,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegratorRequest {
    /// The integrator's own NKey public key (`U...`); its seed stays with it.
    pub public_key: String,
    pub name: Option<String>,
    pub tenant_id: Option<String>,
    /// Narrower subjects inside the org (or tenant) scope.
    #[serde(default)]
    pub subjects: Vec<String>,
    /// Lifetime in seconds (default 30 days).
    pub ttl_secs: Option<i64>,
}

#[derive(Serialize)]
pub struct IntegratorResponse {
    pub jwt: String,
    pub expires_at: DateTime<Utc>,
    pub nats_urls: Vec<String>,
    pub subscribe: Vec<String>,
}

/// Read-only bus credentials for an integrator of the org.
pub async fn integrator_credentials(
    State(state): State<AppState>,
    PathParams(org_raw): PathParams<String>,
    JsonBody(body): JsonBody<IntegratorRequest>,
) -> Result<(StatusCode, Json<IntegratorResponse>), ApiError> {
    let org_id: OrgId = path_id(&org_raw, "org")?;
    let org = orgs::org_get(&state.pool, org_id.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("org {org_id}")))?;
    if nkeys::KeyPair::from_public_key(&body.public_key).is_err()
        || !body.public_key.starts_with('U')
    {
        return Err(ApiError::BadRequest(
            "public_key must be an NKey user public key (U...)".into(),
        ));
    }
    let tenant = body
        .tenant_id
        .map(TenantId::new)
        .transpose()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let scope = ritma_protocol::subjects::integrator_scope(&org_id, tenant.as_ref());
    for s in &body.subjects {
        if !ritma_protocol::subjects::matches(&scope, s) || s.len() > 256 {
            return Err(ApiError::BadRequest(format!(
                "subject {s:?} is outside {scope}"
            )));
        }
    }
    let ttl = body
        .ttl_secs
        .unwrap_or(30 * 24 * 3600)
        .clamp(60, 366 * 24 * 3600);
    let expires_at = Utc::now() + chrono::Duration::seconds(ttl);
    let permissions = UserPermissions::integrator(&org_id, tenant.as_ref(), &body.subjects);
    let name = body.name.unwrap_or_else(|| "integrator".into());
    let jwt = state.accounts.mint_user(
        &org,
        &name,
        &body.public_key,
        &permissions,
        Some(expires_at.timestamp()),
    )?;
    Ok((
        StatusCode::CREATED,
        Json(IntegratorResponse {
            jwt,
            expires_at,
            nats_urls: state.public_nats_urls.to_vec(),
            subscribe: permissions.subscribe_allow,
        }),
    ))
}
