//! The console server: `build(config)` then `run(listener, shutdown)`.

pub mod api;
pub mod config;
pub mod live;
pub mod oidc;
pub mod session;

use crate::app::{App, Assets, shell};
use crate::model::{LiveEvent, OrgInfo};
use api::Api;
use axum::extract::{FromRef, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use config::Resolved;
use futures::Stream;
use leptos::prelude::LeptosOptions;
use leptos_axum::{LeptosRoutes, generate_route_list};
use live::{BusState, Hub, HubMsg};
use oidc::OidcClient;
use serde::Deserialize;
use session::{Credential, Sessions};
use sha2::Digest as _;
use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
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
    let hub = match &config.nats_url {
        Some(url) => Hub::start(url.clone(), config.creds.clone(), config.org.clone()),
        None => {
            tracing::warn!("RITMA_NATS_URL not set: no live updates");
            Hub::disconnected()
        }
    };
    let assets = Assets {
        css_href: format!("/assets/console.{}.css", css_hash()),
        hydrate: build.is_some(),
    };
    let oidc = match &config.oidc {
        Some(settings) => {
            tracing::info!(issuer = %settings.issuer, redirect_uri = %settings.redirect_uri, "single sign-on enabled");
            Some(Arc::new(OidcClient::new(settings.clone())?))
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
        sessions: Sessions::default(),
        oidc,
        hub,
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
        axum::serve(listener, self.router)
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
        .route("/live", get(live_stream))
        .route("/auth/login", post(login))
        .route("/auth/oidc", get(oidc_start))
        .route("/auth/callback", get(oidc_callback))
        .route("/auth/logout", post(logout))
        .route("/auth/org", post(switch_org))
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
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(CompressionLayer::new().gzip(true))
        .with_state(state)
}

async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, "not found")
}

/// Pages need a session: without one, a page request goes to the sign-in form.
async fn guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let open = path == "/login"
        || path == "/healthz"
        || path == "/readyz"
        || path == "/live"
        || path.starts_with("/auth/")
        || path.starts_with("/pkg/")
        || path.starts_with("/assets/")
        || path.starts_with("/api/");
    let signed_in = match st.sessions.from_headers(req.headers()) {
        Some((id, session)) => renew_if_due(&st, &id, &session).await,
        None => false,
    };
    if path == "/login" && signed_in && req.method() == axum::http::Method::GET {
        return Redirect::to("/").into_response();
    }
    if open || signed_in || req.method() != axum::http::Method::GET {
        return next.run(req).await;
    }
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let location = if target == "/" {
        "/login".to_string()
    } else {
        format!("/login?next={}", crate::model::url_encode(&target))
    };
    Redirect::to(&location).into_response()
}

async fn readyz(State(st): State<AppState>) -> Response {
    let api = match &st.config.api_token {
        Some(t) => st.api.orgs(t).await.is_ok(),
        None => st.api.ready().await,
    };
    let bus = st.hub.bus.borrow().connected;
    let body = Json(serde_json::json!({ "api": api, "bus": bus }));
    if api {
        (StatusCode::OK, body).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

/// Refuses a form post from another site (the cookie is SameSite=Lax too).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") => {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

async fn login(
    State(st): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        return Redirect::to("/login?error=origin").into_response();
    }
    let token = f.token.trim().to_string();
    let next = safe_next(f.next.as_deref());
    let back = |code: &str| login_error(code, &next);
    if !st.config.token_login {
        return back("token-login-off");
    }
    if token.is_empty() {
        return back("missing");
    }
    let orgs: Vec<OrgInfo> = match st.api.orgs(&token).await {
        Ok(o) => o,
        Err(crate::model::AppError::Unauthorized | crate::model::AppError::Forbidden(_)) => {
            return back("invalid");
        }
        Err(e) => {
            tracing::warn!(error = %e, "sign-in: controller API failed");
            return back("unavailable");
        }
    };
    let org = if orgs.iter().any(|o| o.id == st.config.org) {
        st.config.org.clone()
    } else if let Some(o) = orgs.first() {
        o.id.clone()
    } else {
        return back("no-org");
    };
    let credential = Credential {
        token,
        refresh_token: None,
        token_expires: None,
        user: "operator (admin token)".into(),
    };
    let id = st.sessions.create(credential, org, orgs);
    let mut resp = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&id, st.config.secure_cookie)) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// Renew a session's access token shortly before it runs out. False when the
