//! The console's pages and components (rendered on the server, hydrated in the browser).

use crate::fns::{
    CreateToken, RevokeToken, get_audit, get_config_template, get_dashboard, get_node, get_session,
    list_nodes, list_tenants, list_tokens, login_options,
};
use crate::live::{self, Clock, Conn, Live};
use crate::model::{
    AppError, AuditEntry, AuditPage as AuditList, AuditQuery, CreatedToken, Dashboard, LiveEvent,
    NodeDetail, NodePage, NodeQuery, NodeRow, SessionInfo, Status, TokenInfo, env_template,
    human_bytes, human_duration, relative,
};
use leptos::either::{Either, EitherOf3, EitherOf4};
use leptos::prelude::*;
use leptos_meta::{MetaTags, Title, provide_meta_context};
use leptos_router::components::{A, Form, Outlet, ParentRoute, Route, Router, Routes};
use leptos_router::hooks::{use_params_map, use_query_map};
use leptos_router::path;
use std::time::Duration;

mod alert_channels;
mod alert_rules;
mod alerts;
mod connectors;
mod keys;
mod node_ops;
mod policies;
mod silences;
mod ui;
mod usage;

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
                {hydrate.then(|| view! { <HydrationScripts options=options.clone()/> })}
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Only the hydrated client runs effects: a marker tests can wait for.
    Effect::new(move |_| live::mark_body("data-hydrated", "true"));
    view! {
        <Router>
            <Routes fallback=|| view! { <NotFound/> }>
                <Route path=path!("/login") view=LoginPage/>
                <ParentRoute path=path!("") view=Shell>
                    <Route path=path!("/") view=DashboardPage/>
                    <Route path=path!("/nodes") view=NodesPage/>
                    <Route path=path!("/nodes/:id") view=NodeDetailPage/>
                    <Route path=path!("/enroll") view=EnrollPage/>
                    <Route path=path!("/audit") view=AuditPage/>
                    <Route path=path!("/policies") view=policies::PoliciesPage/>
                    <Route path=path!("/connectors") view=connectors::ConnectorsPage/>
                    <Route path=path!("/keys") view=keys::KeysPage/>
                    <Route path=path!("/usage") view=usage::UsagePage/>
                    <Route path=path!("/alerts") view=alerts::AlertsPage/>
                    <Route path=path!("/alerts/rules") view=alert_rules::RulesPage/>
                    <Route path=path!("/alerts/channels") view=alert_channels::ChannelsPage/>
                    <Route path=path!("/alerts/silences") view=silences::SilencesPage/>
                </ParentRoute>
            </Routes>
        </Router>
    }
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

// ---------------------------------------------------------------- sign-in

#[component]
fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let options = Resource::new(|| (), |_| login_options());
    let error = move || {
        query.with(|q| q.get("error")).map(|e| match e.as_str() {
            "invalid" => "The controller rejected this token.",
            "unavailable" => {
                "The controller API cannot be reached right now; try again in a moment."
            }
            "missing" => "Enter a token.",
            "no-org" => {
                "Your account gives access to no organisation yet; ask an org admin for a role."
            }
            "origin" => "The sign-in request came from another site and was refused.",
            "sso-state" => "The sign-in expired or was started in another browser; start again.",
            "sso-denied" => "The identity provider did not sign you in.",
            "sso-failed" | "sso-unavailable" => {
                "Single sign-on failed at the identity provider; try again in a moment."
            }
            "sso-rejected" => "The controller did not accept the identity provider's token.",
            "sso-off" => "Single sign-on is not configured on this console.",
            "token-login-off" => "Admin-token sign-in is turned off on this console.",
            _ => "Sign-in failed.",
        })
    };
    let next = move || {
        query
            .with(|q| q.get("next"))
            .filter(|n| n.starts_with('/') && !n.starts_with("//"))
            .unwrap_or_else(|| "/".to_string())
    };
    let sso_href = move || format!("/auth/oidc?next={}", crate::model::url_encode(&next()));
    view! {
        <Title text="Sign in · Ritma"/>
        <main class="center" id="main">
            <div class="card narrow login">
                <h1>"Ritma Node Console"</h1>
                {move || error().map(|e| view! { <p class="error" role="alert">{e}</p> })}
                <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || options.get().map(|o| {
                        let o = o.unwrap_or(crate::model::SignInOptions { sso: false, token_login: true });
                        view! {
                            {o.sso.then(|| view! {
                                <a class="button primary block" href=sso_href data-testid="sso">"Sign in with single sign-on"</a>
                            })}
                            {(o.sso && o.token_login).then(|| view! { <p class="muted small divider">"or, break-glass:"</p> })}
                            {o.token_login.then(|| view! {
                                <form class="stack" method="post" action="/auth/login">
                                    <p class="muted">
                                        "Sign in with an admin token of the controller. For a dev stack, "
                                        <code>"ritma up"</code> " prints it and writes it to "
                                        <code>".ritma/dev/stack.json"</code> "."
                                    </p>
                                    <label for="token">"Admin token"</label>
                                    <input
                                        id="token"
                                        name="token"
                                        type="password"
                                        autocomplete="current-password"
                                        required
                                        autofocus=!o.sso
                                    />
                                    <input type="hidden" name="next" value=next/>
                                    <button type="submit" class=if o.sso { "" } else { "primary" }>"Sign in"</button>
                                </form>
                            })}
                        }
                    })}
                </Suspense>
            </div>
        </main>
    }
}

// ---------------------------------------------------------------- layout

