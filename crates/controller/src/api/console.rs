//! The console's bus credential: `POST /api/console/bus-credential`.
//!
//! The console makes its own NKey user key (the seed never leaves it) and
//! sends the public half. Only the console's service principal may ask: the
//! bearer must equal `RITMA_CONSOLE_SERVICE_TOKEN`; the admin token, a
//! person's access token or a node are all refused, and refusals count
//! against the caller's address like enrollment refusals.
//!
//! The answer is a short-lived user JWT in the controller account that may
//! subscribe to the state changes of every org (`ritma.*.*.state.node.*`;
//! each org account's service import of `ritma.<org>.>` delivers the
//! controller's publishes there to the controller account too) and nothing
//! else: publishing is denied, replies too, subscriptions and payload are
//! capped. Every mint is audited.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use ritma_api::console::{ConsoleCredentialRequest, ConsoleCredentialResponse};
use ritma_bus::accounts;
use ritma_db::audit::AuditEntry;

use super::{AppState, JsonBody};
use crate::crypto::secrets_equal;
use crate::error::ApiError;

/// The actor named in the audit trail for console service calls.
pub const CONSOLE_ACTOR: &str = "console-service";

/// Who called: the address for the audit trail.
#[derive(Clone, Debug)]
pub struct ConsoleCaller {
    pub source: Option<String>,
}

/// Only the console's service token gets a [`ConsoleCaller`]: anything else
/// is refused (401) before the body is read. An extractor, not a middleware,
/// so other methods on the route still answer 405.
impl axum::extract::FromRequestParts<AppState> for ConsoleCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(expected) = state.console_token.as_deref() else {
            return Err(ApiError::Unauthenticated);
        };
        let bearer = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !bearer.is_some_and(|b| secrets_equal(b, expected)) {
            tracing::info!("console bus credential refused: not the console service token");
            return Err(ApiError::Unauthenticated);
        }
        let source = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .is_some()
            .then(|| {
                let req = Request::from_parts(parts.clone(), axum::body::Body::empty());
                state.request_limiter.client_address(&req).to_string()
            });
        Ok(ConsoleCaller { source })
    }
}

pub async fn bus_credential(
    State(state): State<AppState>,
    caller: ConsoleCaller,
    JsonBody(body): JsonBody<ConsoleCredentialRequest>,
) -> Result<(StatusCode, Json<ConsoleCredentialResponse>), ApiError> {
    if nkeys::KeyPair::from_public_key(&body.public_key).is_err()
        || !body.public_key.starts_with('U')
    {
        return Err(ApiError::BadRequest(
            "public_key must be an NKey user public key (U...)".into(),
        ));
    }
    let expires_at =
        chrono::Utc::now() + chrono::Duration::seconds(state.console_bus_ttl_secs.max(10));
    let account = &state.accounts.keys.controller_account;
    let jwt = accounts::console_user_jwt(account, &body.public_key, expires_at.timestamp())
        .map_err(|e| ApiError::Bus(e.to_string()))?;
    let subscribe = accounts::UserPermissions::console().subscribe_allow;
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    crate::audit::record(
        &mut tx,
        AuditEntry {
            org_id: None,
            actor: CONSOLE_ACTOR.into(),
            action: "console.bus_credential".into(),
            target: body.public_key.clone(),
            source: caller.source,
            before: None,
            after: Some(serde_json::json!({
                "subscribe": subscribe, "expires_at": expires_at,
            })),
        },
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    tracing::info!(public_key = %body.public_key, %expires_at, "console bus credential minted");
    Ok((
        StatusCode::CREATED,
        Json(ConsoleCredentialResponse {
            jwt,
            expires_at,
            account_public_key: account.public_key(),
            subscribe,
            nats_urls: state.public_nats_urls.as_ref().clone(),
        }),
    ))
}
