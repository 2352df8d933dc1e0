use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ritma_api::service::{Health, IngestProgress, Readiness};

use super::AppState;

pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Ready when the database answers and the bus connection is up.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let database = ritma_db::ping(&state.pool).await;
    let bus = matches!(
        state.nats.connection_state(),
        async_nats::connection::State::Connected
    );
    let stats = &state.stats;
    let body = Readiness {
        ready: database && bus,
        database,
        bus,
        ingest: IngestProgress {
            batches: stats.batches.load(Ordering::Relaxed),
            messages: stats.messages.load(Ordering::Relaxed),
            dead_letters: stats.dead_letters.load(Ordering::Relaxed),
            db_failures: stats.db_failures.load(Ordering::Relaxed),
        },
    };
    let status = if database && bus {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// `/metrics` on the API's port: only with the metrics token; without one
/// configured, metrics are not served here (use `RITMA_METRICS_ADDR`).
pub async fn metrics(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, crate::error::ApiError> {
    let Some(token) = state.metrics_token.clone() else {
        return Err(crate::error::ApiError::NotFound(
            "metrics on this port (set RITMA_METRICS_TOKEN, or RITMA_METRICS_ADDR for a separate listener)".into(),
        ));
    };
    if !ritma_runtime::metrics::authorized(Some(&token), &headers) {
        return Err(crate::error::ApiError::Unauthenticated);
    }
    let exposition = ritma_runtime::metrics::Exposition {
        registry: state.metrics.registry(),
        token: Some(token),
    };
    Ok(exposition.respond(&headers))
}
