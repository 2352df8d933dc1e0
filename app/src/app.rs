//! The console's pages and components (rendered on the server, hydrated in the browser).
//!
//! This module holds the document shell, the router and the signed-in layout; each page
//! is a module of its own below, and widgets shared by pages are in `ui`.

use crate::fns::get_session;
use crate::live::{self, Conn};
use crate::model::SessionInfo;
use leptos::either::Either;
use leptos::prelude::*;
use leptos_meta::{MetaTags, Title, provide_meta_context};
use leptos_router::components::{A, Outlet, ParentRoute, Route, Router, Routes};
use leptos_router::{Lazy, LazyRoute, SsrMode, path};

mod alert_channels;
mod alert_rules;
mod alerts;
mod audit;
mod bulk_panel;
mod charts;
mod connectors;
mod dashboard;
mod diagnostics;
mod enroll;
mod keys;
mod login;
mod node_detail;
mod node_ops;
mod nodes;
mod policies;
mod silences;
mod ui;
mod usage;

#[cfg(feature = "ssr")]
pub use alert_channels::channel_secret_html;
#[cfg(feature = "ssr")]
pub use enroll::token_created_html;

/// Asset URLs the server resolved at start-up (provided as context during SSR).
#[derive(Clone, Debug)]
pub struct Assets {
    pub css_href: String,
    /// The WASM bundle exists: emit the hydration scripts.
    pub hydrate: bool,
}

pub fn shell(options: LeptosOptions) -> impl IntoView {
    let assets = use_context::<Assets>();
    let css = assets
        .as_ref()
        .map(|a| a.css_href.clone())
        .unwrap_or_default();
    let hydrate = assets.is_some_and(|a| a.hydrate);
    // The page's Content-Security-Policy carries this response's nonce, which
    // Leptos puts on its inline hydration scripts.
    #[cfg(feature = "ssr")]
    if let (Some(nonce), Some(res)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) && let Ok(v) = axum::http::HeaderValue::from_str(&crate::server::csp(Some(&nonce)))
    {
        res.insert_header(axum::http::header::CONTENT_SECURITY_POLICY, v);
    }
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="data:,"/>
                <link rel="stylesheet" href=css/>
                {hydrate.then(|| view! { <HydrationScripts options=options.clone() islands=cfg!(feature = "islands")/> })}
                <MetaTags/>
            </head>
            <body>
                <App/>
                <HydratedMark/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Router>
            <Routes fallback=|| {
                mark_hydrated();
                view! { <NotFound/> }
            }>
                <Route path=path!("/login") view={Lazy::<LoginRoute>::new()}/>
                // Whole pages (not streamed out of order): the live regions'
                // re-reads take the parts they swap from the HTML as sent.
                <ParentRoute path=path!("") view=Shell ssr=SsrMode::Async>
                    <Route path=path!("/") view={Lazy::<DashboardRoute>::new()}/>
                    <Route path=path!("/nodes") view={Lazy::<NodesRoute>::new()}/>
                    <Route path=path!("/nodes/:id") view={Lazy::<NodeDetailRoute>::new()}/>
                    <Route path=path!("/enroll") view={Lazy::<EnrollRoute>::new()}/>
                    <Route path=path!("/audit") view={Lazy::<AuditRoute>::new()}/>
                    <Route path=path!("/policies") view={Lazy::<PoliciesRoute>::new()}/>
                    <Route path=path!("/connectors") view={Lazy::<ConnectorsRoute>::new()}/>
                    <Route path=path!("/keys") view={Lazy::<KeysRoute>::new()}/>
                    <Route path=path!("/usage") view={Lazy::<UsageRoute>::new()}/>
                    <Route path=path!("/alerts") view={Lazy::<AlertsRoute>::new()}/>
                    <Route path=path!("/alerts/rules") view={Lazy::<AlertRulesRoute>::new()}/>
                    <Route path=path!("/alerts/channels") view={Lazy::<AlertChannelsRoute>::new()}/>
                    <Route path=path!("/alerts/silences") view={Lazy::<SilencesRoute>::new()}/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}

