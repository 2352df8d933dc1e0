//! `/nodes/:id`: one node's metadata, host facts, status history and a config snippet
//! to replicate it, its enforcement events timeline (`?range=24h|7d|30d`), above its
//! fleet-operation panels (`node_ops`).

use super::charts::{ChartFigure, RangeLinks, live_refresh};
use super::node_ops;
use super::ui::{self, CopyButton, ErrorBox, StatusBadge, fetched, rel_time};
use crate::fns::{get_node, get_node_events_chart};
use crate::live;
use crate::model::chart::range_or_default;
use crate::model::{NodeDetail, env_template, human_bytes, human_duration};
use leptos::either::Either;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn NodeDetailPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id").unwrap_or_default()));
    // The events timeline's range as asked (a bad one is refused, not swapped
    // for another).
    let range = Memo::new(move |_| query.with(|q| q.get("range")).unwrap_or_default());
    view! {
        <Title text=move || format!("{} · Ritma", id.get())/>
        <p class="crumbs"><a href="/nodes">"← Nodes"</a></p>
        {move || view! { <NodeView node_id=id.get() range=range.into()/> }}
    }
}

/// The node, its events timeline and its operations, read again when it
/// changes on the stream.
#[cfg_attr(feature = "islands", island(lazy))]
#[cfg_attr(not(feature = "islands"), component)]
fn NodeView(node_id: String, range: Signal<String>) -> impl IntoView {
    crate::app::preload_island("node_view");
    let live = live::use_live();
    let refresh = RwSignal::new(0u64);
    // A state change of this node re-fetches it (the timeline grows in place).
    Effect::new({
        let id = node_id.clone();
        move |prev: Option<(Option<i64>, Option<i64>)>| {
            let cur = live.changed_at(&id);
            if let Some(p) = prev
                && p != cur
            {
                refresh.update(|n| *n += 1);
            }
            cur
        }
    });
    let detail = Resource::new(
        {
            let id = node_id.clone();
            move || (id.clone(), live.sync.get(), refresh.get())
        },
        |(id, _, _)| get_node(id),
    );
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading node…"</p> }>
            {move || detail.get().map(|r| match r {
                Ok(d) => Either::Left(view! { <NodeDetailBody d=d/> }),
                Err(e) => Either::Right(view! { <ErrorBox err=e retry=Callback::new(move |_| refresh.update(|n| *n += 1))/> }),
            })}
        </Transition>
        <EventsTimeline id=node_id.clone() asked=range/>
        // Outside the transition: live re-fetches of the node keep forms and dry-run results.
        <node_ops::NodeOps id=node_id refresh=refresh/>
    }
}

/// The node's enforcement decisions by type over the chosen range.
#[component]
fn EventsTimeline(id: String, asked: Signal<String>) -> impl IntoView {
    // As shown.
    let range = Memo::new(move |_| range_or_default(Some(asked.get().as_str())).to_owned());
    let refresh = live_refresh();
    let path = format!("/nodes/{}", crate::model::url_encode(&id));
    let data = Resource::new(
        move || (id.clone(), asked.get(), refresh.get()),
        |(id, range, _)| get_node_events_chart(id, range),
    );
    view! {
        <section class="card" aria-labelledby="timeline-h" data-testid="events-timeline">
            <div class="section-head">
                <h2 id="timeline-h">"Events timeline"</h2>
                <RangeLinks current=range path=path/>
            </div>
            {fetched(data, |set| set.charts.into_iter().map(|c| view! { <ChartFigure chart=c/> }).collect_view())}
        </section>
    }
}

#[component]
fn NodeDetailBody(d: NodeDetail) -> impl IntoView {
    let live = live::use_live();
    let clock = live::use_clock();
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
                                        <strong data-testid="timeline-title">{h.title()}</strong>
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