#[component]
fn Shell() -> impl IntoView {
    let live = Live::new();
    let clock = Clock(RwSignal::new(None));
    provide_context(live);
    provide_context(clock);
    Effect::new(move |_| live::start(live, clock));
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

#[component]
fn LiveIndicator() -> impl IntoView {
    let live = expect_context::<Live>();
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

// ---------------------------------------------------------------- shared bits

#[component]
fn StatusBadge(#[prop(into)] status: Signal<Status>) -> impl IntoView {
    view! {
        <span class=move || format!("badge status-{}", status.get().as_str())>
            <span class="dot" aria-hidden="true"></span>
            {move || status.get().label()}
        </span>
    }
}

#[component]
fn ErrorBox(err: AppError, #[prop(optional)] retry: Option<Callback<()>>) -> impl IntoView {
    let (title, hint) = match &err {
        AppError::Unauthorized => (
            "Signed out",
            "Your session has ended or the token was revoked.",
        ),
        AppError::Unavailable(_) => (
            "Controller unreachable",
            "The console cannot reach the controller API. This page re-syncs when the connection is back.",
        ),
        AppError::NodeUnreachable(_) => (
            "Node did not answer",
            "The controller asked the node, which did not reply in time (HTTP 504). It may be offline or busy; try again.",
        ),
        AppError::Forbidden(_) => ("No permission", "Your token may not see this."),
        AppError::NotFound(_) => ("Not found", ""),
        AppError::BadRequest(_) => ("Invalid request", ""),
        AppError::Internal(_) => ("Error", ""),
    };
    let unauthorized = matches!(err, AppError::Unauthorized);
    view! {
        <div class="card error-box" role="alert" data-testid="error">
            <h2>{title}</h2>
            <p>{err.to_string()}</p>
            {(!hint.is_empty()).then(|| view! { <p class="muted">{hint}</p> })}
            {unauthorized.then(|| view! { <p><a href="/login" rel="external" class="button primary">"Sign in"</a></p> })}
            {retry.map(|cb| view! { <button type="button" on:click=move |_| cb.run(())>"Retry"</button> })}
        </div>
    }
}

#[component]
fn CopyButton(
    #[prop(into)] text: Signal<String>,
    #[prop(optional, into)] label: Option<String>,
) -> impl IntoView {
    let copied = RwSignal::new(false);
    let label = label.unwrap_or_else(|| "Copy".to_string());
    view! {
        <button
            type="button"
            class="small copy"
            on:click=move |_| {
                if live::copy_text(&text.get_untracked()) {
                    copied.set(true);
                    set_timeout(move || copied.set(false), Duration::from_secs(2));
                }
            }
        >
            {move || if copied.get() { "Copied".to_string() } else { label.clone() }}
        </button>
    }
}

fn rel_time(clock: Clock, fallback_ms: i64, then_ms: i64) -> String {
    relative(clock.now_or(fallback_ms), then_ms)
}

// ---------------------------------------------------------------- dashboard

#[component]
fn DashboardPage() -> impl IntoView {
    let live = expect_context::<Live>();
    // Counts re-fetch after status changes (debounced), and whenever the stream re-syncs.
    let refresh = RwSignal::new(0u64);
    let pending = StoredValue::new(false);
    Effect::new(move |prev: Option<u64>| {
        let t = live.tick.get();
        if prev.is_some() && !pending.get_value() {
            pending.set_value(true);
            set_timeout(
                move || {
                    pending.set_value(false);
                    refresh.update(|n| *n += 1);
                },
                Duration::from_millis(250),
            );
        }
        t
    });
    let data = Resource::new(
        move || (live.sync.get(), refresh.get()),
        |_| get_dashboard(),
    );
    view! {
        <Title text="Dashboard · Ritma"/>
        <div class="page-head">
            <h1>"Dashboard"</h1>
        </div>
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || data.get().map(|r| match r {
                Ok(d) => Either::Left(view! { <DashboardBody d=d/> }),
                Err(e) => Either::Right(view! { <ErrorBox err=e retry=Callback::new(move |_| refresh.update(|n| *n += 1))/> }),
            })}
        </Transition>
        <LiveFeed/>
    }
}

#[component]
fn DashboardBody(d: Dashboard) -> impl IntoView {
    if d.total == 0 {
        return Either::Left(view! {
            <div class="card empty" data-testid="empty">
                <h2>"No nodes enrolled yet"</h2>
                <p>"Create an enrollment token and start " <code>"ritma-node"</code> " on a machine; it appears here within seconds."</p>
                <p><a class="button primary" href="/enroll">"Enroll a node"</a></p>
            </div>
        });
    }
    let active = d.count(Status::Online) + d.count(Status::Degraded);
    let card = |label: &'static str,
                value: i64,
                sub: String,
                href: &'static str,
                class: &'static str,
                testid: &'static str| {
        view! {
            <a class=format!("card stat {class}") href=href data-testid=testid>
                <span class="stat-label">{label}</span>
                <span class="stat-value">{value}</span>
                <span class="stat-sub">{sub}</span>
            </a>
        }
    };
    let offline = d.count(Status::Offline);
    Either::Right(view! {
        <section class="cards" aria-label="Fleet summary">
            {card("Active nodes", active, format!("of {} enrolled", d.total), "/nodes?status=online", "ok", "card-active")}
            {card("Offline", offline, "no heartbeat".to_string(), "/nodes?status=offline", if offline > 0 { "bad" } else { "" }, "card-offline")}
            {card("Stale", d.count(Status::Stale), "heartbeat late".to_string(), "/nodes?status=stale", if d.count(Status::Stale) > 0 { "warn" } else { "" }, "card-stale")}
            {card("Degraded", d.count(Status::Degraded), "reporting problems".to_string(), "/nodes?status=degraded", if d.count(Status::Degraded) > 0 { "warn" } else { "" }, "card-degraded")}
            {card("Unseen", d.count(Status::Unseen), "enrolled, never heard".to_string(), "/nodes?status=unseen", "", "card-unseen")}
            {card("Policy drift", d.drifted, "applied ≠ assigned".to_string(), "/nodes?drifted=true", if d.drifted > 0 { "warn" } else { "" }, "card-drifted")}
            {card("Key warnings", d.key_warnings, "revoked, compromised or expired key".to_string(), "/nodes?key_warning=true", if d.key_warnings > 0 { "bad" } else { "" }, "card-key-warnings")}
        </section>
        <section class="card">
            <h2>"Status distribution"</h2>
            <StatusBar d=d/>
        </section>
    })
}

