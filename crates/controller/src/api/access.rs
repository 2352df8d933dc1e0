//! `/api/me`, role grants and the audit trail.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use ritma_api::access::{AuditEntryView, AuditQuery, GrantRequest, MeOrg, MeView, RoleGrantView};
use ritma_db::access::{self, RoleGrant};
use ritma_db::audit::{AuditFilter, AuditRecord, audit_list};
use ritma_protocol::OrgId;
use serde_json::json;

use super::{AppState, JsonBody, PathParams, QueryParams, path_id};
use crate::audit::{self, WithStates};
use crate::auth::{Action, Principal, PrincipalKind, Role};
use crate::error::ApiError;

/// The caller: profile, orgs and roles.
pub async fn me(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
) -> Result<Json<MeView>, ApiError> {
    let orgs: Vec<MeOrg> = match &p.kind {
        PrincipalKind::Operator => ritma_db::orgs::org_list(&state.pool)
            .await?
            .into_iter()
            .map(|o| MeOrg {
                id: o.id,
                name: Some(o.name),
                roles: role_names(&Role::ALL),
            })
            .collect(),
        PrincipalKind::Person { roles } => roles
            .iter()
            .filter(|(_, r)| !r.is_empty())
            .map(|(org, r)| MeOrg {
                id: org.to_string(),
                name: None,
                roles: role_names(r),
            })
            .collect(),
    };
    Ok(Json(MeView {
        operator: p.is_operator(),
        subject: p.subject,
        email: p.email,
        name: p.name,
        orgs,
    }))
}

pub async fn audit(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org_raw): PathParams<String>,
    QueryParams(q): QueryParams<AuditQuery>,
) -> Result<Json<Vec<AuditEntryView>>, ApiError> {
    let org: OrgId = path_id(&org_raw, "org")?;
    p.authorize(&org, Action::ReadAudit)?;
    let filter = AuditFilter {
        actor: q.actor,
        action: q.action,
        target: q.target,
        before_id: q.before_id,
        limit: q.limit,
    };
    let records = audit_list(&state.pool, org.as_str(), &filter).await?;
    Ok(Json(records.into_iter().map(audit_view).collect()))
}

pub async fn roles_list(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org_raw): PathParams<String>,
) -> Result<Json<Vec<RoleGrantView>>, ApiError> {
    let org: OrgId = path_id(&org_raw, "org")?;
    p.authorize(&org, Action::ReadAudit)?;
    let grants = access::role_grants_list(&state.pool, org.as_str()).await?;
    Ok(Json(grants.into_iter().map(grant_view).collect()))
}

pub async fn role_grant(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org_raw): PathParams<String>,
    JsonBody(req): JsonBody<GrantRequest>,
) -> Result<(StatusCode, Json<RoleGrantView>), ApiError> {
    let org: OrgId = path_id(&org_raw, "org")?;
    p.authorize(&org, Action::ManageRoles)?;
    // The operator may name any org: one that does not exist is a 404, not a
    // foreign-key failure answered as 503 (found by tests/api-fuzz.sh).
    if ritma_db::orgs::org_get(&state.pool, org.as_str())
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound(format!("org {org}")));
    }
    let role = Role::parse(&req.role)
        .ok_or_else(|| ApiError::BadRequest(format!("unknown role {:?}", req.role)))?;
    ritma_protocol::validate::non_empty_text("subject", &req.subject, 256)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if role == Role::Support {
        let limit = Utc::now() + chrono::Duration::days(30);
        match req.expires_at {
            Some(at) if at > Utc::now() && at <= limit => {}
            _ => {
                return Err(ApiError::BadRequest(
                    "support access needs expires_at within the next 30 days".into(),
                ));
            }
        }
    }
    let grant = RoleGrant {
        org_id: org.to_string(),
        subject: req.subject,
        role: role.as_str().into(),
        expires_at: req.expires_at,
        granted_by: p.actor(),
        granted_at: Utc::now(),
    };
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    access::role_grant_upsert(&mut tx, &grant).await?;
    audit::record(
        &mut tx,
        audit::entry(
            &p,
            Some(org.as_str()),
            "role.grant",
            format!("{}:{}", grant.subject, grant.role),
        )
        .states(
            None,
            Some(json!({ "role": grant.role, "expires_at": grant.expires_at })),
        ),
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    Ok((StatusCode::CREATED, Json(grant_view(grant))))
}

pub async fn role_revoke(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams((org_raw, subject, role)): PathParams<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let org: OrgId = path_id(&org_raw, "org")?;
    p.authorize(&org, Action::ManageRoles)?;
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    if !access::role_grant_delete(&mut tx, org.as_str(), &subject, &role).await? {
        return Err(ApiError::NotFound(format!("grant {subject}:{role}")));
    }
    audit::record(
        &mut tx,
        audit::entry(
            &p,
            Some(org.as_str()),
            "role.revoke",
            format!("{subject}:{role}"),
        )
        .states(Some(json!({ "role": role })), None),
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    Ok(StatusCode::NO_CONTENT)
}

fn audit_view(a: AuditRecord) -> AuditEntryView {
    AuditEntryView {
        id: a.id,
        org_id: a.org_id,
        actor: a.actor,
        action: a.action,
        target: a.target,
        source: a.source,
        before: a.before,
        after: a.after,
        at: a.at,
        prev_hash: hex::encode(&a.prev_hash),
        hash: hex::encode(&a.hash),
    }
}

fn role_names<'a>(roles: impl IntoIterator<Item = &'a Role>) -> Vec<String> {
    roles.into_iter().map(|r| r.as_str().to_owned()).collect()
}

fn grant_view(g: RoleGrant) -> RoleGrantView {
    RoleGrantView {
        org_id: g.org_id,
        subject: g.subject,
        role: g.role,
        expires_at: g.expires_at,
        granted_by: g.granted_by,
        granted_at: g.granted_at,
    }
}
