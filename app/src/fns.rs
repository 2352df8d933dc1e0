//! Server functions: the browser's only way to the controller API. Each runs on the
//! console server with the token of the caller's session.

// `list_nodes` takes the inventory's ten URL filters as flat arguments; the `#[server]`
// macro copies them into generated functions an item-level allow does not reach.
#![allow(clippy::too_many_arguments)]

#[cfg(feature = "ssr")]
use crate::model::CreatedToken;
#[cfg(feature = "ssr")]
use crate::model::NodeQuery;
use crate::model::{
    AppError, AuditPage, AuditQuery, Dashboard, FormReply, NodeDetail, NodePage, SessionInfo,
    SignInOptions, TokenInfo,
};
use leptos::prelude::*;

mod alerts;
mod bulk;
mod charts;
mod fleet;
pub use alerts::*;
pub use bulk::*;
pub use charts::*;
pub use fleet::*;

/// Rows per inventory page.
pub const PAGE_SIZE: u32 = 50;

#[cfg(feature = "ssr")]
pub(crate) mod ctx {
    use crate::model::AppError;
    use crate::server::{AppState, session::Session};
    use leptos::prelude::use_context;

    pub async fn current() -> Result<(AppState, Session), AppError> {
        let state = use_context::<AppState>()
            .ok_or_else(|| AppError::Internal("console state missing".into()))?;
        let parts = use_context::<axum::http::request::Parts>()
            .ok_or_else(|| AppError::Internal("request missing".into()))?;
        let parts = &parts;
        let (_, session) = state
            .sessions
            .from_headers(&parts.headers)
            .await
            .map_err(|e| AppError::Unavailable(e.to_string()))?
            .ok_or(AppError::Unauthorized)?;
        // Calls made for this browser name its address to the controller.
        let mut state = state;
        state.api = state
            .api
            .for_client(crate::server::client_ip_of_parts(&state, parts));
        Ok((state, session))
    }
}

#[server]
pub async fn get_session() -> Result<SessionInfo, AppError> {
    let (st, s) = ctx::current().await?;
    // The orgs as the controller lists them now: orgs created and roles
    // granted or removed since sign-in show in the switcher.
    let orgs = match st.api.orgs(&s.token).await {
        Ok(orgs) => {
            if let Some(parts) = use_context::<axum::http::request::Parts>()
                && let Ok(Some((id, _))) = st.sessions.from_headers(&parts.headers).await
                && let Err(e) = st.sessions.set_orgs(&id, orgs.clone()).await
            {
                tracing::warn!(error = %e, "cannot store the person's orgs");
            }
            orgs
        }
        Err(AppError::Unauthorized) => return Err(AppError::Unauthorized),
        Err(_) => s.orgs,
    };
    Ok(SessionInfo {
        user: s.user,
        org: s.org,
        orgs,
    })
}

#[server]
pub async fn get_dashboard() -> Result<Dashboard, AppError> {
    use crate::model::Status;
    let (st, s) = ctx::current().await?;
    let summary = st.api.node_counts(&s.token, &s.org).await?;
    let by_status = &summary.by_status;
    let counts: Vec<(Status, i64)> = Status::ALL
        .into_iter()
        .map(|status| (status, by_status.get(status.as_str()).copied().unwrap_or(0)))
        .collect();
    Ok(Dashboard {
        total: by_status.values().sum(),
        counts,
        drifted: summary.drifted,
        key_warnings: summary.key_warnings,
        fetched_ms: chrono::Utc::now().timestamp_millis(),
    })
}

/// Flat arguments (not one struct): an all-empty struct would not survive URL encoding.
#[server]
pub async fn list_nodes(
    tenant: Option<String>,
    status: Option<String>,
    label: Option<String>,
    version: Option<String>,
    q: Option<String>,
    drifted: Option<String>,
    key_warning: Option<String>,
    sort: Option<String>,
    order: Option<String>,
    cursor: Option<String>,
) -> Result<NodePage, AppError> {
    let (st, s) = ctx::current().await?;
    let mut query = NodeQuery::default();
    for (k, v) in [
        ("tenant", tenant),
        ("status", status),
        ("label", label),
        ("version", version),
        ("q", q),
        ("drifted", drifted),
        ("key_warning", key_warning),
        ("sort", sort),
        ("order", order),
        ("cursor", cursor),
    ] {
        query.set(k, v);
    }
    if let Some(status) = query.get("status")
        && crate::model::Status::parse(status).is_none()
    {
        return Err(AppError::BadRequest(format!("unknown status {status:?}")));
    }
    st.api.nodes(&s.token, &s.org, &query, PAGE_SIZE).await
}

