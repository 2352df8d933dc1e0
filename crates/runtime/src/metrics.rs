//! The `/metrics` endpoint shared by the controller, the console and the
//! node daemon: a Prometheus registry rendered in the Prometheus text format
//! (0.0.4), behind an optional bearer token, on the main listener or on a
//! separate one (`serve`).
//!
//! Each binary keeps its own registry and metric handles (see
//! `ritma_controller::metrics` for how to add one); this module only renders
//! and guards.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
pub use prometheus_client;
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The registry and who may read it.
#[derive(Clone)]
pub struct Exposition {
    pub registry: Arc<Registry>,
    /// Required as `Authorization: Bearer <token>` when set.
    pub token: Option<Arc<str>>,
}

/// Render a registry in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; an encoder error leaves what was written.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, registry);
    out
}

fn secrets_equal(a: &str, b: &str) -> bool {
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// True when the request carries the token (or none is required).
pub fn authorized(token: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(expected) = token else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| secrets_equal(given.trim(), expected))
}

impl Exposition {
    /// The `/metrics` answer: 401 without the token, else the text.
    pub fn respond(&self, headers: &HeaderMap) -> Response {
        if !authorized(self.token.as_deref(), headers) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "metrics need the metrics bearer token\n",
            )
                .into_response();
        }
        (
            [(
                header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            render(&self.registry),
        )
            .into_response()
    }

    /// Serve `/metrics` alone on `listener` until `shutdown`.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) {
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move |headers: HeaderMap| {
                let this = self.clone();
                async move { this.respond(&headers) }
            }),
        );
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "metrics listening");
        }
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
        {
            tracing::warn!(error = %e, "metrics listener stopped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_required_when_set() {
        let mut headers = HeaderMap::new();
        assert!(authorized(None, &headers));
        assert!(!authorized(Some("s3cret-metrics-token"), &headers));
        headers.insert(
            header::AUTHORIZATION,
            "Bearer wrong".parse().expect("header"),
        );
        assert!(!authorized(Some("s3cret-metrics-token"), &headers));
        headers.insert(
            header::AUTHORIZATION,
            "Bearer s3cret-metrics-token".parse().expect("header"),
        );
        assert!(authorized(Some("s3cret-metrics-token"), &headers));
    }
}
