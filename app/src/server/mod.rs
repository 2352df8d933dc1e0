//! The console server: `build(config)` then `run(listener, shutdown)`.
//!
//! This module builds the state and assembles the router; the middleware is in
//! `guard`, signing in and out in `auth`, the live stream to browsers in `sse`.

pub mod api;
mod auth;
pub mod charts;
pub mod config;
mod contract;
mod export;
mod guard;
pub mod live;
pub mod metrics;
pub mod oidc;
pub mod replay;
pub mod session;
mod sse;

pub use guard::{ClientIp, client_ip, client_ip_of_parts, csp};

use crate::app::{App, Assets, shell};
use api::Api;
use axum::extract::{FromRef, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use config::Resolved;
use leptos::prelude::LeptosOptions;
use leptos_axum::{LeptosRoutes, generate_route_list};
use live::Hub;
use oidc::OidcClient;
use session::Sessions;
use sha2::Digest as _;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

const CSS: &str = include_str!("../../style/console.css");

#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub api: Api,
    pub sessions: Sessions,
    /// Single sign-on, when an issuer is configured.
    pub oidc: Option<Arc<OidcClient>>,
    pub hub: Hub,
    pub metrics: Arc<metrics::ConsoleMetrics>,
    /// Recent state changes (for streams resuming from `Last-Event-ID`);
    /// streams subscribe here, after recording.
    pub recent: replay::Recent,
    pub config: Arc<Resolved>,
    pub assets: Assets,
    /// Turns true when the server shuts down: live streams end so the graceful
    /// shutdown does not wait for them forever.
    pub closing: tokio::sync::watch::Receiver<bool>,
    /// Keeps `closing` open as long as any state exists (embedders that never `run`).
    _closing_tx: Arc<tokio::sync::watch::Sender<bool>>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(s: &AppState) -> Self {
        s.leptos_options.clone()
    }
}

pub struct Console {
    router: Router,
    state: AppState,
    closing: Arc<tokio::sync::watch::Sender<bool>>,
}

/// The hash folder of the WASM bundle (`<site>/pkg/BUILD`), if it was built.
fn wasm_build(site_root: &Path) -> Option<String> {
    let hash = std::fs::read_to_string(site_root.join("pkg").join("BUILD")).ok()?;
    let hash = hash.trim().to_string();
    let ok = !hash.is_empty()
        && hash.bytes().all(|b| b.is_ascii_alphanumeric())
        && site_root
            .join("pkg")
            .join(&hash)
            .join("ritma_console_bg.wasm")
            .exists();
    ok.then_some(hash)
}

fn css_hash() -> String {
    hex::encode(&sha2::Sha256::digest(CSS.as_bytes())[..6])
}