/// session is over (renewal refused): the person signs in again.
async fn renew_if_due(st: &AppState, id: &str, s: &session::Session) -> bool {
    const MARGIN: Duration = Duration::from_secs(30);
    let (Some(client), Some(refresh)) = (&st.oidc, &s.refresh_token) else {
        return true;
    };
    if !s.needs_refresh(MARGIN) {
        return true;
    }
    match client.refresh(refresh).await {
        Ok(t) => {
            st.sessions
                .renew(id, t.access_token, t.refresh_token, t.expires_at);
            true
        }
        Err(oidc::OidcError::Refused { status, .. }) => {
            tracing::info!(status, "session renewal refused by the IdP; signing out");
            st.sessions.remove(id);
            false
        }
        Err(e) => {
            // IdP briefly unreachable: keep the session while its token is valid.
            tracing::warn!(error = %e, "session renewal failed");
            s.token_expires
                .is_some_and(|at| at > std::time::Instant::now())
        }
    }
}

fn login_error(code: &str, next: &str) -> Response {
    let q = if next == "/" {
        String::new()
    } else {
        format!("&next={}", crate::model::url_encode(next))
    };
    Redirect::to(&format!("/login?error={code}{q}")).into_response()
}

fn with_cookie(mut resp: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
struct OidcStartQuery {
    next: Option<String>,
}

/// `GET /auth/oidc`: send the browser to the IdP (authorization code + PKCE).
async fn oidc_start(
    State(st): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<OidcStartQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    let Some(client) = &st.oidc else {
        return login_error("sso-off", &next);
    };
    match client.start(next.clone()).await {
        Ok((url, state)) => with_cookie(
            Redirect::to(&url).into_response(),
            &oidc::state_cookie(&state, st.config.secure_cookie),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "single sign-on could not start");
            login_error("sso-unavailable", &next)
        }
    }
}

