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
use std::net::{IpAddr, SocketAddr};
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
    /// Single sign-on starts pending per client address and in total.
    pub sso_starts: Arc<oidc::PendingLimits>,
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
            Hub::start_all_orgs(api.clone(), token.clone(), url.clone())
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
        sso_starts: Arc::new(oidc::PendingLimits::new(
            config.sso_pending_per_address,
            config.sso_pending_total,
        )),
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
        axum::serve(
            listener,
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
        // Before the session guard: a cross-site write never reaches a handler.
        .layer(middleware::from_fn_with_state(state.clone(), check_origin))
        .layer(middleware::from_fn(security_headers))
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

/// The browser's address: the TCP peer, or, when the peer is a trusted proxy
/// (`RITMA_CONSOLE_TRUSTED_PROXIES`), the last address it put in
/// `X-Forwarded-For`. None without connection info (in-process calls).
pub fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .next_back()
        .or(Some(peer))
}

fn peer_of(ext: &axum::http::Extensions) -> Option<IpAddr> {
    ext.get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The browser's address, put on every request by [`check_origin`].
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub Option<IpAddr>);

/// The browser's address for a request seen by a server function.
pub fn client_ip_of_parts(_st: &AppState, parts: &axum::http::request::Parts) -> Option<IpAddr> {
    parts.extensions.get::<ClientIp>().and_then(|c| c.0)
}

/// Whether a state-changing request comes from the console's own pages:
/// its `Origin` is the console's (public URL, or the Host it was sent to);
/// without an `Origin`, only a browser's `Sec-Fetch-Site: same-origin` will do.
fn same_origin(headers: &HeaderMap, public_origin: &str) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("same-origin"));
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    if origin == public_origin {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    match origin.split_once("://") {
        Some((scheme, rest)) => {
            (scheme == "http" || scheme == "https") && rest == host.to_ascii_lowercase()
        }
        None => false,
    }
}

/// Every request that may change state (anything but GET, HEAD, OPTIONS),
/// Leptos server functions included, must come from the console's own pages.
async fn check_origin(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    use axum::http::Method;
    let ip = client_ip(
        req.headers(),
        peer_of(req.extensions()),
        &st.config.trusted_proxies,
    );
    req.extensions_mut().insert(ClientIp(ip));
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && !same_origin(req.headers(), &st.config.public_origin) {
        tracing::warn!(
            method = %req.method(),
            path = %req.uri().path(),
            origin = ?req.headers().get(header::ORIGIN),
            "cross-site request refused"
        );
        return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
    }
    next.run(req).await
}