/// A stacked bar of status counts, as inline SVG (no scripts, no network).
#[component]
fn StatusBar(d: Dashboard) -> impl IntoView {
    // integer per-mille widths: no float formatting code in the WASM bundle
    let total = d.counts.iter().map(|(_, n)| *n).sum::<i64>().max(1);
    let mut x = 0i64;
    let segments = d
        .counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| {
            let w = (*n * 1000 / total).max(4);
            let seg = view! {
                <rect x=x.to_string() y="0" width=w.to_string() height="28" class=format!("fill-{}", s.as_str())>
                    <title>{format!("{}: {n}", s.label())}</title>
                </rect>
            };
            x += w;
            seg
        })
        .collect_view();
    let legend = d
        .counts
        .iter()
        .map(|(s, n)| {
            view! {
                <li>
                    <a href=format!("/nodes?status={}", s.as_str())>
                        <span class=format!("swatch fill-{}", s.as_str()) aria-hidden="true"></span>
                        {s.label()} " " <strong>{*n}</strong>
                    </a>
                </li>
            }
        })
        .collect_view();
    view! {
        <svg class="bar" viewBox="0 0 1000 28" preserveAspectRatio="none" role="img" aria-label="Nodes by status">
            {segments}
        </svg>
        <ul class="legend">{legend}</ul>
    }
}

#[component]
fn LiveFeed() -> impl IntoView {
    let live = expect_context::<Live>();
    let clock = expect_context::<Clock>();
    view! {
        <section class="card">
            <h2>"Live activity"</h2>
            {move || {
                let feed = live.feed.get();
                if feed.is_empty() {
                    view! { <p class="muted">"State changes appear here as they happen."</p> }.into_any()
                } else {
                    view! {
                        <ul class="feed">
                            {feed.into_iter().map(|e| view! { <FeedItem e=e clock=clock/> }).collect_view()}
                        </ul>
                    }
                    .into_any()
                }
            }}
        </section>
    }
}

#[component]
fn FeedItem(e: LiveEvent, clock: Clock) -> impl IntoView {
    let at = e.at.ms;
    let what = match (e.kind.as_str(), e.from, e.to) {
        ("status", Some(from), Some(to)) => format!("{} → {}", from.label(), to.label()),
        ("enrolled", _, _) => "enrolled".to_string(),
        ("policy_applied", _, _) => {
            format!("policy applied: {}", e.applied.as_deref().unwrap_or("none"))
        }
        ("policy_drift", _, _) if e.drifted == Some(true) => "policy drifted".to_string(),
        ("policy_drift", _, _) => "policy back in sync".to_string(),
        ("policy_rejected", _, _) => "policy refused by the node".to_string(),
        ("key_warning", _, _) => match &e.key_status {
            Some(k) => format!("signing key {k}"),
            None => "key warning cleared".to_string(),
        },
        (k, _, _) => k.to_string(),
    };
    let to_class = match (e.to, e.kind.as_str()) {
        (Some(s), _) => s.as_str(),
        (None, "policy_drift") if e.drifted == Some(true) => "degraded",
        (None, "key_warning") if e.key_status.is_some() => "offline",
        (None, "policy_rejected") => "offline",
        _ => "unknown",
    };
    view! {
        <li>
            <span class=format!("badge status-{to_class}")><span class="dot" aria-hidden="true"></span>{what}</span>
            " "
            <a href=format!("/nodes/{}", e.node_id)>{e.hostname.clone().unwrap_or_else(|| e.node_id.clone())}</a>
            <span class="muted">" · " {e.tenant_id.clone()} " · " {e.reason.clone().unwrap_or_default()}</span>
            <time class="muted right" title=e.at.text.clone()>{move || rel_time(clock, at, at)}</time>
        </li>
    }
}

// ---------------------------------------------------------------- inventory

fn query_from_map(map: &leptos_router::params::ParamsMap) -> NodeQuery {
    let mut q = NodeQuery::default();
    for key in NodeQuery::KEYS {
        q.set(key, map.get(key));
    }
    q
}

#[component]
fn NodesPage() -> impl IntoView {
    let live = expect_context::<Live>();
    let query_map = use_query_map();
    let query = Memo::new(move |_| query_map.with(query_from_map));
    let retry = RwSignal::new(0u64);
    let page = Resource::new(
        move || (query.get(), live.sync.get(), retry.get()),
        |(q, _, _)| {
            list_nodes(
                q.tenant,
                q.status,
                q.label,
                q.version,
                q.q,
                q.drifted,
                q.key_warning,
                q.sort,
                q.order,
                q.cursor,
            )
        },
    );
    let tenants = Resource::new(|| (), |_| list_tenants());
    view! {
        <Title text="Nodes · Ritma"/>
        <div class="page-head">
            <h1>"Nodes"</h1>
            <Transition fallback=|| ()>
                {move || page.get().and_then(|r| r.ok()).map(|p| view! {
                    <span class="muted" data-testid="total">{format!("{} total", p.total_text())}</span>
                })}
            </Transition>
        </div>
        <Filters query=query tenants=tenants/>
        <Transition fallback=|| view! { <p class="muted">"Loading nodes…"</p> }>
            {move || page.get().map(|r| match r {
                Ok(p) => Either::Left(view! { <NodeTable page=p query=query.get_untracked()/> }),
                Err(e) => Either::Right(view! { <ErrorBox err=e retry=Callback::new(move |_| retry.update(|n| *n += 1))/> }),
            })}
        </Transition>
    }
}

