//! `/`: the dashboard. Fleet summary cards, the status distribution bar, the activity
//! charts (`?range=24h|7d|30d&tenant=…`) and the live activity feed.

use super::charts::{ChartFigure, LIVE_REFRESH_MS, live_refresh};
use super::ui::{ErrorBox, LiveRegion, PageHead, fetched, rel_time};
use crate::fns::{get_activity_charts, get_dashboard};
use crate::live::{self, Clock};
use crate::model::chart::{ChartSet, RANGES, range_or_default};
use crate::model::{Dashboard, LiveEvent, Status};
use leptos::either::Either;
use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;
use std::time::Duration;

#[component]
pub fn DashboardPage() -> impl IntoView {
    view! {
        <PageHead heading="Dashboard"/>
        <LiveRegion id="fleet-summary" follows="sync status">
            <FleetSummary/>
        </LiveRegion>
        <ActivityPanel/>
        <LiveFeed/>
    }
}

/// The fleet's counts, fetched again (debounced) after status changes and
/// whenever the stream re-syncs.
#[component]
fn FleetSummary() -> impl IntoView {
    let live = live::use_live();
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
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || data.get().map(|r| match r {
                Ok(d) => Either::Left(view! { <DashboardBody d=d/> }),
                Err(e) => Either::Right(view! { <ErrorBox err=e retry=Callback::new(move |_| refresh.update(|n| *n += 1))/> }),
            })}
        </Transition>
    }
}

/// Decisions, DIG files and enforcement events over the chosen range and tenant,
/// re-fetched (throttled) as live events arrive.
#[component]
fn ActivityPanel() -> impl IntoView {
    let query = use_query_map();
    // As asked (a bad one is refused, not swapped for another), and as shown.
    let asked = Memo::new(move |_| query.with(|q| q.get("range")).unwrap_or_default());
    let range = Memo::new(move |_| range_or_default(Some(asked.get().as_str())).to_owned());
    let tenant = Memo::new(move |_| query.with(|q| q.get("tenant")).unwrap_or_default());
    view! {
        <section class="card" aria-labelledby="activity-h" data-testid="activity">
            <h2 id="activity-h">"Activity"</h2>
            <Form method="GET" action="/" attr:class="filters" attr:aria-label="Chart range and tenant">
                <div class="field">
                    <label for="a-range">"Range"</label>
                    <select id="a-range" name="range" data-testid="activity-range">
                        {RANGES.map(|(r, label)| view! {
                            <option value=r selected=move || range.get() == r>{label}</option>
                        }).collect_view()}
                    </select>
                </div>
                <div class="field">
                    <label for="a-tenant">"Tenant"</label>
                    <input id="a-tenant" name="tenant" placeholder="all tenants" maxlength="63"
                        data-testid="activity-tenant" value=move || tenant.get() prop:value=move || tenant.get()/>
                </div>
                <div class="field actions">
                    <button type="submit" class="primary">"Show"</button>
                </div>
            </Form>
            <LiveRegion id="activity-charts" follows="sync status rollups" every_ms=LIVE_REFRESH_MS>
                <ActivityCharts range=asked.into() tenant=tenant.into()/>
            </LiveRegion>
        </section>
    }
}

/// The charts of `range` and `tenant` (as asked: the server refuses a bad
/// one), re-fetched (throttled) as live events arrive.
#[component]
fn ActivityCharts(range: Signal<String>, tenant: Signal<String>) -> impl IntoView {
    let refresh = live_refresh();
    let data = Resource::new(
        move || (range.get(), tenant.get(), refresh.get()),
        |(range, tenant, _)| get_activity_charts(range, tenant),
    );
    view! {
            {fetched(data, |a: ChartSet| view! {
                <p class="muted small" data-testid="activity-scope" data-range=a.range.clone()
                    data-tenant=a.tenant.clone().unwrap_or_default()>
                    {RANGES.iter().find(|(r, _)| *r == a.range).map(|(_, l)| format!("Last {l}")).unwrap_or_default()}
                    " · " {a.tenant.clone().map(|t| format!("tenant {t}")).unwrap_or_else(|| "all tenants".into())}
                </p>
                <div class="charts">
                    {a.charts.into_iter().map(|c| view! { <ChartFigure chart=c/> }).collect_view()}
                </div>
            })}
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

/// The state changes pushed since the page opened.
#[cfg_attr(feature = "islands", island(lazy))]
#[cfg_attr(not(feature = "islands"), component)]
fn LiveFeed() -> impl IntoView {
    crate::app::preload_island("live_feed");
    let live = live::use_live();
    let clock = live::use_clock();
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
