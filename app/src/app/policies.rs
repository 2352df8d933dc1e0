//! `/policies`: rulepacks and their revisions, and policy assignments.

use super::ui::{AssignmentRows, JsonArea, PageHead, RulepackFields, fetched, outcome, when};
use crate::fns::{
    CreateAssignment, CreateRulepack, DeleteAssignment, list_assignments, list_rulepacks,
};
use crate::live;
use crate::model::fleet::Rulepack;
use leptos::either::Either;
use leptos::prelude::*;

#[component]
pub fn PoliciesPage() -> impl IntoView {
    view! {
        <PageHead heading="Policies">
            <p class="muted small">"Rulepacks are versioned (" <code>"name@revision"</code> "); assignments decide which one each node runs. Precedence: node › label › tenant › org, newest first within a scope."</p>
        </PageHead>
        <PoliciesBody/>
    }
}

/// Rulepacks, assignments and their forms, read again after each change.
#[cfg_attr(feature = "islands", island(lazy))]
#[cfg_attr(not(feature = "islands"), component)]
fn PoliciesBody() -> impl IntoView {
    crate::app::preload_island("policies_body");
    let create = ServerAction::<CreateRulepack>::new();
    let assign = ServerAction::<CreateAssignment>::new();
    let delete = ServerAction::<DeleteAssignment>::new();
    let packs = Resource::new(move || create.version().get(), |_| list_rulepacks());
    let assignments = Resource::new(
        move || {
            (
                assign.version().get(),
                delete.version().get(),
                create.version().get(),
            )
        },
        |_| list_assignments(),
    );
    view! {
        <section class="card" aria-labelledby="rulepacks-h">
            <h2 id="rulepacks-h">"Rulepacks"</h2>
            {fetched(packs, |list| view! { <RulepackTable list=list/> })}
        </section>
        <div class="grid2">
            <section class="card" aria-labelledby="revision-h">
                <h2 id="revision-h">"New rulepack revision"</h2>
                <RevisionForm create=create/>
            </section>
            <section class="card" aria-labelledby="assign-h">
                <h2 id="assign-h">"Add an assignment"</h2>
                <AssignmentForm assign=assign/>
            </section>
        </div>
        <section class="card" aria-labelledby="assignments-h">
            <h2 id="assignments-h">"Assignments"</h2>
            {fetched(assignments, move |list| view! { <AssignmentRows list=list show_delete=true delete=delete/> })}
            {outcome(*delete, "assignment-delete-result", |_| "Assignment deleted.".to_string())}
        </section>
    }
}

#[component]
fn RulepackTable(list: Vec<Rulepack>) -> impl IntoView {
    let clock = live::use_clock();
    if list.is_empty() {
        return Either::Left(
            view! { <p class="muted" data-testid="rulepacks-empty">"No rulepacks yet: create the first revision below."</p> },
        );
    }
    Either::Right(view! {
        <div class="table-wrap">
            <table data-testid="rulepacks-table">
                <thead>
                    <tr>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Latest version"</th>
                        <th scope="col">"SHA-256"</th>
                        <th scope="col">"Frameworks"</th>
                        <th scope="col">"Created"</th>
                    </tr>
                </thead>
                <tbody>
                    {list.into_iter().map(|p| view! {
                        <tr data-rulepack=p.name.clone()>
                            <td>
                                <strong>{p.name.clone()}</strong>
                                {p.description.clone().filter(|d| !d.is_empty()).map(|d| view! { <div class="muted small">{d}</div> })}
                            </td>
                            <td class="mono" data-testid="rulepack-version">{p.version.clone()}</td>
                            <td class="mono small hash" title=p.sha256.clone()>{short_hash(&p.sha256)}</td>
                            <td class="labels">{p.frameworks.iter().map(|f| view! { <span class="chip">{f.clone()}</span> }).collect_view()}</td>
                            <td class="small">{when(clock, Some(p.created_at.clone()))}{p.created_by.clone().map(|b| view! { <span class="muted">" by " {b}</span> })}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    })
}

/// The first 12 hex digits of a hash (the whole one is the cell's title).
fn short_hash(h: &str) -> String {
    h.chars().take(12).collect()
}

const RULES_EXAMPLE: &str = "{\n  \"rules\": []\n}";

#[component]
fn RevisionForm(create: ServerAction<CreateRulepack>) -> impl IntoView {
    let rules = RwSignal::new(RULES_EXAMPLE.to_string());
    view! {
        <ActionForm action=create attr:class="stack" attr:data-testid="policy-form">
            <div class="row">
                <div class="field">
                    <label for="rp-name">"Name"</label>
                    <input id="rp-name" name="name" required maxlength="64" placeholder="baseline" pattern="[A-Za-z0-9._-]+" title="letters, digits, dot, dash, underscore"/>
                </div>
                <div class="field">
                    <label for="rp-frameworks">"Frameworks"</label>
                    <input id="rp-frameworks" name="frameworks" placeholder="soc2, iso27001" aria-describedby="rp-frameworks-hint"/>
                    <span id="rp-frameworks-hint" class="muted small">"comma separated"</span>
                </div>
            </div>
            <div class="field">
                <label for="rp-description">"Description"</label>
                <input id="rp-description" name="description" placeholder="optional"/>
            </div>
            <JsonArea id="rp-rules" name="rules" label="rules" text=rules rows=10 testid="policy-rules"/>
            <div>
                <button type="submit" class="primary" disabled=move || create.pending().get()>"Create revision"</button>
            </div>
            {outcome(*create, "policy-result", |r| format!("Created {} (sha256 {}). Same content as the latest revision keeps its number.", r.version, short_hash(&r.sha256)))}
        </ActionForm>
    }
}

#[component]
fn AssignmentForm(assign: ServerAction<CreateAssignment>) -> impl IntoView {
    let kind = RwSignal::new("org".to_string());
    let hint = move || match kind.get().as_str() {
        "tenant" => "tenant id",
        "label" => "key=value",
        "node" => "node id",
        _ => "not needed for the whole org",
    };
    view! {
        <ActionForm action=assign attr:class="stack" attr:data-testid="assignment-form">
            <div class="row">
                <div class="field">
                    <label for="as-kind">"Scope"</label>
                    <select id="as-kind" name="scope_kind" on:change=move |ev| kind.set(event_target_value(&ev))>
                        {["org", "tenant", "label", "node"].map(|k| view! { <option value=k>{k}</option> }).collect_view()}
                    </select>
                </div>
                <div class="field">
                    <label for="as-value">"Scope value"</label>
                    <input id="as-value" name="scope_value" placeholder=hint readonly=move || kind.with(|k| k == "org")/>
                </div>
            </div>
            <RulepackFields prefix="as"/>
            <div>
                <button type="submit" class="primary" disabled=move || assign.pending().get()>"Add assignment"</button>
            </div>
            {outcome(*assign, "assignment-result", |a| format!("Assigned {} to {} ({} node(s)).", a.rulepack, a.scope_text(), a.nodes))}
        </ActionForm>
    }
}