/// The Content-Security-Policy of every response. Pages get a per-response
/// nonce for the hydration script (Leptos puts it on its inline scripts);
/// the WASM module needs `'wasm-unsafe-eval'`.
pub fn csp(nonce: Option<&str>) -> String {
    let script = match nonce {
        Some(n) => format!("'self' 'nonce-{n}' 'wasm-unsafe-eval'"),
        None => "'self' 'wasm-unsafe-eval'".to_string(),
    };
    format!(
        "default-src 'self'; script-src {script}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// CSP (unless the page set its own, with its nonce), no MIME sniffing, no
/// referrer to other sites, no framing.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY)
        && let Ok(v) = HeaderValue::from_str(&csp(None))
    {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `%XX` sequences decoded (lossy; invalid ones kept as they are).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (
                (b[i + 1] as char).to_digit(16),
                (b[i + 2] as char).to_digit(16),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where to go after signing in: a path of this site only. Anything a
/// browser could read as another host (`//x`, `/\x`, a tab or newline that
/// browsers drop, an encoded slash or backslash, a scheme) falls back to `/`.
fn safe_next(next: Option<&str>) -> String {
    let Some(n) = next else {
        return "/".to_string();
    };
    let ok = n.len() <= 2048
        && n.starts_with('/')
        // Printable ASCII only: no whitespace or control characters (browsers
        // strip tab, CR and LF from URLs, turning `/\t/x` into `//x`).
        && n.bytes().all(|b| b.is_ascii_graphic())
        && !n.contains('\\')
        && {
            let path = n.split(['?', '#']).next().unwrap_or_default();
            let decoded = percent_decode(path);
            let lower = path.to_ascii_lowercase();
            !path.starts_with("//")
                && !decoded.starts_with("//")
                && !decoded.contains('\\')
                && !decoded.chars().any(|c| c.is_control() || c.is_whitespace())
                && !lower.contains("%2f")
                && !lower.contains("%5c")
                && !lower.contains("%25")
        };
    if ok { n.to_string() } else { "/".to_string() }
}

async fn login(
    State(st): State<AppState>,
    axum::Extension(ClientIp(ip)): axum::Extension<ClientIp>,
    Form(f): Form<LoginForm>,
) -> Response {
    let token = f.token.trim().to_string();
    let next = safe_next(f.next.as_deref());
    let back = |code: &str| login_error(code, &next);
    if !st.config.token_login {
        return back("token-login-off");
    }
    if token.is_empty() {
        return back("missing");
    }
    let orgs: Vec<OrgInfo> = match st.api.for_client(ip).orgs(&token).await {
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
    axum::Extension(ClientIp(ip)): axum::Extension<ClientIp>,
    axum::extract::Query(q): axum::extract::Query<OidcStartQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    let Some(client) = &st.oidc else {
        return login_error("sso-off", &next);
    };
    // Bounded per address and in total: a flood from one address fills only
    // its own share, and everyone else can still sign in.
    client.sweep();
    let Some(slot) = st.sso_starts.acquire(ip) else {
        tracing::warn!(
            ?ip,
            "too many single sign-on starts pending from this address"
        );
        return login_error("sso-busy", &next);
    };
    match client.start(next.clone(), slot).await {
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
    axum::Extension(ClientIp(ip)): axum::Extension<ClientIp>,
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
    let api = st.api.for_client(ip);
    let (user, orgs) =
        match tokio::try_join!(api.me(&tokens.access_token), api.orgs(&tokens.access_token)) {
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
    axum::Extension(ClientIp(ip)): axum::Extension<ClientIp>,
    headers: HeaderMap,
    Form(f): Form<OrgForm>,
) -> Response {
    let Some((id, session)) = st.sessions.from_headers(&headers) else {
        return Redirect::to("/login").into_response();
    };
    if st.sessions.set_org(&id, &f.org) {
        return Redirect::to("/").into_response();
    }
    // An org created (or a role granted) since sign-in: ask the controller.
    if let Ok(orgs) = st.api.for_client(ip).orgs(&session.token).await {
        st.sessions.set_orgs(&id, orgs);
        if st.sessions.set_org(&id, &f.org) {
            return Redirect::to("/").into_response();
        }
    }
    StatusCode::FORBIDDEN.into_response()
}

fn bus_event(bus: &BusState, org: &str, allowed: bool) -> SseEvent {
    let (connected, error) = if allowed {
        (bus.live(), bus.error.clone())
    } else {
        (false, Some(format!("no access to org {org}")))
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

fn alert_event(alert: &crate::model::alerts::LiveAlert) -> SseEvent {
    SseEvent::default()
        .event("alert")
        .data(serde_json::to_string(alert).unwrap_or_default())
}

fn resync_event() -> SseEvent {
    SseEvent::default().event("resync").data("{}")
}

/// `GET /live`: server-sent events of the org the session shows, while the
/// person may see it.
async fn live_stream(
    State(st): State<AppState>,
    axum::Extension(ClientIp(ip)): axum::Extension<ClientIp>,
    headers: HeaderMap,
) -> Response {
    let Some((id, session)) = st.sessions.from_headers(&headers) else {
        return (StatusCode::UNAUTHORIZED, "sign in first").into_response();
    };
    let api = st.api.for_client(ip);
    // Which orgs the person may see now (not only at sign-in).
    let access = match Access::check(&api, &session.token).await {
        Ok((a, orgs)) => {
            st.sessions.set_orgs(&id, orgs);
            a
        }
        Err(crate::model::AppError::Unauthorized) => {
            return (StatusCode::UNAUTHORIZED, "sign in again").into_response();
        }
        Err(e) => {
            tracing::warn!(error = %e, "live: cannot check the person's orgs; using the session's");
            Access::from_orgs(session.orgs.iter().map(|o| o.id.clone()))
        }
    };
    let stream = events(LiveCtx {
        org: session.org.clone(),
        sid: id,
        sessions: st.sessions.clone(),
        api,
        recheck: st.config.role_recheck,
        access,
        checked: tokio::time::Instant::now(),
        rx: st.hub.tx.subscribe(),
        bus: st.hub.bus.clone(),
        closing: st.closing.clone(),
        out: std::collections::VecDeque::new(),
    });
    let mut resp = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// The orgs a person may see, as the controller says with their own token.
#[derive(Clone, Debug)]
struct Access {
    orgs: std::collections::HashSet<String>,
}

impl Access {
    fn from_orgs(orgs: impl IntoIterator<Item = String>) -> Self {
        Access {
            orgs: orgs.into_iter().collect(),
        }
    }

    /// `GET /api/orgs` lists the orgs the caller has a role in (every org
    /// for the operator's admin token, including orgs created later).
    async fn check(
        api: &Api,
        token: &str,
    ) -> Result<(Access, Vec<OrgInfo>), crate::model::AppError> {
        let orgs = api.orgs(token).await?;
        Ok((Self::from_orgs(orgs.iter().map(|o| o.id.clone())), orgs))
    }

    fn allows(&self, org: &str) -> bool {
        self.orgs.contains(org)
    }
}

/// One browser's live stream.
struct LiveCtx {
    /// The org this stream currently delivers (the session's shown org).
    org: String,
    sid: String,
    sessions: Sessions,
    api: Api,
    recheck: Duration,
    access: Access,
    checked: tokio::time::Instant,
    rx: broadcast::Receiver<Arc<HubMsg>>,
    bus: tokio::sync::watch::Receiver<BusState>,
    closing: tokio::sync::watch::Receiver<bool>,
    /// Events to send before waiting again.
    out: std::collections::VecDeque<SseEvent>,
}

enum Step {
    Continue,
    End,
}

impl LiveCtx {
    fn bus_now(&mut self) -> SseEvent {
        let allowed = self.access.allows(&self.org);
        bus_event(&self.bus.borrow_and_update(), &self.org, allowed)
    }

    /// Follow the session: the org it shows now, and (at most every
    /// `recheck`, or at once for an org not known to be allowed) whether the
    /// person still has a role there.
    async fn follow_session(&mut self) -> Step {
        let Some(session) = self.sessions.get(&self.sid) else {
            return Step::End; // signed out or expired
        };
        let switched = session.org != self.org;
        let due = self.checked.elapsed() >= self.recheck
            || (switched && !self.access.allows(&session.org));
        let mut changed = switched;
        if due {
            self.checked = tokio::time::Instant::now();
            match Access::check(&self.api, &session.token).await {
                Ok((a, orgs)) => {
                    self.sessions.set_orgs(&self.sid, orgs);
                    if a.allows(&session.org) != self.access.allows(&session.org) {
                        changed = true;
                    }
                    self.access = a;
                }
                Err(crate::model::AppError::Unauthorized) => return Step::End,
                Err(e) => {
                    tracing::warn!(error = %e, "live: role re-check failed; keeping the last answer")
                }
            }
        }
        if changed {
            self.org = session.org;
            self.out.push_back(resync_event());
            let ev = self.bus_now();
            self.out.push_back(ev);
        }
        Step::Continue
    }

    async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(ev) = self.out.pop_front() {
                return Some(ev);
            }
            if *self.closing.borrow() {
                return None;
            }
            let until_check = self.recheck.saturating_sub(self.checked.elapsed());
            let poll = until_check.min(Duration::from_secs(1));
            tokio::select! {
                _ = self.closing.changed() => return None,
                msg = self.rx.recv() => {
                    if let Step::End = self.follow_session().await {
                        return None;
                    }
                    match msg {
                        Ok(m) => match m.as_ref() {
                            HubMsg::State { org, event } => {
                                if *org == self.org && self.access.allows(org) {
                                    self.out.push_back(state_event(event));
                                }
                            }
                            HubMsg::Alert { org, alert } => {
                                if *org == self.org && self.access.allows(org) {
                                    self.out.push_back(alert_event(alert));
                                }
                            }
                            HubMsg::Resync => self.out.push_back(resync_event()),
                        },
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "live: a browser fell behind; asking it to re-sync");
                            self.out.push_back(resync_event());
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
                changed = self.bus.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    let ev = self.bus_now();
                    self.out.push_back(ev);
                }
                _ = tokio::time::sleep(poll) => {
                    if let Step::End = self.follow_session().await {
                        return None;
                    }
                }
            }
        }
    }
}

fn events(mut ctx: LiveCtx) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let first = ctx.bus_now();
    ctx.out.push_back(first);
    futures::stream::unfold(ctx, |mut ctx| async move {
        let ev = ctx.next_event().await?;
        Some((Ok(ev), ctx))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_must_stay_on_site() {
        for ok in [
            "/",
            "/nodes?status=offline",
            "/nodes/web-1",
            "/nodes?label=team%3Dpay%2Fments",
            "/audit?actor=a%40b.c",
        ] {
            assert_eq!(safe_next(Some(ok)), ok, "{ok:?} is a path of this site");
        }
        for trick in [
            "//evil.example",
            "//evil.example/x",
            "https://evil.example",
            "http:/evil.example",
            "javascript:alert(1)",
            "evil.example",
            "/\\evil.example",
            "/\\/evil.example",
            "\\\\evil.example",
            "/\t/evil.example/x",
            "/\n/evil.example",
            "/\r/evil.example",
            "/\r\n/evil.example",
            "/ /evil.example",
            " //evil.example",
            "\t//evil.example",
            " /nodes",
            "/%2fevil.example",
            "/%2Fevil.example",
            "/%5cevil.example",
            "/%5Cevil.example",
            "/%252f%252fevil.example",
            "/nodes/%2f%2fevil.example",
            "/\u{0}/evil.example",
            "/\u{7f}/evil.example",
            "/\u{a0}/evil.example",
            "/\u{3000}/evil.example",
            "",
        ] {
            assert_eq!(safe_next(Some(trick)), "/", "{trick:?} must not pass");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn origin_check() {
        let public = "http://console.example";
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:3000"));
        assert!(!same_origin(&h, public), "no Origin, no Sec-Fetch-Site");
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h, public));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&h, public), "a browser's same-origin request");
        for (origin, ok) in [
            ("http://127.0.0.1:3000", true),
            ("http://console.example", true),
            ("https://console.example", false),
            ("http://evil.example", false),
            ("null", false),
            ("http://127.0.0.1:3000.evil.example", false),
            ("http://127.0.0.1:30000", false),
        ] {
            h.insert(header::ORIGIN, HeaderValue::from_static(origin));
            assert_eq!(same_origin(&h, public), ok, "{origin}");
        }
    }

    #[test]
    fn client_address_comes_from_trusted_proxies_only() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 10.0.0.7"),
        );
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            client_ip(&h, Some(proxy), &[proxy]),
            Some("10.0.0.7".parse().unwrap()),
            "the address the proxy appended"
        );
        assert_eq!(
            client_ip(&h, Some(other), &[proxy]),
            Some(other),
            "a client's own X-Forwarded-For is ignored"
        );
        assert_eq!(client_ip(&h, None, &[proxy]), None);
    }

    #[test]
    fn the_policy_forbids_framing_and_foreign_scripts() {
        let p = csp(Some("abc"));
        assert!(p.contains("frame-ancestors 'none'"));
        assert!(p.contains("script-src 'self' 'nonce-abc' 'wasm-unsafe-eval'"));
        let script = p
            .split(';')
            .find(|d| d.trim_start().starts_with("script-src"))
            .unwrap();
        assert!(!script.contains("unsafe-inline"), "{script}");
        assert!(csp(None).contains("object-src 'none'"));
    }
}
