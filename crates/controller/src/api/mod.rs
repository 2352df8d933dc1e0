//! The REST API. Every route but health, enrollment and the node's signed
//! credential refresh needs a principal (admin token, OIDC access token, or
//! the development header stub) and is authorised per org and action.

mod access;
mod enroll;
mod health;
mod nodes;
mod orgs;
mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use sqlx::PgPool;
use tower_http::trace::TraceLayer;

use crate::accounts::Accounts;
use crate::auth::oidc::OidcVerifier;
use crate::tasks::ingest::IngestStats;

/// Bodies larger than this are refused with 413 before any handler runs.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub accounts: Arc<Accounts>,
    /// The operator's break-glass token (every org); None disables it.
    pub admin_token: Option<Arc<str>>,
    pub oidc: Option<Arc<OidcVerifier>>,
    /// Development only (refused in production): trust x-user-id/x-org-id/x-roles.
    pub dev_header_auth: bool,
    pub public_nats_urls: Arc<Vec<String>>,
    pub node_jwt_ttl_secs: i64,
    pub default_heartbeat_secs: u32,
    pub stats: Arc<IngestStats>,
    pub nats: async_nats::Client,
}

pub fn router(state: AppState) -> Router {
    let admin = Router::new()
        .route("/api/me", get(access::me))
        .route("/api/orgs", get(orgs::list).post(orgs::create))
        .route(
            "/api/orgs/{org}/integrator-credentials",
            get(orgs::integrator_list).post(orgs::integrator_credentials),
        )
        .route(
            "/api/orgs/{org}/integrator-credentials/{public_key}",
            axum::routing::delete(orgs::integrator_revoke),
        )
        .route("/api/orgs/{org}/audit", get(access::audit))
        .route(
            "/api/orgs/{org}/roles",
            get(access::roles_list).post(access::role_grant),
        )
        .route(
            "/api/orgs/{org}/roles/{subject}/{role}",
            axum::routing::delete(access::role_revoke),
        )
        .route("/api/orgs/{org}/nodes", get(nodes::list))
        .route("/api/orgs/{org}/nodes/summary", get(nodes::summary))
        .route("/api/orgs/{org}/nodes/{id}", get(nodes::get))
        .route(
            "/api/orgs/{org}/nodes/{id}/decommission",
            post(nodes::decommission),
        )
        .route(
            "/api/orgs/{org}/enrollment-tokens",
            get(tokens::list).post(tokens::create),
        )
        .route(
            "/api/orgs/{org}/enrollment-tokens/{id}",
            axum::routing::delete(tokens::revoke),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::middleware::authenticate,
        ));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/nodes/register", post(enroll::register))
        .route("/api/nodes/{id}/credentials", post(enroll::credentials))
        .route("/api/nodes/{id}/rekey", post(enroll::rekey))
        .merge(admin)
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

/// Parse a path id, answering 404 (not 400) for ids that cannot exist.
pub fn path_id<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, crate::error::ApiError> {
    raw.parse()
        .map_err(|_| crate::error::ApiError::NotFound(format!("{what} {raw}")))
}