/// Marks the body once the page shown has hydrated: only the browser runs
/// effects, and a lazy page's effects run once its own code has loaded and
/// taken over the server's HTML, not when the shell has (a form clicked
/// earlier would submit as a plain POST). Tests wait for this marker.
fn mark_hydrated() {
    Effect::new(move |_| live::mark_body("data-hydrated", "true"));
}

/// Has the page's HTML preload a lazy island's WASM chunks (`name`: the island's
/// name in snake case), as Leptos does for lazy routes but not for islands: the
/// browser then fetches them beside the main module instead of after it.
/// Called at the top of each lazy island; a no-op in the browser and without a
/// split bundle.
pub(crate) fn preload_island(name: &str) {
    #[cfg(all(feature = "ssr", feature = "islands"))]
    {
        use std::sync::OnceLock;
        // The manifest's loader names, fixed for the server's lifetime (one per island).
        static LOADERS: OnceLock<Vec<&'static str>> = OnceLock::new();
        let Some(manifest) = use_context::<leptos::WasmSplitManifest>() else {
            return;
        };
        let loaders = LOADERS.get_or_init(|| {
            manifest.0.with_value(|(_, loaders, _)| {
                loaders
                    .keys()
                    .map(|k| &*Box::leak(k.clone().into_boxed_str()))
                    .collect()
            })
        });
        // `<name>_loader_<hash of where the island is declared>`
        let prefix = format!("{name}_loader_");
        if let Some(loader) = loaders.iter().find(|l| {
            l.strip_prefix(prefix.as_str())
                .is_some_and(|hash| hash.bytes().all(|b| b.is_ascii_digit()))
        }) {
            leptos::prefetch_lazy_fn_on_server(loader);
        }
    }
    #[cfg(not(all(feature = "ssr", feature = "islands")))]
    let _ = name;
}

/// Islands mode: the last island of every page, so it hydrates after the
/// others (they hydrate in document order, each waiting for its chunk). It
/// marks the page as the lazy routes do when the whole page hydrates, and
/// only then starts the live feed and the clock: an island still loading its
/// chunk must hydrate against what the server rendered, not against pushed
/// changes. When the whole page hydrates, this renders nothing.
#[cfg_attr(feature = "islands", island)]
#[cfg_attr(not(feature = "islands"), component)]
fn HydratedMark() -> impl IntoView {
    if cfg!(feature = "islands") {
        mark_hydrated();
        Effect::new(move |_| live::start_if_requested());
    }
}

/// Each page is a lazy route: its code is a WASM chunk of its own, loaded
/// when the page is first shown (`app/scripts/build.sh` splits the bundle),
/// so the first load carries the shell and one page, not every page.
/// In islands mode only the server renders pages: no page is a split point
/// (an exported split point would keep the whole page in the bundle), and
/// each page's islands are chunks of their own instead.
macro_rules! lazy_pages {
    ($($route:ident => $module:ident :: $page:ident,)*) => {$(
        struct $route;

        #[cfg(feature = "islands")]
        impl LazyRoute for $route {
            fn data() -> Self {
                $route
            }

            async fn view(_this: Self) -> AnyView {
                view! { <$module::$page/> }.into_any()
            }
        }

        #[cfg(not(feature = "islands"))]
        #[leptos_router::lazy_route]
        impl LazyRoute for $route {
            fn data() -> Self {
                $route
            }

            fn view(_this: Self) -> AnyView {
                mark_hydrated();
                view! { <$module::$page/> }.into_any()
            }
        }
    )*};
}

lazy_pages! {
    LoginRoute => login::LoginPage,
    DashboardRoute => dashboard::DashboardPage,
    NodesRoute => nodes::NodesPage,
    NodeDetailRoute => node_detail::NodeDetailPage,
    EnrollRoute => enroll::EnrollPage,
    AuditRoute => audit::AuditPage,
    PoliciesRoute => policies::PoliciesPage,
    ConnectorsRoute => connectors::ConnectorsPage,
    KeysRoute => keys::KeysPage,
    UsageRoute => usage::UsagePage,
    AlertsRoute => alerts::AlertsPage,
    AlertRulesRoute => alert_rules::RulesPage,
    AlertChannelsRoute => alert_channels::ChannelsPage,
    SilencesRoute => silences::SilencesPage,
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        resp.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found · Ritma"/>
        <main class="center">
            <div class="card narrow">
                <h1>"Page not found"</h1>
                <p>"There is nothing at this address."</p>
                <p><a href="/">"Back to the dashboard"</a></p>
            </div>
        </main>
    }
}