#[component]
fn Filters(
    query: Memo<NodeQuery>,
    tenants: Resource<Result<Vec<String>, AppError>>,
) -> impl IntoView {
    let val =
        move |k: &'static str| move || query.with(|q| q.get(k).unwrap_or_default().to_string());
    view! {
        <Form method="GET" action="/nodes" attr:class="filters card" attr:role="search" attr:aria-label="Filter nodes">
            <div class="field grow">
                <label for="f-q">"Search"</label>
                <input id="f-q" name="q" type="search" placeholder="Name, ID or label" value=val("q")/>
            </div>
            <div class="field">
                <label for="f-tenant">"Tenant"</label>
                <input id="f-tenant" name="tenant" list="tenant-list" placeholder="All" value=val("tenant")/>
                <Suspense fallback=|| ()>
                    <datalist id="tenant-list">
                        {move || tenants.get().and_then(|r| r.ok()).map(|ts| ts.into_iter().map(|t| view! { <option value=t></option> }).collect_view())}
                    </datalist>
                </Suspense>
            </div>
            <div class="field">
                <label for="f-status">"Status"</label>
                <select id="f-status" name="status">
                    <option value="" selected=move || query.with(|q| q.get("status").is_none())>"Any"</option>
                    {Status::ALL.into_iter().map(|s| view! {
                        <option value=s.as_str() selected=move || query.with(|q| q.get("status") == Some(s.as_str()))>{s.label()}</option>
                    }).collect_view()}
                </select>
            </div>
            <div class="field">
                <label for="f-label">"Label"</label>
                <input id="f-label" name="label" placeholder="key=value" value=val("label")/>
            </div>
            <div class="field">
                <label for="f-version">"Agent version"</label>
                <input id="f-version" name="version" placeholder="e.g. 0.1.0" value=val("version")/>
            </div>
            <fieldset class="field flags">
                <legend class="sr-only">"Only nodes with"</legend>
                <label class="check">
                    <input type="checkbox" name="drifted" value="true" data-testid="filter-drifted" checked=move || query.with(|q| q.get("drifted").is_some())/>
                    "Policy drift"
                </label>
                <label class="check">
                    <input type="checkbox" name="key_warning" value="true" data-testid="filter-key-warning" checked=move || query.with(|q| q.get("key_warning").is_some())/>
                    "Key warning"
                </label>
            </fieldset>
            // keep the sort when filtering
            {move || query.with(|q| q.get("sort").map(|s| view! { <input type="hidden" name="sort" value=s.to_string()/> }))}
            {move || query.with(|q| q.get("order").map(|s| view! { <input type="hidden" name="order" value=s.to_string()/> }))}
            <div class="field actions">
                <button type="submit" class="primary">"Apply"</button>
                <a href="/nodes" class="button">"Reset"</a>
            </div>
        </Form>
    }
}

/// A column header that sorts by `key` (toggling the order when already sorted by it).
fn sort_header(query: &NodeQuery, key: &'static str, label: &'static str) -> impl IntoView + use<> {
    let current = query.get("sort").unwrap_or("name");
    let order = query.get("order").unwrap_or("asc");
    let active = current == key;
    let next_order = if active && order == "asc" {
        "desc"
    } else {
        "asc"
    };
    let mut q = query.clone();
    q.set("sort", Some(key.to_string()));
    q.set("order", Some(next_order.to_string()));
    q.set("cursor", None);
    let aria = if active {
        if order == "asc" {
            "ascending"
        } else {
            "descending"
        }
    } else {
        "none"
    };
    let arrow = if active {
        if order == "asc" { " ▲" } else { " ▼" }
    } else {
        ""
    };
    view! {
        <th scope="col" aria-sort=aria>
            <a href=format!("/nodes{}", q.to_query_string())>{label}{arrow}</a>
        </th>
    }
}

#[component]
fn NodeTable(page: NodePage, query: NodeQuery) -> impl IntoView {
    if page.items.is_empty() {
        return if query.is_filtered() {
            EitherOf4::A(view! {
                <div class="card empty" data-testid="empty">
                    <h2>"No nodes match these filters"</h2>
                    <p><a href="/nodes">"Clear the filters"</a></p>
                </div>
            })
        } else if query.get("cursor").is_some() {
            EitherOf4::B(view! {
                <div class="card empty" data-testid="empty">
                    <h2>"No more nodes"</h2>
                    <p><a href="/nodes">"Back to the first page"</a></p>
                </div>
            })
        } else {
            EitherOf4::C(view! {
                <div class="card empty" data-testid="empty">
                    <h2>"No nodes enrolled yet"</h2>
                    <p>"Nodes appear here as soon as they enroll."</p>
                    <p><a class="button primary" href="/enroll">"Enroll a node"</a></p>
                </div>
            })
        };
    }
    let fetched = page.fetched_ms;
    let shown = page.items.len();
    let total = page.total_text();
    let next = page.next_cursor.clone().map(|c| {
        let mut q = query.clone();
        q.set("cursor", Some(c));
        format!("/nodes{}", q.to_query_string())
    });
    let first = query.get("cursor").map(|_| {
        let mut q = query.clone();
        q.set("cursor", None);
        format!("/nodes{}", q.to_query_string())
    });
    EitherOf4::D(view! {
        <div class="table-wrap card flush">
            <table class="nodes" data-testid="nodes-table">
                <caption class="sr-only">"Nodes of this organisation"</caption>
                <thead>
                    <tr>
                        {sort_header(&query, "name", "Node")}
                        <th scope="col">"Tenant"</th>
                        {sort_header(&query, "status", "Status")}
                        <th scope="col">"Agent"</th>
                        {sort_header(&query, "last_seen", "Last heartbeat")}
                        <th scope="col">"Policy"</th>
                        <th scope="col" class="num">"Connectors"</th>
                        <th scope="col">"Labels"</th>
                    </tr>
                </thead>
                <tbody>
                    {page.items.into_iter().map(|n| view! { <NodeRowView n=n fetched=fetched/> }).collect_view()}
                </tbody>
            </table>
        </div>
        <nav class="pager" aria-label="Pages">
            <span class="muted">{format!("Showing {shown} of {total}")}</span>
            {first.map(|href| view! { <a class="button" href=href>"← First page"</a> })}
            {next.map(|href| view! { <a class="button" href=href rel="next" data-testid="next-page">"Next page →"</a> })}
        </nav>
    })
}

