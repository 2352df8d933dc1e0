//! The REST API. Every route but health, enrollment and the node's signed
//! credential refresh needs a principal (admin token, OIDC access token, or
//! the development header stub) and is authorised per org and action.

mod access;
mod activity;
mod alert_views;
mod alerts;
mod bulk;
mod connectors;
pub mod console;
mod control_key;
mod enroll;
mod export;
mod fleet_common;
mod health;
mod keys;
pub(crate) mod nodes;
mod orgs;
mod policies;
pub mod ratelimit;
mod tokens;
mod usage;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use tower_http::trace::TraceLayer;

pub use crate::state::AppState;

/// Bodies larger than this are refused with 413 before any handler runs.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health).
    Public,
    /// Nodes: enrollment and signed credential refresh, rate-limited on refusals.
    Node,
    /// A principal (admin token, OIDC access token, or the development
    /// header stub), authorised per org and action by the handlers.
    Admin,
    /// The console's service principal only (its bus credential).
    Console,
    /// Prometheus scrapers with the metrics token (`RITMA_METRICS_TOKEN`).
    Metrics,
}

/// Every route of the API, in one place: the router is built from this list,
/// and a test checks it against `openapi.yaml` (paths and methods).
pub fn routes() -> Vec<(Access, &'static str, MethodRouter<AppState>)> {
    use Access::*;
    vec![
        (Public, "/healthz", get(health::healthz)),
        (Public, "/readyz", get(health::readyz)),
        (Metrics, "/metrics", get(health::metrics)),
        (Node, "/api/nodes/register", post(enroll::register)),
        (
            Node,
            "/api/nodes/{id}/credentials",
            post(enroll::credentials),
        ),
        (Node, "/api/nodes/{id}/rekey", post(enroll::rekey)),
        (Node, "/api/nodes/{id}/policy", post(enroll::policy_fetch)),
        (
            Admin,
            "/api/nodes/{id}/policies",
            get(policies::node_policies).post(policies::node_assign),
        ),
        (
            Admin,
            "/api/nodes/{id}/connectors",
            get(connectors::node_list),
        ),
        (
            Admin,
            "/api/nodes/{id}/connectors/{cid}",
            put(connectors::put).delete(connectors::delete),
        ),
        (
            Admin,
            "/api/nodes/{id}/connectors/{cid}/dry-run",
            post(connectors::dry_run),
        ),
        (Admin, "/api/nodes/{id}/slo-summary", get(usage::node_slo)),
        (
            Console,
            "/api/console/bus-credential",
            post(console::bus_credential),
        ),
        (Admin, "/api/me", get(access::me)),
        (Admin, "/api/orgs", get(orgs::list).post(orgs::create)),
        (
            Admin,
            "/api/orgs/{org}/integrator-credentials",
            get(orgs::integrator_list).post(orgs::integrator_credentials),
        ),
        (
            Admin,
            "/api/orgs/{org}/integrator-credentials/{public_key}",
            delete(orgs::integrator_revoke),
        ),
        (Admin, "/api/orgs/{org}/audit", get(access::audit)),
        (Admin, "/api/orgs/{org}/exports/audit", get(export::audit)),
        (Admin, "/api/orgs/{org}/exports/nodes", get(export::nodes)),
        (Admin, "/api/orgs/{org}/exports/usage", get(export::usage)),
        (
            Admin,
            "/api/orgs/{org}/notification-channels",
            get(alerts::channel_list).post(alerts::channel_create),
        ),
        (
            Admin,
            "/api/orgs/{org}/notification-channels/{id}",
            delete(alerts::channel_delete),
        ),
        (
            Admin,
            "/api/orgs/{org}/notification-channels/{id}/test",
            post(alerts::channel_test),
        ),
        (
            Admin,
            "/api/orgs/{org}/notification-channels/{id}/deliveries",
            get(alerts::channel_deliveries),
        ),
        (
            Admin,
            "/api/orgs/{org}/alert-rules",
            get(alerts::rule_list).post(alerts::rule_create),
        ),
        (
            Admin,
            "/api/orgs/{org}/alert-rules/{id}",
            delete(alerts::rule_delete),
        ),
        (
            Admin,
            "/api/orgs/{org}/silences",
            get(alerts::silence_list).post(alerts::silence_create),
        ),
        (
            Admin,
            "/api/orgs/{org}/silences/{id}",
            delete(alerts::silence_end),
        ),
        (Admin, "/api/orgs/{org}/alerts", get(alerts::alert_list)),
        (
            Admin,
            "/api/orgs/{org}/ingest-stats",
            get(usage::ingest_stats),
        ),
        (
            Admin,
            "/api/orgs/{org}/roles",
            get(access::roles_list).post(access::role_grant),
        ),
        (
            Admin,
            "/api/orgs/{org}/roles/{subject}/{role}",
            delete(access::role_revoke),
        ),
        (
            Admin,
            "/api/orgs/{org}/bulk-jobs",
            get(bulk::list)
                .post(bulk::create)
                .layer(DefaultBodyLimit::max(bulk::MAX_JOB_BODY_BYTES)),
        ),
        (
            Admin,
            "/api/orgs/{org}/bulk-jobs/preview",
            post(bulk::preview).layer(DefaultBodyLimit::max(bulk::MAX_JOB_BODY_BYTES)),
        ),
        (Admin, "/api/orgs/{org}/bulk-jobs/{id}", get(bulk::get)),
        (
            Admin,
            "/api/orgs/{org}/bulk-jobs/{id}/items",
            get(bulk::items),
        ),
        (Admin, "/api/orgs/{org}/nodes", get(nodes::list)),
        (Admin, "/api/orgs/{org}/nodes/summary", get(nodes::summary)),
        (
            Admin,
            "/api/orgs/{org}/nodes/config-template",
            get(usage::config_template),
        ),
        (Admin, "/api/orgs/{org}/nodes/{id}", get(nodes::get)),
        (
            Admin,
            "/api/orgs/{org}/nodes/{id}/events",
            get(usage::node_events),
        ),
        (
            Admin,
            "/api/orgs/{org}/rulepacks",
            get(policies::rulepack_list).post(policies::rulepack_create),
        ),
        (
            Admin,
            "/api/orgs/{org}/rulepacks/{name}",
            get(policies::rulepack_get),
        ),
        (
            Admin,
            "/api/orgs/{org}/policy-assignments",
            get(policies::assignment_list).post(policies::assignment_create),
        ),
        (
            Admin,
            "/api/orgs/{org}/policy-assignments/{id}",
            delete(policies::assignment_delete),
        ),
        (
            Admin,
            "/api/orgs/{org}/connectors",
            get(connectors::org_list),
        ),
        (
            Admin,
            "/api/orgs/{org}/connector-allow-list",
            get(connectors::allow_list_get).put(connectors::allow_list_put),
        ),
        (
            Admin,
            "/api/orgs/{org}/keys",
            get(keys::list).post(keys::create),
        ),
        (Admin, "/api/orgs/{org}/keys/summary", get(keys::summary)),
        (Admin, "/api/orgs/{org}/control-key", get(control_key::get)),
        (
            Admin,
            "/api/orgs/{org}/control-key/rotate",
            post(control_key::rotate),
        ),
        (
            Admin,
            "/api/orgs/{org}/keys/{key_id}/governance",
            patch(keys::governance),
        ),
        (
            Admin,
            "/api/orgs/{org}/usage/summary",
            get(usage::usage_summary),
        ),
        (Admin, "/api/orgs/{org}/activity", get(activity::activity)),
        (
            Admin,
            "/api/orgs/{org}/billing/estimate",
            get(usage::billing_estimate),
        ),
        (
            Admin,
            "/api/orgs/{org}/nodes/{id}/decommission",
            post(nodes::decommission),
        ),
        (
            Admin,
            "/api/orgs/{org}/nodes/{id}/diagnose",
            post(nodes::diagnose),
        ),
        (
            Admin,
            "/api/orgs/{org}/enrollment-tokens",
            get(tokens::list).post(tokens::create),
        ),
        (
            Admin,
            "/api/orgs/{org}/enrollment-tokens/{id}",
            delete(tokens::revoke),
        ),
    ]
}

