//! `/audit`: the hash-chained audit trail, filtered by actor, action and target, in
//! pages.

use super::ui::{ErrorBox, ExportLinks, PageHead};
use crate::fns::get_audit;
use crate::model::{AuditEntry, AuditPage as AuditList, AuditQuery};
use leptos::either::Either;
use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;

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
pub fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let current = Memo::new(move |_| query.with(audit_query_from_map));
    let page = Resource::new(move || current.get(), get_audit);
    let value = move |k: &'static str| move || query.with(|q| q.get(k)).unwrap_or_default();
    view! {
        <PageHead heading="Audit trail" title="Audit">
            <p class="muted small">
                "Every change, hash-chained: each entry carries the hash of the one before. "
                <code>"ritma audit verify"</code>" detects an edited or deleted entry."
            </p>
            <ExportLinks kind="audit" query=Signal::derive(move || {
                let href = AuditQuery { before: None, ..current.get() }.href();
                href.trim_start_matches("/audit").to_string()
            })/>
        </PageHead>
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
