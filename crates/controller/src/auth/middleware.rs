//! Turning a request into a [`Principal`], once, for every protected route.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::{Principal, PrincipalKind, Role, roles_from_claim};
use crate::crypto::secrets_equal;
use crate::error::ApiError;
use crate::state::AppState;

/// The client's address for the audit trail (a trusted proxy's
/// `X-Forwarded-For`, else the TCP peer); none for in-process calls.
fn source_of(state: &AppState, request: &Request) -> Option<String> {
    request.extensions().get::<ConnectInfo<SocketAddr>>()?;
    Some(state.request_limiter.client_address(request).to_string())
}

fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let source = source_of(&state, &request);
    let bearer = header(&request, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let principal = if let Some(token) = bearer {
        if state
            .admin_token
            .as_deref()
            .is_some_and(|admin| secrets_equal(token, admin))
        {
            Principal {
                subject: "operator".into(),
                email: None,
                name: None,
                kind: PrincipalKind::Operator,
                source,
            }
        } else if let Some(oidc) = &state.oidc {
            let claims = oidc.verify(token).await.map_err(|e| {
                tracing::info!(error = %e, "bearer token refused");
                ApiError::Unauthenticated
            })?;
            let mut roles = claims
                .rest
                .get(oidc.roles_claim())
                .map(roles_from_claim)
                .unwrap_or_default();
            merge_grants(&state, &claims.sub, &mut roles).await?;
            Principal {
                subject: claims.sub,
                email: claims.email,
                name: claims.name,
                kind: PrincipalKind::Person { roles },
                source,
            }
        } else {
            return Err(ApiError::Unauthenticated);
        }
    } else if state.dev_header_auth
        && let Some(user) = header(&request, "x-user-id")
    {
        // Development stub only: the controller refuses this setting in production.
        let org = header(&request, "x-org-id").unwrap_or_default().to_owned();
        let mut roles = BTreeMap::new();
        let set = header(&request, "x-roles")
            .unwrap_or_default()
            .split(',')
            .filter_map(|r| Role::parse(r.trim()))
            .collect();
        roles.insert(org, set);
        let user = user.to_owned();
        merge_grants(&state, &user, &mut roles).await?;
        Principal {
            subject: user,
            email: None,
            name: None,
            kind: PrincipalKind::Person { roles },
            source,
        }
    } else {
        return Err(ApiError::Unauthenticated);
    };
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

/// Add stored, unexpired grants (e.g. time-boxed support access).
async fn merge_grants(
    state: &AppState,
    subject: &str,
    roles: &mut BTreeMap<String, std::collections::BTreeSet<Role>>,
) -> Result<(), ApiError> {
    for g in ritma_db::access::role_grants_active(&state.pool, subject).await? {
        if let Some(r) = Role::parse(&g.role) {
            roles.entry(g.org_id).or_default().insert(r);
        }
    }
    Ok(())
}