pub fn router(state: AppState) -> Router {
    let mut public = Router::new();
    let mut node = Router::new();
    let mut admin = Router::new();
    let mut console = Router::new();
    let mut metrics = Router::new();
    for (access, path, route) in routes() {
        match access {
            Access::Public => public = public.route(path, route),
            Access::Node => node = node.route(path, route),
            Access::Admin => admin = admin.route(path, route),
            Access::Console => console = console.route(path, route),
            Access::Metrics => metrics = metrics.route(path, route),
        }
    }
    // The service token is checked by the handler's extractor; refusals
    // spend the address's budget here.
    let console = console.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        ratelimit::limit_failures,
    ));
    let node = node.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        ratelimit::limit_failures,
    ));
    let admin = admin.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        crate::auth::middleware::authenticate,
    ));
    // Guessing the metrics token spends the address's request budget.
    let metrics = metrics.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        ratelimit::limit_requests,
    ));
    // Added last, so it runs first: bad tokens spend their address's budget.
    let admin = admin.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        ratelimit::limit_requests,
    ));
    public
        .merge(node)
        .merge(admin)
        .merge(console)
        .merge(metrics)
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track_requests,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// JSON extraction whose rejections use the API's error format.
pub struct JsonBody<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = crate::error::ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::rejection::JsonRejection;
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(crate::error::ApiError::TooLarge)
            }
            Err(e) => Err(crate::error::ApiError::BadRequest(e.body_text())),
        }
    }
}

/// Query-string extraction whose rejections use the API's error format
/// (axum's own answer is plain text; found by the API fuzzing).
pub struct QueryParams<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for QueryParams<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = crate::error::ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        // PostgreSQL cannot store or compare a NUL character: refused here,
        // before a streamed answer (an export) has begun (API fuzzing).
        if parts.uri.query().is_some_and(|q| q.contains("%00")) {
            return Err(crate::error::ApiError::BadRequest(
                "text must not contain NUL characters".into(),
            ));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Self(v))
            .map_err(|e| crate::error::ApiError::BadRequest(e.body_text()))
    }
}

/// Path extraction whose rejections use the API's error format.
pub struct PathParams<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for PathParams<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = crate::error::ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Self(v))
            .map_err(|e| crate::error::ApiError::BadRequest(e.body_text()))
    }
}

/// Parse a path id, answering 404 (not 400) for ids that cannot exist.
pub fn path_id<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, crate::error::ApiError> {
    raw.parse()
        .map_err(|_| crate::error::ApiError::NotFound(format!("{what} {raw}")))
}
