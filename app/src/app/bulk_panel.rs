//! The inventory's bulk action panel: act on the ticked rows or on every
//! node matching the list's filter. A preview (count and a sample) comes
//! first; the job then runs on the controller and its progress arrives live
//! (event `job` on `/live`), re-read only when the stream re-syncs.

use super::ui::ErrorBox;
use crate::fns::{PreviewBulkJob, StartBulkJob, get_bulk_job};
use crate::live;
use crate::model::NodeQuery;
use crate::model::bulk::{ACTIONS, BulkPreview, LiveJob};
use leptos::either::Either;
use leptos::prelude::*;
use std::collections::BTreeSet;

/// The rows ticked in the inventory (node ids), shared by its rows.
#[derive(Clone, Copy)]
pub struct Ticked(pub RwSignal<BTreeSet<String>>);

/// The form's fields: scope, ids, filter, action, labels, keys, rulepack,
/// revision, mode.
type Fields = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

/// The list's filter (not its sort or page) as JSON, for a filter selection.
fn filter_json(q: &NodeQuery) -> String {
    let map: std::collections::BTreeMap<&str, &str> = NodeQuery::KEYS
        .iter()
        .filter(|k| !["sort", "order", "cursor"].contains(k))
        .filter_map(|k| q.get(k).map(|v| (*k, v)))
        .collect();
    serde_json::to_string(&map).unwrap_or_default()
}

#[component]
pub fn BulkPanel(query: Signal<NodeQuery>) -> impl IntoView {
    let live = live::use_live();
    let Ticked(ticked) = expect_context::<Ticked>();
    let preview = ServerAction::<PreviewBulkJob>::new();
    let start = ServerAction::<StartBulkJob>::new();
    let scope = RwSignal::new("selected".to_string());
    let action = RwSignal::new("add_labels".to_string());
    let labels = RwSignal::new(String::new());
    let keys = RwSignal::new(String::new());
    let rulepack = RwSignal::new(String::new());
    let revision = RwSignal::new(String::new());
    let mode = RwSignal::new("observe".to_string());
    let job_id = RwSignal::new(None::<String>);

    // Anything changed after the preview: preview again before running.
    let form = move || -> Fields {
        (
            scope.get(),
            ticked.with(|t| t.iter().cloned().collect::<Vec<_>>().join(",")),
            filter_json(&query.get()),
            action.get(),
            labels.get(),
            keys.get(),
            rulepack.get(),
            revision.get(),
            mode.get(),
        )
    };
    // The fields a preview was asked for, and those of the last good one.
    let asked = RwSignal::new(None::<Fields>);
    let previewed = RwSignal::new(None::<Fields>);
    Effect::new(move |_| {
        if let Some(Ok(_)) = preview.value().get() {
            previewed.set(asked.get_untracked());
        }
    });
    let current = Memo::new(move |_| form());
    let ready = move || {
        preview.value().with(|v| matches!(v, Some(Ok(_))))
            && previewed.get().as_ref() == Some(&current.get())
    };
    Effect::new(move |_| {
        if let Some(Ok(job)) = start.value().get() {
            job_id.set(Some(job.job_id.clone()));
            live.apply_job(job);
        }
    });
    // The stream re-synced (opened again): the job's counts are read anew.
    let reread = Resource::new(
        move || (job_id.get(), live.sync.get()),
        |(id, _)| async move {
            match id {
                Some(id) => get_bulk_job(id).await.ok(),
                None => None,
            }
        },
    );
    Effect::new(move |_| {
        if let Some(Some(job)) = reread.get() {
            live.apply_job(job);
        }
    });

    let run_preview = move |_| {
        let fields = current.get_untracked();
        asked.set(Some(fields.clone()));
        let (scope, ids, filter, action, labels, keys, rulepack, revision, mode) = fields;
        preview.dispatch(PreviewBulkJob {
            scope,
            ids,
            filter,
            action,
            labels,
            keys,
            rulepack,
            revision,
            mode,
        });
    };
    let run_job = move |_| {
        let key = preview
            .value()
            .with(|v| {
                v.as_ref()
                    .and_then(|r| r.as_ref().ok())
                    .map(|p| p.idempotency_key.clone())
            })
            .unwrap_or_default();
        let (scope, ids, filter, action, labels, keys, rulepack, revision, mode) =
            current.get_untracked();
        start.dispatch(StartBulkJob {
            scope,
            ids,
            filter,
            action,
            labels,
            keys,
            rulepack,
            revision,
            mode,
            idempotency_key: key,
        });
    };
    let field = move |a: &'static str| move || action.get() == a;
    view! {
        <section class="card bulk" aria-labelledby="bulk-h" data-testid="bulk-panel">
            <h2 id="bulk-h">"Bulk action"</h2>
            <div class="row">
                <fieldset class="field">
                    <legend>"Nodes"</legend>
                    <label class="check">
                        <input type="radio" name="bulk-scope" value="selected" data-testid="bulk-scope-selected"
                            prop:checked=move || scope.get() == "selected"
                            on:change=move |_| scope.set("selected".into())/>
                        {move || format!("Selected ({})", ticked.with(|t| t.len()))}
                    </label>
                    <label class="check">
                        <input type="radio" name="bulk-scope" value="filter" data-testid="bulk-scope-filter"
                            prop:checked=move || scope.get() == "filter"
                            on:change=move |_| scope.set("filter".into())/>
                        "All matching this filter"
                    </label>
                </fieldset>
                <div class="field">
                    <label for="bulk-action">"Action"</label>
                    <select id="bulk-action" data-testid="bulk-action"
                        on:change=move |ev| action.set(event_target_value(&ev))>
                        {ACTIONS.into_iter().map(|(v, label)| view! {
                            <option value=v selected=move || action.get() == v>{label}</option>
                        }).collect_view()}
                    </select>
                </div>
                <Show when=field("add_labels")>
                    <div class="field grow">
                        <label for="bulk-labels">"Labels"</label>
                        <input id="bulk-labels" data-testid="bulk-labels" placeholder="key=value, key=value" bind:value=labels/>
                    </div>
                </Show>
                <Show when=field("remove_labels")>
                    <div class="field grow">
                        <label for="bulk-keys">"Label keys"</label>
                        <input id="bulk-keys" data-testid="bulk-keys" placeholder="key, key" bind:value=keys/>
                    </div>
                </Show>
                <Show when=field("assign_rulepack")>
                    <div class="field">
                        <label for="bulk-rulepack">"Rulepack"</label>
                        <input id="bulk-rulepack" data-testid="bulk-rulepack" placeholder="baseline" bind:value=rulepack/>
                    </div>
                    <div class="field">
                        <label for="bulk-revision">"Revision (empty: latest)"</label>
                        <input id="bulk-revision" type="number" min="1" bind:value=revision/>
                    </div>
                    <div class="field">
                        <label for="bulk-mode">"Mode"</label>
                        <select id="bulk-mode" on:change=move |ev| mode.set(event_target_value(&ev))>
                            <option value="observe" selected>"observe"</option>
                            <option value="enforce">"enforce"</option>
                        </select>
                    </div>
                </Show>
                <div class="field actions">
                    <button type="button" data-testid="bulk-preview" on:click=run_preview
                        disabled=move || preview.pending().get()>"Preview"</button>
                    <button type="button" class="primary" data-testid="bulk-run" on:click=run_job
                        disabled=move || !ready() || start.pending().get()>"Run"</button>
                </div>
            </div>
            <div aria-live="polite">
                {move || preview.value().get().map(|r| match r {
                    Ok(p) => Either::Left(view! { <PreviewView p=p/> }),
                    Err(e) => Either::Right(view! { <ErrorBox err=e/> }),
                })}
                {move || start.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorBox err=e/> })}
                {move || job_id.get().and_then(|id| live.jobs.with(|m| m.get(&id).cloned())).map(|j| view! { <Progress job=j/> })}
            </div>
        </section>
    }
}

