//! The REST API. Every route but health, enrollment and the node's
//! signed credential refresh requires the admin bearer token (the identity
//! issue replaces it with OIDC and roles).

mod auth;
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
use crate::tasks::ingest::IngestStats;

/// Bodies larger than this are refused with 413 before any handler runs.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub accounts: Arc<Accounts>,
    pub admin_token: Arc<str>,
    pub public_nats_urls: Arc<Vec<String>>,
    pub node_jwt_ttl_secs: i64,
    pub default_heartbeat_secs: u32,
    pub stats: Arc<IngestStats>,
    pub nats: async_nats::Client,
}

pub fn router(state: AppState) -> Router {
    let admin = Router::new()
        .route("/api/orgs", get(orgs::list).post(orgs::create))
        .route(
            "/api/orgs/{org}/integrator-credentials",
            post(orgs::integrator_credentials),
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
            auth::require_admin,
        ));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/nodes/register", post(enroll::register))
        .route("/api/nodes/{id}/credentials", post(enroll::credentials))
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