#[component]
fn NodeRowView(n: NodeRow, fetched: i64) -> impl IntoView {
    let live = expect_context::<Live>();
    let clock = expect_context::<Clock>();
    let id = n.id.clone();
    let (base, base_at) = (n.status, n.status_changed.ms);
    let status = Signal::derive({
        let id = id.clone();
        move || live.status_for(&id, base, base_at)
    });
    let last_seen = n.last_seen.clone();
    let facts = ui::NodeFactsView::new(live, &n);
    let labels = n
        .labels
        .iter()
        .map(|(k, v)| view! { <span class="chip">{format!("{k}={v}")}</span> })
        .collect_view();
    view! {
        <tr
            data-node-id=id.clone()
            data-status=move || status.get().as_str()
            class=move || format!("status-{}", status.get().as_str())
        >
            <td>
                <a class="node-link" href=format!("/nodes/{id}")>{id.clone()}</a>
                {(!n.hostname.is_empty()).then(|| view! { <div class="muted small">"host " {n.hostname.clone()}</div> })}
            </td>
            <td>{n.tenant_id.clone()}</td>
            <td><StatusBadge status=status/> <ui::KeyWarningBadge facts=facts/></td>
            <td class="mono">{n.agent_version.clone().unwrap_or_else(|| "—".into())}</td>
            <td>
                {match last_seen {
                    Some(t) => {
                        let ms = t.ms;
                        view! { <time title=t.text.clone()>{move || rel_time(clock, fetched, ms)}</time> }.into_any()
                    }
                    None => view! { <span class="muted">"never"</span> }.into_any(),
                }}
            </td>
            <td class="policy-cell"><ui::PolicyCell facts=facts/></td>
            <td class="num">{n.connector_count}</td>
            <td class="labels">{labels}</td>
        </tr>
    }
}

// ---------------------------------------------------------------- node detail

#[component]
fn NodeDetailPage() -> impl IntoView {
    let live = expect_context::<Live>();
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id").unwrap_or_default()));
    let refresh = RwSignal::new(0u64);
    // A state change of this node re-fetches it (the timeline grows in place).
    Effect::new(move |prev: Option<(Option<i64>, Option<i64>)>| {
        let cur = live.changed_at(&id.get());
        if let Some(p) = prev
            && p != cur
        {
            refresh.update(|n| *n += 1);
        }
        cur
    });
    let detail = Resource::new(
        move || (id.get(), live.sync.get(), refresh.get()),
        |(id, _, _)| get_node(id),
    );
    view! {
        <Title text="Node · Ritma"/>
        <p class="crumbs"><a href="/nodes">"← Nodes"</a></p>
        <Transition fallback=|| view! { <p class="muted">"Loading node…"</p> }>
            {move || detail.get().map(|r| match r {
                Ok(d) => Either::Left(view! { <NodeDetailBody d=d/> }),
                Err(e) => Either::Right(view! { <ErrorBox err=e retry=Callback::new(move |_| refresh.update(|n| *n += 1))/> }),
            })}
        </Transition>
        // Outside the transition: live re-fetches of the node keep forms and dry-run results.
        {move || view! { <node_ops::NodeOps id=id.get() refresh=refresh/> }}
    }
}