// ---------------------------------------------------------------- layout

#[component]
fn Shell() -> impl IntoView {
    live::provide_for_render();
    let session = Resource::new(|| (), |_| get_session());
    view! {
        <a class="skip" href="#main">"Skip to content"</a>
        <header class="top">
            <a class="brand" href="/">
                <span class="logo" aria-hidden="true">"◆"</span>
                "Ritma "
                <span class="brand-sub">"Node Console"</span>
            </a>
            <nav aria-label="Main">
                <A href="/" exact=true>"Dashboard"</A>
                <A href="/nodes">"Nodes"</A>
                <A href="/policies">"Policies"</A>
                <A href="/connectors">"Connectors"</A>
                <A href="/keys">"Keys"</A>
                <A href="/usage">"Usage"</A>
                <A href="/alerts">"Alerts"</A>
                <A href="/enroll">"Enroll a node"</A>
                <A href="/audit">"Audit"</A>
            </nav>
            <div class="top-right">
                <LiveIndicator/>
                <Suspense fallback=|| ()>
                    {move || session.get().map(|s| match s {
                        Ok(s) => {
                            let user = s.user.clone();
                            Some(view! {
                                <span class="user muted small" data-testid="user" title="Signed in as">{user}</span>
                                <OrgSwitcher session=s/>
                            })
                        }
                        Err(_) => None,
                    })}
                </Suspense>
                <form method="post" action="/auth/logout" class="inline">
                    <button type="submit" class="link">"Sign out"</button>
                </form>
            </div>
        </header>
        <main id="main" tabindex="-1">
            <alerts::AlertBanner/>
            <Outlet/>
        </main>
    }
}

#[component]
fn OrgSwitcher(session: SessionInfo) -> impl IntoView {
    if session.orgs.len() <= 1 {
        let name = session
            .orgs
            .first()
            .map(|o| o.name.clone())
            .unwrap_or_else(|| session.org.clone());
        return Either::Left(view! {
            <span class="org" title="Organisation">
                <span class="muted">"Org "</span>
                <strong data-testid="org">{name}</strong>
            </span>
        });
    }
    let current = session.org.clone();
    Either::Right(view! {
        <form method="post" action="/auth/org" class="inline org">
            <label for="org-select" class="muted">"Org "</label>
            <select id="org-select" name="org">
                {session
                    .orgs
                    .into_iter()
                    .map(|o| {
                        let selected = o.id == current;
                        view! { <option value=o.id.clone() selected=selected>{o.name}</option> }
                    })
                    .collect_view()}
            </select>
            <button type="submit" class="small">"Switch"</button>
        </form>
    })
}

/// On every signed-in page. When the whole page hydrates it starts the
/// page's live feed (in islands mode it asks for it, and `HydratedMark`
/// starts it after the last island).
#[cfg_attr(feature = "islands", island)]
#[cfg_attr(not(feature = "islands"), component)]
fn LiveIndicator() -> impl IntoView {
    let live = live::use_live();
    if cfg!(feature = "islands") {
        live::request();
    } else {
        Effect::new(move |_| live::start());
    }
    let state = move || {
        let bus_ok = live.bus.with(|b| b.as_ref().map(|b| b.connected));
        match (live.conn.get(), bus_ok) {
            (Conn::Open, Some(false)) => ("degraded", "Live: bus down"),
            (Conn::Open, _) => ("open", "Live"),
            (Conn::Connecting, _) => ("connecting", "Connecting…"),
            (Conn::Reconnecting, _) => ("reconnecting", "Reconnecting…"),
            (Conn::Offline, _) => ("offline", "Offline"),
        }
    };
    let title = move || {
        live.bus
            .with(|b| b.as_ref().and_then(|b| b.error.clone()))
            .unwrap_or_else(|| "Live updates from the controller's state changes".to_string())
    };
    view! {
        <span
            class=move || format!("live live-{}", state().0)
            role="status"
            aria-live="polite"
            title=title
            data-testid="live-indicator"
        >
            <span class="dot" aria-hidden="true"></span>
            {move || state().1}
        </span>
    }
}
