//! `/alerts/silences`: maintenance windows. Active and recently ended silences, a form
//! for a new one (matchers, duration, comment) and "end now".

use super::ui::{AlertsNav, LiveRegion, OutcomeSlot, PageHead, PostForm, synced, when};
use crate::fns::{CreateSilence, EndSilence, get_silences};
use crate::live;
use crate::model::alerts::{ALERT_EVENTS, Silence};
use leptos::either::Either;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;

#[component]
pub fn SilencesPage() -> impl IntoView {
    view! {
        <PageHead heading="Silences">
            <p class="muted small">"A silence holds back the notifications of the alerts it matches until it ends; alerts still open and show as silenced. Matchers left empty match everything."</p>
        </PageHead>
        <AlertsNav/>
        <section class="card" aria-labelledby="silences-h">
            <h2 id="silences-h">"Active and recent"</h2>
            <LiveRegion id="silences" follows="sync">
                <SilenceList/>
            </LiveRegion>
            <OutcomeSlot testid="silence-end-result" id="silence-end-outcome"/>
        </section>
        <section class="card" aria-labelledby="new-silence-h">
            <h2 id="new-silence-h">"New maintenance window"</h2>
            <SilenceForm/>
        </section>
    }
}

/// The silences, read again when the page re-syncs (after either form's action).
#[component]
fn SilenceList() -> impl IntoView {
    synced(get_silences, |items| view! { <SilenceTable items=items/> })
}

#[component]
fn SilenceTable(items: Vec<Silence>) -> impl IntoView {
    let clock = live::use_clock();
    if items.is_empty() {
        return Either::Left(
            view! { <p class="muted" data-testid="silences-empty">"No silences in the last 7 days."</p> },
        );
    }
    Either::Right(view! {
        <div class="table-wrap">
            <table data-testid="silences-table">
                <thead>
                    <tr>
                        <th scope="col">"State"</th>
                        <th scope="col">"Matches"</th>
                        <th scope="col">"Comment"</th>
                        <th scope="col">"From"</th>
                        <th scope="col">"Until"</th>
                        <th scope="col">"By"</th>
                        <th scope="col"><span class="sr-only">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {items.into_iter().map(|s| {
                        let state = if s.active { "active" } else { "ended" };
                        let aria = format!("End silence {}", s.comment);
                        let end_id = s.id.clone();
                        let action = s.active.then(|| view! {
                            <PostForm action=EndSilence::PATH ok="Silence ended." class="inline" outcome="silence-end-outcome">
                                <input type="hidden" name="id" value=end_id/>
                                <button type="submit" class="small danger" aria-label=aria data-testid="silence-end">"End now"</button>
                            </PostForm>
                        });
                        view! {
                            <tr data-silence-id=s.id.clone() data-state=state>
                                <td><span class=format!("badge tone-{}", if s.active { "warn" } else { "idle" })>{state}</span></td>
                                <td class="small" data-testid="silence-matchers">{s.matchers()}</td>
                                <td data-testid="silence-comment">{s.comment.clone()}</td>
                                <td>{when(clock, Some(s.starts_at.clone()))}</td>
                                <td title=s.ends_at.text.clone()>{s.ends_at.text.clone()}</td>
                                <td class="small">{s.created_by.clone()}</td>
                                <td>{action}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    })
}

#[component]
fn SilenceForm() -> impl IntoView {
    view! {
        <PostForm action=CreateSilence::PATH ok="Silence added." class="stack" testid="silence-form">
            <input type="hidden" name="rule_id" value=""/>
            <div class="row">
                <div class="field">
                    <label for="s-event">"Event"</label>
                    <select id="s-event" name="event">
                        <option value="">"Any"</option>
                        {ALERT_EVENTS.iter().map(|e| view! { <option value=*e>{e.replace('_', " ")}</option> }).collect_view()}
                    </select>
                </div>
                <div class="field">
                    <label for="s-tenant">"Tenant"</label>
                    <input id="s-tenant" name="tenant" maxlength="64"/>
                </div>
            </div>
            <div class="row">
                <div class="field">
                    <label for="s-node">"Node"</label>
                    <input id="s-node" name="node" maxlength="128"/>
                </div>
                <div class="field">
                    <label for="s-labels">"Labels (key=value, comma separated)"</label>
                    <input id="s-labels" name="labels" placeholder="env=prod"/>
                </div>
            </div>
            <div class="row">
                <div class="field">
                    <label for="s-duration">"Duration"</label>
                    <input id="s-duration" name="duration" required placeholder="2h, 30m, 1d" value="2h"/>
                </div>
                <div class="field">
                    <label for="s-comment">"Comment"</label>
                    <input id="s-comment" name="comment" required maxlength="512" placeholder="e.g. kernel upgrade of the web fleet"/>
                </div>
            </div>
            <div>
                <button type="submit" class="primary" data-testid="silence-create">"Add silence"</button>
            </div>
            <OutcomeSlot testid="silence-create-result"/>
        </PostForm>
    }
}