#[component]
fn NodeDetailBody(d: NodeDetail) -> impl IntoView {
    let live = expect_context::<Live>();
    let clock = expect_context::<Clock>();
    let n = d.node.clone();
    let (base, base_at) = (n.status, n.status_changed.ms);
    let status = Signal::derive({
        let id = n.id.clone();
        move || live.status_for(&id, base, base_at)
    });
    let fetched = d.fetched_ms;
    let name = n.id.clone();
    let snippet = env_template(
        &d.controller_url,
        &d.org_id,
        &n.tenant_id,
        "<enrollment token>",
        "/var/lib/ritma-node",
    );
    let labels_q = n
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let enroll_href = format!(
        "/enroll?tenant={}&labels={}",
        crate::model::url_encode(&n.tenant_id),
        crate::model::url_encode(&labels_q)
    );
    let dt = |label: &'static str, value: String| view! { <dt>{label}</dt><dd>{value}</dd> };
    let last_seen = n.last_seen.clone();
    let host = d.host.clone();
    let history = d.history.clone();
    let snippet_sig = Signal::derive({
        let s = snippet.clone();
        move || s.clone()
    });
    let facts = ui::NodeFactsView::new(live, &n);
    view! {
        <Title text=format!("{name} · Ritma")/>
        <div class="page-head">
            <h1 data-testid="node-name">{name.clone()}</h1>
            <span data-testid="node-status" data-status=move || status.get().as_str()><StatusBadge status=status/></span>
        </div>
        <ui::KeyWarningBanner facts=facts key_id=d.key_id.clone()/>
        <div class="grid2">
            <section class="card">
                <h2>"Metadata"</h2>
                <dl class="kv">
                    {dt("Node ID", n.id.clone())}
                    {dt("Hostname", if n.hostname.is_empty() { "—".to_string() } else { n.hostname.clone() })}
                    {dt("Organisation", d.org_id.clone())}
                    {dt("Tenant", n.tenant_id.clone())}
                    {dt("Agent version", n.agent_version.clone().unwrap_or_else(|| "—".into()))}
                    <dt>"Policy"</dt>
                    <dd><ui::PolicyCell facts=facts/></dd>
                    {dt("Key ID", d.key_id.clone().unwrap_or_else(|| "—".into()))}
                    {dt("Heartbeat interval", format!("{} s", d.interval_secs))}
                    <dt>"Last heartbeat"</dt>
                    <dd>
                        {match last_seen {
                            Some(t) => {
                                let ms = t.ms;
                                let text = t.text.clone();
                                view! { <time title=text.clone()>{move || rel_time(clock, fetched, ms)}</time> <span class="muted">" (" {text} ")"</span> }.into_any()
                            }
                            None => view! { <span class="muted">"never"</span> }.into_any(),
                        }}
                    </dd>
                    {dt("Status since", n.status_changed.text.clone())}
                    {dt("Enrolled", d.enrolled.text.clone())}
                    {dt("Connectors", n.connector_count.to_string())}
                    {d.spool.as_ref().map(|s| dt("Disk spool", format!("{} queued, {} dropped", s.depth, s.dropped)))}
                    <dt>"Labels"</dt>
                    <dd class="labels">
                        {if n.labels.is_empty() {
                            view! { <span class="muted">"none"</span> }.into_any()
                        } else {
                            n.labels.iter().map(|(k, v)| view! { <span class="chip">{format!("{k}={v}")}</span> }).collect_view().into_any()
                        }}
                    </dd>
                </dl>
            </section>
            <section class="card">
                <h2>"Host"</h2>
                {match host {
                    Some(h) => {
                        let opt = |v: Option<String>| v.unwrap_or_else(|| "—".into());
                        Either::Left(view! {
                            <dl class="kv" data-testid="host-facts">
                                {dt("Hostname", opt(h.hostname.clone()))}
                                {dt("OS", opt(h.os.clone()))}
                                {dt("Kernel", opt(h.kernel.clone()))}
                                {dt("Architecture", opt(h.arch.clone()))}
                                {dt("CPUs", opt(h.cpus.map(|c| c.to_string())))}
                                {dt("Memory", opt(h.memory_bytes.map(human_bytes)))}
                                {dt("Uptime", opt(h.uptime_secs.map(human_duration)))}
                            </dl>
                        })
                    }
                    None => Either::Right(view! { <p class="muted">"The node has not reported host facts yet."</p> }),
                }}
            </section>
        </div>
        <section class="card">
            <h2>"Status history"</h2>
            {if history.is_empty() {
                Either::Left(view! { <p class="muted">"No status changes recorded yet."</p> })
            } else {
                Either::Right(view! {
                    <ol class="timeline" data-testid="timeline">
                        {history.into_iter().map(|h| {
                            let ms = h.at.ms;
                            view! {
                                <li class=format!("status-{}", h.to.as_str())>
                                    <span class="dot" aria-hidden="true"></span>
                                    <div>
                                        <strong>{h.from.label()} " → " {h.to.label()}</strong>
                                        {(!h.reason.is_empty()).then(|| view! { <span class="muted">" · " {h.reason.clone()}</span> })}
                                        <div class="muted small"><time title=h.at.text.clone()>{h.at.text.clone()}</time> " · " {move || rel_time(clock, fetched, ms)}</div>
                                    </div>
                                </li>
                            }
                        }).collect_view()}
                    </ol>
                })
            }}
        </section>
        <section class="card">
            <div class="section-head">
                <h2>"Replicate this node"</h2>
                <CopyButton text=snippet_sig/>
            </div>
            <p class="muted">"Environment for " <code>"ritma-node"</code> " on another machine of the same tenant. Replace the token placeholder with a fresh enrollment token."</p>
            <pre class="snippet" data-testid="config-snippet">{snippet}</pre>
            <p><a class="button" href=enroll_href>"Create a token for tenant " {n.tenant_id.clone()}</a></p>
        </section>
    }
}

// ---------------------------------------------------------------- enrollment wizard

