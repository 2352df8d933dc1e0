//! `/nodes`: the node inventory, with its filters, sortable columns and pages,
//! exports of the filtered list, and bulk actions on ticked rows or on all
//! matching nodes.

use super::bulk_panel::{BulkPanel, Ticked};
use super::ui::{self, ErrorBox, ExportLinks, PageHead, StatusBadge, rel_time};
use crate::fns::{list_nodes, list_tenants};
use crate::live;
use crate::model::{AppError, NodePage, NodeQuery, NodeRow, Status};
use leptos::either::{Either, EitherOf4};
use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;

fn query_from_map(map: &leptos_router::params::ParamsMap) -> NodeQuery {
    let mut q = NodeQuery::default();
    for key in NodeQuery::KEYS {
        q.set(key, map.get(key));
    }
    q
}

#[component]
pub fn NodesPage() -> impl IntoView {
    let query_map = use_query_map();
    let query = Memo::new(move |_| query_map.with(query_from_map));
    let tenants = Resource::new(|| (), |_| list_tenants());
    let export_query = Signal::derive(move || query.with(|q| q.to_query_string()));
    view! {
        <PageHead heading="Nodes">
            <ExportLinks kind="nodes" query=export_query/>
        </PageHead>
        <Filters query=query tenants=tenants/>
        <Inventory query=query.into()/>
    }
}

/// The matching nodes' page with their live status, and the bulk actions on
/// ticked rows or on every match: read again when the stream re-syncs.
#[cfg_attr(feature = "islands", island(lazy))]
#[cfg_attr(not(feature = "islands"), component)]
fn Inventory(query: Signal<NodeQuery>) -> impl IntoView {
    crate::app::preload_island("inventory");
    let live = live::use_live();
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
    let ticked = RwSignal::new(std::collections::BTreeSet::<String>::new());
    provide_context(Ticked(ticked));
    view! {
        <Transition fallback=|| ()>
            {move || page.get().and_then(|r| r.ok()).map(|p| view! {
                <p class="muted" data-testid="total">{format!("{} total", p.total_text())}</p>
            })}
        </Transition>
        <BulkPanel query=query/>
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
    let page_ids: Vec<String> = page.items.iter().map(|n| n.id.clone()).collect();
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
                        <th scope="col" class="tick"><TickPage ids=page_ids/></th>
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

/// Ticks or unticks every row of the page.
#[component]
fn TickPage(ids: Vec<String>) -> impl IntoView {
    let Ticked(ticked) = expect_context::<Ticked>();
    let all = {
        let ids = ids.clone();
        move || ticked.with(|t| !ids.is_empty() && ids.iter().all(|i| t.contains(i)))
    };
    view! {
        <input type="checkbox" aria-label="Select every node of this page" data-testid="tick-page"
            prop:checked=all.clone()
            on:change=move |_| {
                let on = !all();
                ticked.update(|t| {
                    for id in &ids {
                        if on { t.insert(id.clone()); } else { t.remove(id); }
                    }
                });
            }/>
    }
}

#[component]
fn NodeRowView(n: NodeRow, fetched: i64) -> impl IntoView {
    let live = live::use_live();
    let Ticked(ticked) = expect_context::<Ticked>();
    let clock = live::use_clock();
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
            <td class="tick">
                <input type="checkbox" aria-label=format!("Select {id}") data-testid="tick-node"
                    prop:checked={
                        let id = id.clone();
                        move || ticked.with(|t| t.contains(&id))
                    }
                    on:change={
                        let id = id.clone();
                        move |ev| {
                            let on = event_target_checked(&ev);
                            ticked.update(|t| {
                                if on { t.insert(id.clone()); } else { t.remove(&id); }
                            });
                        }
                    }/>
            </td>
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
            <td class="num" data-testid="node-connectors">{n.connector_count}</td>
            <td class="labels">{labels}</td>
        </tr>
    }
}
