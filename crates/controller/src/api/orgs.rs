use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::Utc;
use ritma_api::orgs::{CreateOrg, IntegratorRequest, IntegratorResponse, IntegratorView, OrgView};
use ritma_bus::accounts::UserPermissions;
use ritma_db::orgs;
use ritma_protocol::{OrgId, TenantId, validate};

use super::{AppState, JsonBody, PathParams, path_id};
use crate::audit::{self, WithStates};
use crate::auth::{Action, Principal};
use crate::error::ApiError;

/// The orgs the caller belongs to (all of them for the operator).
pub async fn list(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
) -> Result<Json<Vec<OrgView>>, ApiError> {
    let orgs = orgs::org_list(&state.pool).await?;
    Ok(Json(
        orgs.into_iter()
            .filter(|o| !p.roles_in(&o.id).is_empty())
            .map(|o| OrgView {
                id: o.id,
                name: o.name,
                created_at: o.created_at,
            })
            .collect(),
    ))
}

pub async fn create(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    JsonBody(body): JsonBody<CreateOrg>,
) -> Result<(StatusCode, Json<OrgView>), ApiError> {
    p.require_operator()?;
    let id = OrgId::new(body.id).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let name = body.name.unwrap_or_else(|| id.to_string());
    validate::non_empty_text("name", &name, 128)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let org = state.accounts.org_create(&id, &name).await?;
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    audit::record(
        &mut tx,
        audit::entry(&p, Some(&org.id), "org.create", &org.id).states(
            None,
            Some(serde_json::json!({ "name": org.name, "nats_account": org.nats_account_public_key })),
        ),
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
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

/// Integrator credentials never outlive this (their revocations can then be
/// pruned from the account JWT once it has passed).
pub const INTEGRATOR_MAX_TTL_SECS: i64 = 366 * 24 * 3600;
const INTEGRATOR_DEFAULT_TTL_SECS: i64 = 30 * 24 * 3600;

/// The subjects granted for a request: telemetry and state changes of the
/// org (or tenant), the extras asked for by name, narrowed to `subjects`.
fn integrator_grant(
    org: &OrgId,
    tenant: Option<&TenantId>,
    include: &[String],
    subjects: &[String],
) -> Result<Vec<String>, ApiError> {
    use ritma_protocol::subjects::{self, IntegratorExtra};
    let mut extras = Vec::new();
    for name in include {
        let extra = IntegratorExtra::parse(name).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "include {name:?} is unknown: use \"commands\", \"audit\" or \"alerts\""
            ))
        })?;
        if matches!(extra, IntegratorExtra::Audit | IntegratorExtra::Alerts) && tenant.is_some() {
            return Err(ApiError::BadRequest(format!(
                "{name} is org-wide: a tenant-scoped integrator cannot include it"
            )));
        }
        extras.push(extra);
    }
    let granted = subjects::integrator_subjects(org, tenant, &extras);
    if subjects.is_empty() {
        return Ok(granted);
    }
    if subjects.len() > 32 {
        return Err(ApiError::BadRequest("at most 32 subjects".into()));
    }
    for s in subjects {
        if s.len() > 256 || !granted.iter().any(|g| subjects::covers(g, s)) {
            return Err(ApiError::BadRequest(format!(
                "subject {s:?} is outside what is granted ({}); ask for commands or audit with include",
                granted.join(", ")
            )));
        }
    }
    Ok(subjects.to_vec())
}

