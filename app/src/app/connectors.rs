//! `/connectors`: every node's connectors and their last dry run, filtered by kind and
//! outcome in the URL.

use super::ui::{LiveRegion, PageHead, StatusBadge, fetched, last_outcome, when};
use crate::fns::list_connectors;
use crate::live;
use crate::model::fleet::{CONNECTOR_KINDS, Connector, OUTCOMES};
use leptos::either::Either;
use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;

#[component]
pub fn ConnectorsPage() -> impl IntoView {
    let query = use_query_map();
    let filter = move |k: &'static str| query.with(|q| q.get(k)).filter(|v| !v.is_empty());
    view! {
        <PageHead heading="Connectors">
            <p class="muted small">"Checks each node runs against its host, storage and cloud accounts. Add or dry-run a connector on its node's page."</p>
        </PageHead>
        <Form method="GET" action="/connectors" attr:class="filters card" attr:role="search" attr:aria-label="Filter connectors">
            <FilterSelect id="cf-kind" name="kind" label="Kind" options=&CONNECTOR_KINDS current=Signal::derive(move || filter("kind"))/>
            <FilterSelect id="cf-outcome" name="outcome" label="Last outcome" options=&OUTCOMES current=Signal::derive(move || filter("outcome"))/>
            <div class="field actions">
                <button type="submit" class="primary">"Apply"</button>
                <a href="/connectors" class="button">"Reset"</a>
            </div>
        </Form>
        <LiveRegion id="connectors" follows="sync">
            <ConnectorList kind=Signal::derive(move || filter("kind")) outcome=Signal::derive(move || filter("outcome"))/>
        </LiveRegion>
    }
}

/// The filtered list, read again whenever the live stream re-syncs.
#[component]
fn ConnectorList(kind: Signal<Option<String>>, outcome: Signal<Option<String>>) -> impl IntoView {
    let live = live::use_live();
    let list = Resource::new(
        move || (kind.get(), outcome.get(), live.sync.get()),
        |(kind, outcome, _)| list_connectors(kind, outcome),
    );
    fetched(list, |items| view! { <ConnectorTable items=items/> })
}

/// A `<select>` of a GET filter form ("Any" plus `options`).
#[component]
pub fn FilterSelect(
    id: &'static str,
    name: &'static str,
    label: &'static str,
    options: &'static [&'static str],
    current: Signal<Option<String>>,
) -> impl IntoView {
    view! {
        <div class="field">
            <label for=id>{label}</label>
            <select id=id name=name>
                <option value="" selected=move || current.with(Option::is_none)>"Any"</option>
                {options.iter().map(|o| view! {
                    <option value=*o selected=move || current.with(|c| c.as_deref() == Some(*o))>{*o}</option>
                }).collect_view()}
            </select>
        </div>
    }
}

#[component]
fn ConnectorTable(items: Vec<Connector>) -> impl IntoView {
    let clock = live::use_clock();
    if items.is_empty() {
        return Either::Left(
            view! { <div class="card empty" data-testid="connectors-empty"><p>"No connectors match."</p></div> },
        );
    }
    Either::Right(view! {
        <div class="table-wrap card flush">
            <table data-testid="connectors-table">
                <caption class="sr-only">"Connectors of all nodes"</caption>
                <thead>
                    <tr>
                        <th scope="col">"Node"</th>
                        <th scope="col">"Connector"</th>
                        <th scope="col">"Kind"</th>
                        <th scope="col">"Last outcome"</th>
                        <th scope="col">"Last run"</th>
                    </tr>
                </thead>
                <tbody>
                    {items.into_iter().map(|c| {
                        let run = c.last_run.clone();
                        view! {
                            <tr data-node-id=c.node_id.clone() data-connector-id=c.id.clone()>
                                <td>
                                    <a class="node-link" href=format!("/nodes/{}", c.node_id)>{c.node_id.clone()}</a>
                                    {c.node_hostname.clone().filter(|h| !h.is_empty()).map(|h| view! { <div class="muted small">"host " {h}</div> })}
                                    {c.node_status.map(|s| view! { <div><StatusBadge status=s/></div> })}
                                </td>
                                <td class="mono">{c.id.clone()}</td>
                                <td>{c.kind.clone()}</td>
                                <td data-testid="connector-outcome">{last_outcome(run.as_ref())}</td>
                                <td>{when(clock, run.map(|r| r.finished_at))}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    })
}
