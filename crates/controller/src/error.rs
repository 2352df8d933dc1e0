//! The API's one error type, mapped once to an HTTP status and a JSON body
//! `{"error": code, "message": text}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("request body is larger than the API accepts")]
    TooLarge,
    #[error("authentication required")]
    Unauthenticated,
    #[error("{message}")]
    TokenRefused { code: &'static str, message: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Too soon: retry after `retry_after_secs` (429 with `Retry-After`).
    #[error("{message}")]
    RateLimited {
        code: &'static str,
        message: String,
        retry_after_secs: u64,
    },
    #[error("the database is unavailable")]
    Database(ritma_db::DbError),
    #[error("the message bus is unavailable: {0}")]
    Bus(String),
    /// The node did not answer a request in time (it is offline or busy).
    #[error("{0}")]
    NodeUnreachable(String),
    /// An optional upstream (ritma_cloud, billing_daemon) failed.
    #[error("{0}")]
    Upstream(String),
    #[error("internal error")]
    Internal(String),
}

impl From<ritma_db::DbError> for ApiError {
    /// What the database refuses because of the request is the client's
    /// error, not an outage: a reference to something that does not exist
    /// (an org that was never created) is 404, text PostgreSQL cannot store
    /// (a NUL character) is 400 (both found by `tests/api-fuzz.sh`).
    fn from(e: ritma_db::DbError) -> Self {
        let code = match &e {
            ritma_db::DbError::Sqlx(sqlx::Error::Database(db)) => db
                .code()
                .map(|c| (c.into_owned(), db.constraint().map(str::to_owned))),
            _ => None,
        };
        match code {
            // foreign_key_violation
            Some((code, constraint)) if code == "23503" => {
                let what = match constraint.as_deref() {
                    Some(c) if c.contains("org_id") => "the org",
                    _ => "a resource the request refers to",
                };
                Self::NotFound(format!("{what} does not exist"))
            }
            // character_not_in_repertoire, untranslatable_character
            Some((code, _)) if code == "22021" || code == "22P05" => {
                Self::BadRequest("text must not contain NUL characters".into())
            }
            _ => Self::Database(e),
        }
    }
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Self::TokenRefused { code, .. } => (StatusCode::UNAUTHORIZED, code),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::RateLimited { code, .. } => (StatusCode::TOO_MANY_REQUESTS, code),
            Self::Database(_) => (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
            Self::Bus(_) => (StatusCode::SERVICE_UNAVAILABLE, "bus_unavailable"),
            Self::NodeUnreachable(_) => (StatusCode::GATEWAY_TIMEOUT, "node_unreachable"),
            Self::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream_unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            // Details stay in the log; the client gets the code.
            tracing::error!(error = ?self, "request failed");
        }
        let retry_after = match &self {
            Self::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        let mut response = (
            status,
            Json(json!({ "error": code, "message": self.to_string() })),
        )
            .into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs.max(1)),
            );
        }
        response
    }
}
