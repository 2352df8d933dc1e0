//! `/policies`: rulepacks and their revisions, and policy assignments.

use super::ui::{
    AssignmentRows, JsonField, LiveRegion, OutcomeSlot, PageHead, PostForm, RulepackFields, synced,
    when,
};
use crate::fns::{CreateAssignment, CreateRulepack, list_assignments, list_rulepacks};
use crate::live;
use crate::model::fleet::Rulepack;
use leptos::either::Either;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;

#[component]
pub fn PoliciesPage() -> impl IntoView {
    view! {
        <PageHead heading="Policies">
            <p class="muted small">"Rulepacks are versioned (" <code>"name@revision"</code> "); assignments decide which one each node runs. Precedence: node › label › tenant › org, newest first within a scope."</p>
        </PageHead>
        <section class="card" aria-labelledby="rulepacks-h">
            <h2 id="rulepacks-h">"Rulepacks"</h2>
            <LiveRegion id="rulepacks" follows="sync">
                <Rulepacks/>
            </LiveRegion>
        </section>
        <div class="grid2">
            <section class="card" aria-labelledby="revision-h">
                <h2 id="revision-h">"New rulepack revision"</h2>
                <RevisionForm/>
            </section>
            <section class="card" aria-labelledby="assign-h">
                <h2 id="assign-h">"Add an assignment"</h2>
                <AssignmentForm/>
            </section>
        </div>
        <section class="card" aria-labelledby="assignments-h">
            <h2 id="assignments-h">"Assignments"</h2>
            <LiveRegion id="assignments" follows="sync">
                <Assignments/>
            </LiveRegion>
            <OutcomeSlot testid="assignment-delete-result" id="assignment-delete-outcome"/>
        </section>
    }
}

/// The rulepacks, read again when the page re-syncs (after a form's action).
#[component]
fn Rulepacks() -> impl IntoView {
    synced(list_rulepacks, |list| view! { <RulepackTable list=list/> })
}

/// The assignments, read again when the page re-syncs.
#[component]
fn Assignments() -> impl IntoView {
    synced(
        list_assignments,
        |list| view! { <AssignmentRows list=list show_delete=true/> },
    )
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
fn RevisionForm() -> impl IntoView {
    view! {
        <PostForm action=CreateRulepack::PATH ok="Revision created. Same content as the latest revision keeps its number."
            class="stack" testid="policy-form">
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
            <JsonField id="rp-rules" name="rules" label="rules" text=RULES_EXAMPLE rows=10 testid="policy-rules"/>
            <div>
                <button type="submit" class="primary">"Create revision"</button>
            </div>
            <OutcomeSlot testid="policy-result"/>
        </PostForm>
    }
}

#[component]
fn AssignmentForm() -> impl IntoView {
    view! {
        <PostForm action=CreateAssignment::PATH ok="Assignment added." class="stack" testid="assignment-form">
            <div class="row">
                <div class="field">
                    <label for="as-kind">"Scope"</label>
                    <select id="as-kind" name="scope_kind">
                        {["org", "tenant", "label", "node"].map(|k| view! { <option value=k>{k}</option> }).collect_view()}
                    </select>
                </div>
                <div class="field">
                    <label for="as-value">"Scope value"</label>
                    <input id="as-value" name="scope_value" placeholder="tenant id, key=value or node id"
                        aria-describedby="as-value-hint"/>
                    <span id="as-value-hint" class="muted small">"empty for the whole org"</span>
                </div>
            </div>
            <RulepackFields prefix="as"/>
            <div>
                <button type="submit" class="primary">"Add assignment"</button>
            </div>
            <OutcomeSlot testid="assignment-result"/>
        </PostForm>
    }
}