#[component]
fn EnrollPage() -> impl IntoView {
    let query = use_query_map();
    let create = ServerAction::<CreateToken>::new();
    let revoke = ServerAction::<RevokeToken>::new();
    let tenants = Resource::new(|| (), |_| list_tenants());
    let tokens = Resource::new(
        move || (create.version().get(), revoke.version().get()),
        |_| list_tokens(),
    );
    let initial_tenant = query
        .with_untracked(|q| q.get("tenant"))
        .unwrap_or_default();
    let initial_labels = query
        .with_untracked(|q| q.get("labels"))
        .map(|l| l.replace(',', "\n"))
        .unwrap_or_default();
    let result = create.value();
    view! {
        <Title text="Enroll a node · Ritma"/>
        <div class="page-head"><h1>"Enroll a node"</h1></div>
        <div class="grid2">
            <section class="card">
                <h2>"1. Create an enrollment token"</h2>
                <ActionForm action=create attr:class="stack" attr:data-testid="enroll-form">
                    <div class="field">
                        <label for="e-tenant">"Tenant"</label>
                        <input id="e-tenant" name="tenant" list="e-tenant-list" required value=initial_tenant placeholder="tenant id"/>
                        <Suspense fallback=|| ()>
                            <datalist id="e-tenant-list">
                                {move || tenants.get().and_then(|r| r.ok()).map(|ts| ts.into_iter().map(|t| view! { <option value=t></option> }).collect_view())}
                            </datalist>
                        </Suspense>
                    </div>
                    <div class="row">
                        <div class="field">
                            <label for="e-ttl">"Valid for"</label>
                            <select id="e-ttl" name="ttl_secs">
                                <option value="900">"15 minutes"</option>
                                <option value="3600" selected>"1 hour"</option>
                                <option value="86400">"24 hours"</option>
                                <option value="604800">"7 days"</option>
                            </select>
                        </div>
                        <div class="field">
                            <label for="e-uses">"Uses"</label>
                            <input id="e-uses" name="max_uses" type="number" min="1" max="10000" value="1" required/>
                        </div>
                    </div>
                    <div class="field">
                        <label for="e-labels">"Labels for enrolled nodes"</label>
                        <textarea id="e-labels" name="labels" rows="3" placeholder="env=prod\nrole=web">{initial_labels}</textarea>
                    </div>
                    <button type="submit" class="primary" disabled=move || create.pending().get()>
                        {move || if create.pending().get() { "Creating…" } else { "Create token" }}
                    </button>
                </ActionForm>
            </section>
            <section class="card" aria-live="polite">
                <h2>"2. Install and start the node"</h2>
                {move || match result.get() {
                    None => EitherOf3::A(view! { <p class="muted">"Create a token first; the install command appears here. The token secret is shown only once."</p> }),
                    Some(Err(e)) => EitherOf3::B(view! { <ErrorBox err=e/> }),
                    Some(Ok(t)) => EitherOf3::C(view! { <TokenCreated t=t/> }),
                }}
            </section>
        </div>
        <section class="card">
            <h2>"Enrollment tokens"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || tokens.get().map(|r| match r {
                    Ok(list) => Either::Left(view! { <TokenList list=list revoke=revoke/> }),
                    Err(e) => Either::Right(view! { <ErrorBox err=e/> }),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn TokenCreated(t: CreatedToken) -> impl IntoView {
    let cmd = t.install_command();
    let env = env_template(
        &t.controller_url,
        &t.org_id,
        &t.info.tenant_id,
        &t.secret,
        "/var/lib/ritma-node",
    );
    view! {
        <div class="created" data-testid="token-created">
            <p class="notice">"Copy the token now: it is shown only once and cannot be retrieved later."</p>
            <CopyBlock title="Token" text=t.secret.clone() class="secret" testid="token-secret"/>
            <p class="muted small">
                {format!(
                    "Tenant {} · valid until {} · {} use(s)",
                    t.info.tenant_id, t.info.expires.text, t.info.max_uses
                )}
            </p>
            <CopyBlock title="Install command" text=cmd testid="install-command"/>
            <CopyBlock title="Or as an environment file" text=env testid="env-file"/>
            <ConfigTemplateView tenant=t.info.tenant_id.clone() secret=t.secret.clone()/>
        </div>
    }
}

/// A titled `<pre>` with a copy button.
#[component]
fn CopyBlock(
    title: &'static str,
    text: String,
    #[prop(optional)] class: &'static str,
    testid: &'static str,
) -> impl IntoView {
    let copy = text.clone();
    view! {
        <div class="section-head">
            <h3>{title}</h3>
            <CopyButton text=Signal::derive(move || copy.clone()) label=format!("Copy {}", title.to_lowercase())/>
        </div>
        <pre class=format!("snippet {class}") data-testid=testid tabindex="0">{text}</pre>
    }
}

/// The controller's node configuration for the tenant (env file, systemd unit, install
/// command), with the new token filled in.
#[component]
fn ConfigTemplateView(tenant: String, secret: String) -> impl IntoView {
    let template = Resource::new(move || tenant.clone(), get_config_template);
    view! {
        <section class="template" aria-labelledby="template-h" data-testid="config-template">
            <h3 id="template-h">"Node configuration"</h3>
            {ui::fetched(template, move |c| {
                let c = c.with_token(&secret);
                view! {
                    <CopyBlock title="Environment file" text=c.env_file testid="config-template-env"/>
                    <CopyBlock title="systemd unit" text=c.systemd_unit testid="config-template-systemd"/>
                    <CopyBlock title="Install" text=c.install_command testid="config-template-install"/>
                }
            })}
        </section>
    }
}

#[component]
fn TokenList(list: Vec<TokenInfo>, revoke: ServerAction<RevokeToken>) -> impl IntoView {
    let clock = expect_context::<Clock>();
    if list.is_empty() {
        return Either::Left(view! { <p class="muted">"No enrollment tokens."</p> });
    }
    Either::Right(view! {
        <div class="table-wrap">
            <table class="tokens" data-testid="tokens-table">
                <thead>
                    <tr>
                        <th scope="col">"ID"</th>
                        <th scope="col">"Tenant"</th>
                        <th scope="col">"Uses"</th>
                        <th scope="col">"Expires"</th>
                        <th scope="col">"Created"</th>
                        <th scope="col">"Labels"</th>
                        <th scope="col"><span class="sr-only">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {list.into_iter().map(|t| {
                        let created = t.created.ms;
                        let expires_ms = t.expires.ms;
                        let expires_text = t.expires.text.clone();
                        let token_id = t.id.clone();
                        let expired = move || clock.now_or(created) > expires_ms;
                        view! {
                            <tr data-token-id=t.id.clone()>
                                <td class="mono small">{t.id.clone()}</td>
                                <td>{t.tenant_id.clone()}</td>
                                <td>{format!("{} / {}", t.uses, t.max_uses)}</td>
                                <td title=t.expires.text.clone()>
                                    {move || if expired() { view! { <span class="badge status-offline">"expired"</span> }.into_any() } else { view! { <span>{expires_text.clone()}</span> }.into_any() }}
                                </td>
                                <td>{move || rel_time(clock, created, created)}</td>
                                <td class="labels">{t.labels.iter().map(|(k, v)| view! { <span class="chip">{format!("{k}={v}")}</span> }).collect_view()}</td>
                                <td>
                                    <ActionForm action=revoke attr:class="inline">
                                        <input type="hidden" name="id" value=token_id.clone()/>
                                        <button type="submit" class="small danger">"Revoke"</button>
                                    </ActionForm>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    })
}

// ---------------------------------------------------------------- audit trail

fn audit_query_from_map(map: &leptos_router::params::ParamsMap) -> AuditQuery {
    let text = |k: &str| map.get(k).filter(|v| !v.trim().is_empty());
    AuditQuery {
        actor: text("actor"),
        action: text("action"),
        target: text("target"),
        before: map.get("before").and_then(|b| b.parse().ok()),
    }
}

#[component]
fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let current = Memo::new(move |_| query.with(audit_query_from_map));
    let page = Resource::new(move || current.get(), get_audit);
    let value = move |k: &'static str| move || query.with(|q| q.get(k)).unwrap_or_default();
    view! {
        <Title text="Audit · Ritma"/>
        <div class="page-head">
            <h1>"Audit trail"</h1>
            <p class="muted small">
                "Every change, hash-chained: each entry carries the hash of the one before. "
                <code>"ritma audit verify"</code>" detects an edited or deleted entry."
            </p>
        </div>
        <Form method="GET" action="/audit" attr:class="filters card" attr:data-testid="audit-filters">
            <div class="field">
                <label for="a-actor">"Actor"</label>
                <input id="a-actor" name="actor" value=value("actor") placeholder="subject or operator"/>
            </div>
            <div class="field">
                <label for="a-action">"Action"</label>
                <input id="a-action" name="action" value=value("action") placeholder="token.create" list="a-actions"/>
                <datalist id="a-actions">
                    {["enrollment_token.create", "enrollment_token.revoke", "node.enroll", "node.decommission", "node.rekey", "role.grant", "role.revoke", "integrator.create", "integrator.revoke", "org.create"]
                        .map(|a| view! { <option value=a></option> })
                        .collect_view()}
                </datalist>
            </div>
            <div class="field">
                <label for="a-target">"Target starts with"</label>
                <input id="a-target" name="target" value=value("target") placeholder="node id, token:…"/>
            </div>
            <button type="submit" class="primary">"Filter"</button>
            <a href="/audit" class="button">"Clear"</a>
        </Form>
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || page.get().map(|r| match r {
                Ok(p) => Either::Left(view! { <AuditTable page=p query=current.get_untracked()/> }),
                Err(e) => Either::Right(view! { <ErrorBox err=e/> }),
            })}
        </Transition>
    }
}

#[component]
fn AuditTable(page: AuditList, query: AuditQuery) -> impl IntoView {
    if page.entries.is_empty() {
        return Either::Left(
            view! { <p class="muted card" data-testid="audit-empty">"No audit entries match."</p> },
        );
    }
    let older = page.older.map(|id| {
        AuditQuery {
            before: Some(id),
            ..query.clone()
        }
        .href()
    });
    let newest = query.before.is_some().then(|| {
        AuditQuery {
            before: None,
            ..query.clone()
        }
        .href()
    });
    Either::Right(view! {
        <div class="table-wrap card">
            <table class="audit" data-testid="audit-table">
                <thead>
                    <tr>
                        <th scope="col">"When"</th>
                        <th scope="col">"Actor"</th>
                        <th scope="col">"Action"</th>
                        <th scope="col">"Target"</th>
                        <th scope="col">"From"</th>
                        <th scope="col">"Change"</th>
                    </tr>
                </thead>
                <tbody>
                    {page.entries.into_iter().map(|e| view! { <AuditRow e=e/> }).collect_view()}
                </tbody>
            </table>
        </div>
        <nav class="pager" aria-label="Audit pages">
            {newest.map(|h| view! { <a href=h>"← Newest"</a> })}
            {older.map(|h| view! { <a href=h data-testid="audit-older">"Older →"</a> })}
        </nav>
    })
}

#[component]
fn AuditRow(e: AuditEntry) -> impl IntoView {
    let change = (e.before.is_some() || e.after.is_some()).then(|| {
        view! {
            <details>
                <summary>"before / after"</summary>
                <div class="grid2">
                    <pre class="snippet small">{e.before.clone().unwrap_or_else(|| "—".into())}</pre>
                    <pre class="snippet small">{e.after.clone().unwrap_or_else(|| "—".into())}</pre>
                </div>
            </details>
        }
    });
    let actor_href = AuditQuery {
        actor: Some(e.actor.clone()),
        ..AuditQuery::default()
    }
    .href();
    let action_href = AuditQuery {
        action: Some(e.action.clone()),
        ..AuditQuery::default()
    }
    .href();
    view! {
        <tr data-audit-id=e.id.to_string() title=format!("entry {} · hash {}", e.id, e.hash)>
            <td class="small nowrap">{e.at.text.clone()}</td>
            <td><a href=actor_href>{e.actor.clone()}</a></td>
            <td><a href=action_href><code>{e.action.clone()}</code></a></td>
            <td class="mono small">{e.target.clone()}</td>
            <td class="small muted">{e.source.clone().unwrap_or_default()}</td>
            <td>{change}</td>
        </tr>
    }
}