/// Sets up the console (connects nothing yet except the live feed task).
pub async fn build(config: Resolved) -> anyhow::Result<Console> {
    let api = Api::new(&config.api_url)?;
    let build = wasm_build(&config.site_root);
    match &build {
        Some(h) => {
            tracing::info!(site = %config.site_root.display(), build = %h, "serving the WASM bundle")
        }
        None => tracing::warn!(
            site = %config.site_root.display(),
            "no WASM bundle found (run app/scripts/build.sh): pages render without interactivity"
        ),
    }
    let pkg_dir = build
        .as_ref()
        .map(|h| format!("pkg/{h}"))
        .unwrap_or_else(|| "pkg".to_string());
    let leptos_options = LeptosOptions::builder()
        .output_name("ritma_console")
        .site_root(config.site_root.to_string_lossy().to_string())
        .site_pkg_dir(pkg_dir)
        .site_addr(config.listen)
        .hash_files(false)
        .build();
    let hub = match (&config.service_token, &config.nats_url) {
        (Some(token), url) => {
            tracing::info!("live feed: every org, with the console's own bus credential");
            Hub::start_all_orgs(
                api.clone(),
                token.clone(),
                url.clone(),
                config.nats_ca_file.clone(),
            )
        }
        (None, _) => {
            tracing::warn!("RITMA_CONSOLE_SERVICE_TOKEN not set: no live updates");
            Hub::disconnected()
        }
    };
    let assets = Assets {
        css_href: format!("/assets/console.{}.css", css_hash()),
        hydrate: build.is_some(),
    };
    // Sessions and pending sign-ins live in PostgreSQL, shared by every
    // replica (connections open on demand: the console starts while the
    // database is down, and answers 503 until it is back).
    let pool = ritma_db::pool_lazy(&config.database_url, config.database_max_connections)?;
    let sessions = Sessions::new(pool.clone());
    let _pruner = sessions.spawn_pruner(Duration::from_secs(60));
    let oidc = match &config.oidc {
        Some(settings) => {
            tracing::info!(issuer = %settings.issuer, redirect_uri = %settings.redirect_uri, "single sign-on enabled");
            let pending = oidc::PendingStarts::new(
                pool,
                config.sso_pending_per_address,
                config.sso_pending_total,
            );
            Some(Arc::new(OidcClient::new(settings.clone(), pending)?))
        }
        None => None,
    };
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let closing_tx = Arc::new(closing_tx);
    let state = AppState {
        closing,
        _closing_tx: closing_tx.clone(),
        leptos_options,
        api,
        sessions,
        oidc,
        recent: replay::Recent::start(&hub),
        hub,
        metrics: Arc::new(metrics::ConsoleMetrics::new()),
        config: Arc::new(config),
        assets,
    };
    let router = router(state.clone());
    Ok(Console {
        router,
        state,
        closing: closing_tx,
    })
}

impl Console {
    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn router(&self) -> Router {
        self.router.clone()
    }

    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let closing = self.closing;
        let stop_metrics = tokio_util::sync::CancellationToken::new();
        tokio::spawn(metrics::serve_separately(
            self.state.clone(),
            stop_metrics.clone(),
        ));
        let _stop_metrics = stop_metrics.drop_guard();
        axum::serve(
            ritma_runtime::listener_without_delay(listener),
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            closing.send_replace(true);
        })
        .await?;
        Ok(())
    }
}

fn immutable() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    )
}

fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let ctx_state = state.clone();
    let context = move || {
        leptos::prelude::provide_context(ctx_state.assets.clone());
    };
    let options = state.leptos_options.clone();
    let pkg = Router::new()
        .fallback_service(
            ServeDir::new(state.config.site_root.join("pkg"))
                .precompressed_gzip()
                .precompressed_br(),
        )
        .layer(immutable());
    let css_path = state.assets.css_href.clone();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/live", get(sse::live_stream))
        .route("/export/{kind}", get(export::download))
        .route("/metrics", get(metrics::metrics))
        .route("/auth/login", post(auth::login))
        .route("/auth/oidc", get(auth::oidc_start))
        .route("/auth/callback", get(auth::oidc_callback))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/org", post(auth::switch_org))
        .route(
            &css_path,
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/css; charset=utf-8"),
                        (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                    ],
                    CSS,
                )
            }),
        )
        .nest("/pkg", pkg)
        .leptos_routes_with_context(&state, routes, context, move || shell(options.clone()))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), guard::guard))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        // Before the session guard: a cross-site write never reaches a handler.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            guard::check_origin,
        ))
        .layer(middleware::from_fn(guard::security_headers))
        .layer(CompressionLayer::new().gzip(true))
        .with_state(state)
}

async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, "not found")
}

async fn readyz(State(st): State<AppState>) -> Response {
    let api = match &st.config.api_token {
        Some(t) => st.api.orgs(t).await.is_ok(),
        None => st.api.ready().await,
    };
    let bus = st.hub.bus.borrow().connected;
    // Without the session store nobody can be signed in here.
    let sessions = st.sessions.ping().await;
    let body = Json(serde_json::json!({ "api": api, "bus": bus, "sessions": sessions }));
    if api && sessions {
        (StatusCode::OK, body).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}