/// Tenants seen among the org's nodes (suggestions for filters and the wizard).
#[server]
pub async fn list_tenants() -> Result<Vec<String>, AppError> {
    let (st, s) = ctx::current().await?;
    let page = st
        .api
        .nodes(&s.token, &s.org, &NodeQuery::default(), 200)
        .await?;
    let mut tenants: Vec<String> = page.items.into_iter().map(|n| n.tenant_id).collect();
    tenants.sort();
    tenants.dedup();
    Ok(tenants)
}

#[server]
pub async fn get_node(id: String) -> Result<NodeDetail, AppError> {
    let (st, s) = ctx::current().await?;
    st.api
        .node(&s.token, &s.org, &id, &st.config.node_controller_url)
        .await
}

/// Parses `key=value` labels, one a line or comma separated.
pub fn parse_labels(text: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut out = std::collections::BTreeMap::new();
    for item in text.split(['\n', ',']) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("label {item:?} is not key=value"))?;
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(format!("label {item:?} has an empty key"));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

#[server]
pub async fn create_token(
    tenant: String,
    ttl_secs: i64,
    max_uses: i64,
    labels: String,
) -> Result<FormReply, AppError> {
    let (st, s) = ctx::current().await?;
    let tenant = tenant.trim().to_string();
    if tenant.is_empty() {
        return Err(AppError::BadRequest("choose a tenant".into()));
    }
    if !(60..=30 * 86_400).contains(&ttl_secs) {
        return Err(AppError::BadRequest(
            "validity must be between 1 minute and 30 days".into(),
        ));
    }
    if !(1..=10_000).contains(&max_uses) {
        return Err(AppError::BadRequest(
            "uses must be between 1 and 10000".into(),
        ));
    }
    let labels = parse_labels(&labels).map_err(AppError::BadRequest)?;
    let (info, secret) = st
        .api
        .create_token(&s.token, &s.org, &tenant, ttl_secs, max_uses, &labels)
        .await?;
    let created = CreatedToken {
        info,
        secret,
        controller_url: st.config.node_controller_url.clone(),
        org_id: s.org.clone(),
    };
    // The controller's node configuration for the tenant; its failure is shown
    // in the panel, the token stands.
    let template = get_config_template(tenant).await;
    Ok(FormReply {
        message: Some("Token created: copy it now, it is shown only once.".into()),
        html: Some(crate::app::token_created_html(created, template)),
    })
}

#[server]
pub async fn list_tokens() -> Result<Vec<TokenInfo>, AppError> {
    let (st, s) = ctx::current().await?;
    let mut tokens = st.api.tokens(&s.token, &s.org).await?;
    tokens.sort_by_key(|t| std::cmp::Reverse(t.created.ms));
    Ok(tokens)
}

#[server]
pub async fn revoke_token(id: String) -> Result<(), AppError> {
    let (st, s) = ctx::current().await?;
    st.api.revoke_token(&s.token, &s.org, &id).await
}

/// Entries per audit page.
pub const AUDIT_PAGE_SIZE: u32 = 50;

#[server]
pub async fn login_options() -> Result<SignInOptions, AppError> {
    let state = use_context::<crate::server::AppState>()
        .ok_or_else(|| AppError::Internal("console state missing".into()))?;
    Ok(SignInOptions {
        sso: state.oidc.is_some(),
        token_login: state.config.token_login,
    })
}

#[server]
pub async fn get_audit(query: AuditQuery) -> Result<AuditPage, AppError> {
    let (st, s) = ctx::current().await?;
    let (entries, more) = st
        .api
        .audit(&s.token, &s.org, &query, AUDIT_PAGE_SIZE)
        .await?;
    let older = if more {
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok(AuditPage { entries, older })
}

#[cfg(test)]
mod tests {
    use super::parse_labels;

    #[test]
    fn labels_parse() {
        let l = parse_labels("env=prod\n role = web ,\n").unwrap();
        assert_eq!(l.get("role").map(String::as_str), Some("web"));
        assert_eq!(l.len(), 2);
        assert!(parse_labels("nope").is_err());
        assert!(parse_labels("=x").is_err());
    }
}
