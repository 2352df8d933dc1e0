use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::Utc;
use ritma_api::tokens::{CreateToken, TokenState, TokenView};
use ritma_db::tokens::{self, NewToken, TokenRecord};
use ritma_protocol::{OrgId, TenantId};
use uuid::Uuid;

use super::{AppState, JsonBody, PathParams, path_id};
use crate::audit::{self, WithStates};
use crate::auth::{Action, Principal};
use crate::crypto::{new_secret, sha256};
use crate::error::ApiError;

pub const TOKEN_PREFIX: &str = "ritma_et_";

fn view(t: TokenRecord, secret: Option<String>) -> TokenView {
    let state = if t.revoked_at.is_some() {
        TokenState::Revoked
    } else if t.expires_at <= Utc::now() {
        TokenState::Expired
    } else if t.uses >= t.max_uses {
        TokenState::UsedUp
    } else {
        TokenState::Active
    };
    TokenView {
        id: t.id,
        token: secret,
        org_id: t.org_id,
        tenant_id: t.tenant_id,
        labels: t.labels.0,
        max_uses: t.max_uses,
        uses: t.uses,
        expires_at: t.expires_at,
        revoked_at: t.revoked_at,
        created_by: t.created_by,
        created_at: t.created_at,
        state,
    }
}

async fn org_exists(state: &AppState, org: &OrgId) -> Result<(), ApiError> {
    ritma_db::orgs::org_get(&state.pool, org.as_str())
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::NotFound(format!("org {org}")))
}

pub async fn create(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org_raw): PathParams<String>,
    JsonBody(body): JsonBody<CreateToken>,
) -> Result<(StatusCode, Json<TokenView>), ApiError> {
    let org: OrgId = path_id(&org_raw, "org")?;
    p.authorize(&org, Action::ManageTokens)?;
    org_exists(&state, &org).await?;
    let tenant = TenantId::new(body.tenant_id).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let ttl = body.ttl_secs.unwrap_or(86_400);
    if !(60..=90 * 86_400).contains(&ttl) {
        return Err(ApiError::BadRequest(
            "ttl_secs must be between 60 and 7776000".into(),
        ));
    }
    let max_uses = body.max_uses.unwrap_or(1);
    if !(1..=100_000).contains(&max_uses) {
        return Err(ApiError::BadRequest(
            "max_uses must be between 1 and 100000".into(),
        ));
    }
    ritma_protocol::enrollment::labels(&body.labels)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let secret = new_secret(TOKEN_PREFIX);
    let record = tokens::token_insert(
        &state.pool,
        &NewToken {
            id: Uuid::now_v7(),
            org_id: org.as_str(),
            tenant_id: tenant.as_str(),
            secret_hash: &sha256(secret.as_bytes()),
            labels: &body.labels,
            max_uses,
            expires_at: Utc::now() + chrono::Duration::seconds(ttl),
            created_by: &p.actor(),
        },
    )
    .await?;
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    audit::record(
        &mut tx,
        audit::entry(
            &p,
            Some(org.as_str()),
            "enrollment_token.create",
            record.id.to_string(),
        )
        .states(
            None,
            Some(serde_json::json!({
                "tenant_id": record.tenant_id, "max_uses": record.max_uses,
                "expires_at": record.expires_at, "labels": record.labels.0,
            })),
        ),
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    tracing::info!(org = %org, token_id = %record.id, tenant = %tenant, "enrollment token created");
    Ok((StatusCode::CREATED, Json(view(record, Some(secret)))))
}

pub async fn list(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org_raw): PathParams<String>,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    let org: OrgId = path_id(&org_raw, "org")?;
    p.authorize(&org, Action::ReadFleet)?;
    org_exists(&state, &org).await?;
    let rows = tokens::token_list(&state.pool, org.as_str()).await?;
    Ok(Json(rows.into_iter().map(|t| view(t, None)).collect()))
}

pub async fn revoke(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams((org_raw, id_raw)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let org: OrgId = path_id(&org_raw, "org")?;
    p.authorize(&org, Action::ManageTokens)?;
    let id: Uuid = path_id(&id_raw, "enrollment token")?;
    if !tokens::token_revoke(&state.pool, org.as_str(), id).await? {
        return Err(ApiError::NotFound(format!("enrollment token {id}")));
    }
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    audit::record(
        &mut tx,
        audit::entry(
            &p,
            Some(org.as_str()),
            "enrollment_token.revoke",
            id.to_string(),
        )
        .states(None, Some(serde_json::json!({ "revoked": true }))),
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    tracing::info!(org = %org, token_id = %id, "enrollment token revoked");
    Ok(StatusCode::NO_CONTENT)
}
