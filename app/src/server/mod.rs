//! The console server: `build(config)` then `run(listener, shutdown)`.

pub mod api;
mod auth;
pub mod config;
pub mod live;
pub mod metrics;
pub mod oidc;
pub mod replay;
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
use axum::{Json, Router};
use config::Resolved;
use futures::Stream;
use leptos::prelude::LeptosOptions;
use leptos_axum::{LeptosRoutes, generate_route_list};
use live::{BusState, Hub, HubMsg};
use oidc::OidcClient;
use session::Sessions;
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
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
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
        || path == "/metrics"
        || path.starts_with("/auth/")
        || path.starts_with("/pkg/")
        || path.starts_with("/assets/")
        || path.starts_with("/api/");
    // Assets and health checks need no session (no database read for them);
    // everything else renews a token that is about to run out.
    let static_or_health = path.starts_with("/pkg/")
        || path.starts_with("/assets/")
        || path == "/healthz"
        || path == "/readyz";
    let signed_in = if static_or_health {
        false
    } else {
        match st.sessions.from_headers(req.headers()).await {
            Ok(Some((id, session))) => auth::renew_if_due(&st, &id, &session).await,
            Ok(None) => false,
            Err(e) => return store_down(&e),
        }
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

/// The session store could not be read: nobody is sent to sign in again
/// for it, the browser retries.
fn store_down(e: &session::SessionError) -> Response {
    tracing::warn!(error = %e, "session store unavailable");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "2")],
        "sessions are unavailable; try again shortly",
    )
        .into_response()
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
    let (id, session) = match st.sessions.from_headers(&headers).await {
        Ok(Some(found)) => found,
        Ok(None) => return (StatusCode::UNAUTHORIZED, "sign in first").into_response(),
        Err(e) => return store_down(&e),
    };
    let api = st.api.for_client(ip);
    // Which orgs the person may see now (not only at sign-in).
    let access = match Access::check(&api, &session.token).await {
        Ok((a, orgs)) => {
            if let Err(e) = st.sessions.set_orgs(&id, orgs).await {
                tracing::warn!(error = %e, "live: cannot store the person's orgs");
            }
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
    // Subscribed before the replay is read: nothing falls in between.
    let rx = st.recent.subscribe();
    let mut out = std::collections::VecDeque::new();
    let mut replayed_upto = 0;
    if let Some(last) = replay::last_event_id(&headers)
        && access.allows(&session.org)
    {
        // A reconnect (perhaps from another replica): what changed since.
        let resume = st.recent.resume(&session.org, last);
        if resume.resync {
            out.push_back(resync_event());
        }
        for ev in resume.events {
            replayed_upto = replayed_upto.max(ev.event_id);
            out.push_back(state_event(&ev));
        }
    }
    let stream = events(LiveCtx {
        replayed_upto,
        session_read: None,
        org: session.org.clone(),
        sid: id,
        sessions: st.sessions.clone(),
        api,
        recheck: st.config.role_recheck,
        access,
        checked: tokio::time::Instant::now(),
        rx,
        bus: st.hub.bus.clone(),
        closing: st.closing.clone(),
        out,
        _client: st.metrics.sse_client(),
        metrics: st.metrics.clone(),
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
    /// Counts this stream in the SSE clients gauge while it lives.
    _client: metrics::SseClient,
    metrics: Arc<metrics::ConsoleMetrics>,
    /// Replayed on resume: not sent again when they also arrive live.
    replayed_upto: i64,
    /// When the session was last read from the store.
    session_read: Option<tokio::time::Instant>,
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
        // At most once a second (not once per bus event): a sign-out or an
        // org switch on any replica is followed within that.
        if self
            .session_read
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return Step::Continue;
        }
        self.session_read = Some(tokio::time::Instant::now());
        let session = match self.sessions.get(&self.sid).await {
            Ok(Some(s)) => s,
            Ok(None) => return Step::End, // signed out (on any replica) or expired
            Err(e) => {
                // Store briefly away: the stream goes on with what it knows.
                tracing::warn!(error = %e, "live: cannot read the session");
                return Step::Continue;
            }
        };
        let switched = session.org != self.org;
        let due = self.checked.elapsed() >= self.recheck
            || (switched && !self.access.allows(&session.org));
        let mut changed = switched;
        if due {
            self.checked = tokio::time::Instant::now();
            match Access::check(&self.api, &session.token).await {
                Ok((a, orgs)) => {
                    if let Err(e) = self.sessions.set_orgs(&self.sid, orgs).await {
                        tracing::warn!(error = %e, "live: cannot store the person's orgs");
                    }
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
                                if *org == self.org
                                    && self.access.allows(org)
                                    && event.event_id > self.replayed_upto
                                {
                                    self.metrics.live_events.inc();
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
