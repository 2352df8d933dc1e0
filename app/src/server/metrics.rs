//! The console's Prometheus metrics: HTTP requests by route template and
//! status with latency, live (SSE) clients, and the live feed's bus
//! connection. Exposed as the controller's are (`ritma_runtime::metrics`):
//! `/metrics` on the console's port only with `RITMA_METRICS_TOKEN`, or on
//! a separate listener (`RITMA_METRICS_ADDR`).

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use ritma_runtime::metrics::Exposition;

use super::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    pub method: String,
    pub route: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Route {
    pub method: String,
    pub route: String,
}

pub struct ConsoleMetrics {
    registry: Arc<Registry>,
    pub requests: Family<RouteStatus, Counter>,
    pub request_seconds: Family<Route, Histogram>,
    /// Browsers holding a live (SSE) stream open.
    pub sse_clients: Gauge,
    /// Live events handed to browsers' streams.
    pub live_events: Counter,
    /// 1 while the live feed's bus connection is up.
    pub bus_connected: Gauge<i64, std::sync::atomic::AtomicI64>,
}

impl ConsoleMetrics {
    pub fn new() -> Self {
        let requests = Family::<RouteStatus, Counter>::default();
        let request_seconds = Family::<Route, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 14))
        });
        let sse_clients = Gauge::default();
        let live_events = Counter::default();
        let bus_connected = Gauge::default();
        let mut r = Registry::default();
        r.register(
            "ritma_console_http_requests",
            "Console HTTP requests by method, route template and status",
            requests.clone(),
        );
        r.register_with_unit(
            "ritma_console_http_request_duration",
            "Console HTTP request latency by method and route template",
            Unit::Seconds,
            request_seconds.clone(),
        );
        r.register(
            "ritma_console_sse_clients",
            "Browsers holding a live stream open",
            sse_clients.clone(),
        );
        r.register(
            "ritma_console_live_events",
            "Live events handed to browsers' streams",
            live_events.clone(),
        );
        r.register(
            "ritma_console_bus_connected",
            "1 while the live feed's bus connection is up",
            bus_connected.clone(),
        );
        Self {
            registry: Arc::new(r),
            requests,
            request_seconds,
            sse_clients,
            live_events,
            bus_connected,
        }
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// Counts one live stream while it lives.
    pub fn sse_client(self: &Arc<Self>) -> SseClient {
        self.sse_clients.inc();
        SseClient(self.clone())
    }
}

impl Default for ConsoleMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Held by a live stream; the gauge goes down when the stream is dropped.
pub struct SseClient(Arc<ConsoleMetrics>);

impl Drop for SseClient {
    fn drop(&mut self) {
        self.0.sse_clients.dec();
    }
}

/// Counts every request (route template, never the raw path: bounded labels).
pub async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m.to_owned(),
        _ => "other".to_owned(),
    };
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let m = &st.metrics;
    m.requests
        .get_or_create(&RouteStatus {
            method: method.clone(),
            route: route.clone(),
            status: resp.status().as_u16().to_string(),
        })
        .inc();
    m.request_seconds
        .get_or_create(&Route { method, route })
        .observe(started.elapsed().as_secs_f64());
    resp
}

fn exposition(st: &AppState) -> Exposition {
    st.metrics
        .bus_connected
        .set(i64::from(st.hub.bus.borrow().connected));
    Exposition {
        registry: st.metrics.registry(),
        token: st.config.metrics_token.clone().map(Into::into),
    }
}

/// `/metrics` on the console's port: only with the metrics token.
pub async fn metrics(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if st.config.metrics_token.is_none() {
        return (
            StatusCode::NOT_FOUND,
            "metrics are not served on this port (set RITMA_METRICS_TOKEN, or RITMA_METRICS_ADDR)\n",
        )
            .into_response();
    }
    exposition(&st).respond(&headers)
}

/// The separate metrics listener, when `RITMA_METRICS_ADDR` is set.
pub async fn serve_separately(st: AppState, shutdown: tokio_util::sync::CancellationToken) {
    let Some(addr) = st.config.metrics_listen else {
        return;
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "metrics listener not started");
            return;
        }
    };
    // The bus gauge is read at scrape time on the main port; here it is
    // refreshed every few seconds instead.
    let refresh = {
        let st = st.clone();
        let stop = shutdown.clone();
        async move {
            loop {
                let _ = exposition(&st);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                }
            }
        }
    };
    tokio::join!(exposition(&st).serve(listener, shutdown), refresh);
}