#[component]
fn PreviewView(p: BulkPreview) -> impl IntoView {
    let more = p.count - p.sample.len() as i64;
    view! {
        <div class="bulk-preview" data-testid="bulk-preview-result" data-count=p.count>
            <p>
                <strong>{format!("{} node{}", p.count, if p.count == 1 { "" } else { "s" })}</strong>
                " will be acted on."
                {(p.unknown_ids > 0).then(|| format!(" {} id(s) are not nodes of this organisation and will be skipped.", p.unknown_ids))}
            </p>
            <ul class="sample">
                {p.sample.into_iter().map(|n| view! {
                    <li><span class="mono">{n.id}</span>" "<span class="muted small">{n.hostname}" · "{n.tenant_id}" · "{n.status}</span></li>
                }).collect_view()}
                {(more > 0).then(|| view! { <li class="muted">{format!("… and {more} more")}</li> })}
            </ul>
        </div>
    }
}

#[component]
fn Progress(job: LiveJob) -> impl IntoView {
    let percent = job.percent();
    view! {
        <div class="bulk-progress" data-testid="bulk-progress" data-state=job.state.clone()
            data-succeeded=job.succeeded data-total=job.total>
            <progress max="100" value=percent aria-label="Job progress"></progress>
            <span>
                {format!(
                    "{}: {} of {} · {} succeeded · {} failed · {} skipped",
                    job.state, job.handled(), job.total, job.succeeded, job.failed, job.skipped
                )}
            </span>
        </div>
    }
}