/// Read-only bus credentials for an integrator of the org. A public key
/// belongs to one org: issuing it in another is refused (409).
pub async fn integrator_credentials(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org_raw): PathParams<String>,
    JsonBody(body): JsonBody<IntegratorRequest>,
) -> Result<(StatusCode, Json<IntegratorResponse>), ApiError> {
    let org_id: OrgId = path_id(&org_raw, "org")?;
    p.authorize(&org_id, Action::ManageIntegrators)?;
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
    let granted = integrator_grant(&org_id, tenant.as_ref(), &body.include, &body.subjects)?;
    let ttl = body
        .ttl_secs
        .unwrap_or(INTEGRATOR_DEFAULT_TTL_SECS)
        .clamp(60, INTEGRATOR_MAX_TTL_SECS);
    let expires_at = Utc::now() + chrono::Duration::seconds(ttl);
    let permissions = UserPermissions::integrator(&org_id, tenant.as_ref(), &granted);
    let name = body.name.unwrap_or_else(|| "integrator".into());
    ritma_protocol::validate::non_empty_text("name", &name, 64)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let record = ritma_db::access::IntegratorCredential {
        public_key: body.public_key.clone(),
        org_id: org_id.to_string(),
        tenant_id: tenant.as_ref().map(|t| t.to_string()),
        name: name.clone(),
        subjects: sqlx::types::Json(permissions.subscribe_allow.clone()),
        expires_at,
        revoked_at: None,
        created_by: p.actor(),
        created_at: Utc::now(),
    };
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    if ritma_db::nodes::node_key_in_use(&mut tx, &body.public_key).await? {
        return Err(ApiError::Conflict(
            "that public key belongs to a node; make a new key for the integrator".into(),
        ));
    }
    let previous = match ritma_db::access::integrator_upsert(&mut tx, &record).await? {
        ritma_db::access::IntegratorUpsert::OtherOrg => {
            return Err(ApiError::Conflict(
                "that public key is already issued in another org; make a new key for this one"
                    .into(),
            ));
        }
        ritma_db::access::IntegratorUpsert::Stored { previous } => previous,
    };
    audit::record(
        &mut tx,
        audit::entry(
            &p,
            Some(org_id.as_str()),
            "integrator.create",
            &body.public_key,
        )
        .states(
            previous.as_ref().map(|c| {
                serde_json::json!({
                    "name": c.name, "tenant_id": c.tenant_id, "subscribe": c.subjects.0,
                    "expires_at": c.expires_at, "revoked_at": c.revoked_at,
                })
            }),
            Some(serde_json::json!({
                "name": name, "tenant_id": record.tenant_id, "subscribe": record.subjects.0,
                "expires_at": expires_at,
            })),
        ),
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    // A JWT issued in the second of a revocation would be revoked with it
    // (the broker compares whole seconds): a re-issue waits for the next one.
    // The account's revocation entry is written after the credential's row
    // (a later second on a loaded machine), so the later of the two counts.
    let account_revoked_at = if previous.as_ref().is_some_and(|c| c.revoked_at.is_some()) {
        orgs::org_revocation_at(&state.pool, org_id.as_str(), &body.public_key).await?
    } else {
        None
    };
    if let Some(revoked_at) = previous
        .as_ref()
        .and_then(|c| c.revoked_at)
        .max(account_revoked_at)
    {
        let next = revoked_at.timestamp() + 1;
        let wait_ms = (next * 1000 - Utc::now().timestamp_millis()).clamp(0, 1100);
        tokio::time::sleep(std::time::Duration::from_millis(wait_ms as u64 + 10)).await;
    }
    let jwt = state
        .accounts
        .mint_user(
            &org,
            &name,
            &body.public_key,
            &permissions,
            Some(expires_at.timestamp()),
        )
        .await?;
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

pub async fn integrator_list(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org_raw): PathParams<String>,
) -> Result<Json<Vec<IntegratorView>>, ApiError> {
    let org: OrgId = path_id(&org_raw, "org")?;
    p.authorize(&org, Action::ReadFleet)?;
    let list = ritma_db::access::integrator_list(&state.pool, org.as_str()).await?;
    Ok(Json(
        list.into_iter()
            .map(|c| IntegratorView {
                public_key: c.public_key,
                org_id: c.org_id,
                tenant_id: c.tenant_id,
                name: c.name,
                subjects: c.subjects.0,
                expires_at: c.expires_at,
                revoked_at: c.revoked_at,
                created_by: c.created_by,
                created_at: c.created_at,
            })
            .collect(),
    ))
}

/// Revoke at the broker: the integrator's connections are cut at once.
pub async fn integrator_revoke(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams((org_raw, public_key)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let org_id: OrgId = path_id(&org_raw, "org")?;
    p.authorize(&org_id, Action::ManageIntegrators)?;
    let org = orgs::org_get(&state.pool, org_id.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("org {org_id}")))?;
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    let cred = ritma_db::access::integrator_revoke(&mut tx, org_id.as_str(), &public_key)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("integrator credential {public_key}")))?;
    audit::record(
        &mut tx,
        audit::entry(&p, Some(org_id.as_str()), "integrator.revoke", &public_key).states(
            Some(serde_json::json!({ "name": cred.name })),
            Some(serde_json::json!({ "revoked": true })),
        ),
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    state.accounts.revoke_user(&org, &public_key).await?;
    Ok(StatusCode::NO_CONTENT)
}