#[derive(Deserialize)]
struct OidcCallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /auth/callback`: the IdP sends the browser back with a code.
async fn oidc_callback(
    State(st): State<AppState>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<OidcCallbackQuery>,
) -> Response {
    let secure = st.config.secure_cookie;
    let fail = |code: &str, next: &str| {
        with_cookie(login_error(code, next), &oidc::clear_state_cookie(secure))
    };
    let Some(client) = &st.oidc else {
        return fail("sso-off", "/");
    };
    let Some(state) = q.state.filter(|s| !s.is_empty()) else {
        return fail("sso-state", "/");
    };
    // The state must be the one this browser started, and unused.
    let cookie_state = session::cookie_value(&headers, oidc::STATE_COOKIE);
    let Some(pending) = client.take_pending(&state) else {
        return fail("sso-state", "/");
    };
    if cookie_state.as_deref() != Some(state.as_str()) {
        tracing::warn!("sign-in callback without the state cookie of the browser that started it");
        return fail("sso-state", &pending.next);
    }
    if let Some(e) = q.error {
        tracing::info!(error = %e, "the IdP refused the sign-in");
        return fail("sso-denied", &pending.next);
    }
    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        return fail("sso-failed", &pending.next);
    };
    let tokens = match client.exchange(&code, &pending.verifier).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "authorization code exchange failed");
            return fail("sso-failed", &pending.next);
        }
    };
    let (user, orgs) = match tokio::try_join!(
        st.api.me(&tokens.access_token),
        st.api.orgs(&tokens.access_token)
    ) {
        Ok(v) => v,
        Err(crate::model::AppError::Unauthorized | crate::model::AppError::Forbidden(_)) => {
            return fail("sso-rejected", &pending.next);
        }
        Err(e) => {
            tracing::warn!(error = %e, "sign-in: controller API failed");
            return fail("unavailable", &pending.next);
        }
    };
    let org = if orgs.iter().any(|o| o.id == st.config.org) {
        st.config.org.clone()
    } else if let Some(o) = orgs.first() {
        o.id.clone()
    } else {
        return fail("no-org", &pending.next);
    };
    tracing::info!(%user, %org, "signed in with single sign-on");
    let credential = Credential {
        token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        token_expires: tokens.expires_at,
        user,
    };
    let id = st.sessions.create(credential, org, orgs);
    let resp = with_cookie(
        Redirect::to(&pending.next).into_response(),
        &session::set_cookie(&id, secure),
    );
    with_cookie(resp, &oidc::clear_state_cookie(secure))
}

async fn logout(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return StatusCode::FORBIDDEN.into_response();
    }
    if let Some((id, _)) = st.sessions.from_headers(&headers) {
        st.sessions.remove(&id);
    }
    let mut resp = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(st.config.secure_cookie)) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
struct OrgForm {
    org: String,
}

async fn switch_org(
    State(st): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<OrgForm>,
) -> Response {
    if !same_origin(&headers) {
        return StatusCode::FORBIDDEN.into_response();
    }
    match st.sessions.from_headers(&headers) {
        Some((id, _)) if st.sessions.set_org(&id, &f.org) => Redirect::to("/").into_response(),
        Some(_) => StatusCode::FORBIDDEN.into_response(),
        None => Redirect::to("/login").into_response(),
    }
}

fn bus_event(bus: &BusState, org: &str) -> SseEvent {
    let (connected, error) = match &bus.org {
        Some(o) if o == org => (bus.connected, bus.error.clone()),
        Some(o) => (
            false,
            Some(format!("live updates are configured for org {o} only")),
        ),
        None => (false, bus.error.clone()),
    };
    SseEvent::default()
        .event("bus")
        .data(serde_json::json!({ "connected": connected, "error": error }).to_string())
}

fn state_event(ev: &LiveEvent) -> SseEvent {
    SseEvent::default()
        .event("state")
        .id(ev.event_id.to_string())
        .data(serde_json::to_string(ev).unwrap_or_default())
}

/// `GET /live`: server-sent events of the session's org.
async fn live_stream(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let Some((_, session)) = st.sessions.from_headers(&headers) else {
        return (StatusCode::UNAUTHORIZED, "sign in first").into_response();
    };
    let rx = st.hub.tx.subscribe();
    let bus = st.hub.bus.clone();
    let stream = events(session.org, rx, bus, st.closing.clone());
    let mut resp = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

fn events(
    org: String,
    rx: broadcast::Receiver<Arc<HubMsg>>,
    mut bus: tokio::sync::watch::Receiver<BusState>,
    closing: tokio::sync::watch::Receiver<bool>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let first = bus_event(&bus.borrow_and_update(), &org);
    let init = futures::stream::once(async move { Ok(first) });
    let rest = futures::stream::unfold(
        (org, rx, bus, closing),
        |(org, mut rx, mut bus, mut closing)| async move {
            loop {
                if *closing.borrow() {
                    return None;
                }
                tokio::select! {
                    _ = closing.changed() => return None,
                    msg = rx.recv() => match msg {
                        Ok(m) => match m.as_ref() {
                            HubMsg::State { org: o, event } if *o == org => {
                                return Some((Ok(state_event(event)), (org, rx, bus, closing)));
                            }
                            HubMsg::State { .. } => continue,
                            HubMsg::Resync => {
                                return Some((Ok(SseEvent::default().event("resync").data("{}")), (org, rx, bus, closing)));
                            }
                        },
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "live: a browser fell behind; asking it to re-sync");
                            return Some((Ok(SseEvent::default().event("resync").data("{}")), (org, rx, bus, closing)));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    changed = bus.changed() => {
                        if changed.is_err() {
                            return None;
                        }
                        let ev = bus_event(&bus.borrow_and_update(), &org);
                        return Some((Ok(ev), (org, rx, bus, closing)));
                    }
                }
            }
        },
    );
    futures::StreamExt::chain(init, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_must_stay_on_site() {
        assert_eq!(
            safe_next(Some("/nodes?status=offline")),
            "/nodes?status=offline"
        );
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn origin_check() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:3000"));
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:3000"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
    }
}
