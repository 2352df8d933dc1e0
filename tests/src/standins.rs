//! Real HTTP servers standing in for the optional upstreams that do not
//! exist here: the `ritma_cloud` key registry and the `billing_daemon`.
//! Each records the requests it served, so tests can check caching and
//! what was forwarded.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct Recorded {
    /// `METHOD path` of every request, in order (the path as sent, still
    /// percent-encoded).
    pub requests: Vec<String>,
    /// Bodies of PATCH requests.
    pub patches: Vec<Value>,
}

/// What the stand-ins answer and what they saw.
#[derive(Default)]
pub struct StandInState {
    /// any label -> key JSON (with `org` and `key_id`); ids are per org.
    pub keys: BTreeMap<String, Value>,
    /// `org/tenant` (or just `tenant`, for any org) -> invoice draft; a
    /// tenant missing here gets a 500.
    pub drafts: BTreeMap<String, Value>,
    /// Answer 503 to everything while set.
    pub failing: bool,
    pub seen: Recorded,
}

pub type Shared = Arc<Mutex<StandInState>>;

pub struct StandIn {
    pub url: String,
    pub state: Shared,
    stop: CancellationToken,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl StandIn {
    pub fn count(&self, request: &str) -> usize {
        let s = self.state.lock().unwrap();
        s.seen.requests.iter().filter(|r| *r == request).count()
    }

    pub fn set(&self, f: impl FnOnce(&mut StandInState)) {
        f(&mut self.state.lock().unwrap());
    }

    /// Both upstreams' routes on one server (they never share paths).
    pub async fn start() -> Self {
        let state: Shared = Arc::default();
        let app = axum::Router::new()
            .route("/orgs/{org}/keys", get(org_keys))
            .route("/orgs/{org}/keys/summary", get(org_summary))
            .route("/orgs/{org}/keys/{id}", get(key_get))
            .route(
                "/orgs/{org}/keys/{id}/governance",
                axum::routing::patch(key_governance),
            )
            .route("/invoice-draft", get(invoice_draft))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await;
        });
        Self { url, state, stop }
    }
}

type Answer = Result<Json<Value>, (StatusCode, String)>;

fn seen(state: &Shared, request: String) -> Result<(), (StatusCode, String)> {
    let mut s = state.lock().unwrap();
    s.seen.requests.push(request);
    if s.failing {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "maintenance".into()));
    }
    Ok(())
}

async fn org_keys(State(state): State<Shared>, Path(org): Path<String>) -> Answer {
    seen(&state, format!("GET /orgs/{org}/keys"))?;
    let s = state.lock().unwrap();
    let keys: Vec<Value> = s
        .keys
        .values()
        .filter(|k| k["org"] == org)
        .cloned()
        .collect();
    Ok(Json(json!({ "keys": keys })))
}

async fn org_summary(State(state): State<Shared>, Path(org): Path<String>) -> Answer {
    seen(&state, format!("GET /orgs/{org}/keys/summary"))?;
    let s = state.lock().unwrap();
    let total = s.keys.values().filter(|k| k["org"] == org).count();
    Ok(Json(json!({ "total": total })))
}

fn key_of<'a>(s: &'a mut StandInState, org: &str, id: &str) -> Option<&'a mut Value> {
    s.keys
        .values_mut()
        .find(|k| k["org"] == org && k["key_id"] == id)
}

async fn key_get(
    State(state): State<Shared>,
    uri: axum::http::Uri,
    Path((org, id)): Path<(String, String)>,
) -> Answer {
    seen(&state, format!("GET {}", uri.path()))?;
    let mut s = state.lock().unwrap();
    key_of(&mut s, &org, &id)
        .cloned()
        .map(Json)
        .ok_or((StatusCode::NOT_FOUND, "no such key".into()))
}

async fn key_governance(
    State(state): State<Shared>,
    uri: axum::http::Uri,
    Path((org, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Answer {
    seen(&state, format!("PATCH {}", uri.path()))?;
    let mut s = state.lock().unwrap();
    s.seen.patches.push(body.clone());
    let key = key_of(&mut s, &org, &id).ok_or((StatusCode::NOT_FOUND, "no such key".into()))?;
    for field in ["status", "label", "rotate_by"] {
        if let Some(v) = body.get(field) {
            key[field] = v.clone();
        }
    }
    Ok(Json(key.clone()))
}

async fn invoice_draft(
    State(state): State<Shared>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Answer {
    let org = q.get("org_id").cloned().unwrap_or_default();
    let tenant = q.get("tenant_id").cloned().unwrap_or_default();
    let period = q.get("period_idx").cloned().unwrap_or_default();
    seen(
        &state,
        format!("GET /invoice-draft?org_id={org}&tenant_id={tenant}&period_idx={period}"),
    )?;
    let s = state.lock().unwrap();
    s.drafts
        .get(&format!("{org}/{tenant}"))
        .or_else(|| s.drafts.get(&tenant))
        .cloned()
        .map(Json)
        .ok_or((StatusCode::INTERNAL_SERVER_ERROR, "draft not ready".into()))
}
