use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the database answers and the bus connection is up.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let database = ritma_db::ping(&state.pool).await;
    let bus = matches!(
        state.nats.connection_state(),
        async_nats::connection::State::Connected
    );
    let stats = &state.stats;
    let body = json!({
        "ready": database && bus,
        "database": database,
        "bus": bus,
        "ingest": {
            "batches": stats.batches.load(Ordering::Relaxed),
            "messages": stats.messages.load(Ordering::Relaxed),
            "dead_letters": stats.dead_letters.load(Ordering::Relaxed),
            "db_failures": stats.db_failures.load(Ordering::Relaxed),
        }
    });
    let status = if database && bus {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
