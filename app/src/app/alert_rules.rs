//! `/alerts/rules`: alert rules of the org, a form to add one, and deletion.

use super::ui::{AlertsNav, LiveRegion, OutcomeSlot, PageHead, PostForm, fetched, synced, when};
use crate::fns::{CreateRule, DeleteRule, get_rules};
use crate::live;
use crate::model::alerts::{ALERT_EVENTS, Channel, Rule, RulesView, short_duration};
use leptos::either::Either;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;

#[component]
pub fn RulesPage() -> impl IntoView {
    view! {
        <PageHead heading="Alert rules">
            <p class="muted small">"A rule watches one event for the org's nodes (optionally one tenant and matching labels), fires after its condition held for the `for` duration, repeats while it fires, and notifies its channels when it fires and resolves."</p>
        </PageHead>
        <AlertsNav/>
        <section class="card" aria-labelledby="rules-h">
            <h2 id="rules-h">"Rules"</h2>
            <LiveRegion id="rules" follows="sync">
                <RuleList/>
            </LiveRegion>
            <OutcomeSlot testid="rule-delete-result" id="rule-delete-outcome"/>
        </section>
        <section class="card" aria-labelledby="new-rule-h">
            <h2 id="new-rule-h">"New rule"</h2>
            <NewRule/>
        </section>
    }
}

/// The rules, read again when the page re-syncs (after a form's action).
#[component]
fn RuleList() -> impl IntoView {
    synced(get_rules, |v| view! { <RulesList v=v/> })
}

/// The form with the org's channels to choose from, read once: a refused rule
/// keeps what was typed.
#[component]
fn NewRule() -> impl IntoView {
    let choices = Resource::new(|| (), |_| get_rules());
    fetched(choices, |v| view! { <RuleForm channels=v.channels/> })
}

#[component]
fn RulesList(v: RulesView) -> impl IntoView {
    let names: Vec<(String, String)> = v
        .channels
        .iter()
        .map(|c| (c.id.clone(), c.name.clone()))
        .collect();
    view! { <RuleTable items=v.rules channels=names/> }
}

#[component]
fn RuleTable(items: Vec<Rule>, channels: Vec<(String, String)>) -> impl IntoView {
    let clock = live::use_clock();
    if items.is_empty() {
        return Either::Left(
            view! { <p class="muted" data-testid="rules-empty">"No rules yet: add the first below."</p> },
        );
    }
    let name_of = move |id: &str| {
        channels
            .iter()
            .find(|(cid, _)| cid == id)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| id.to_string())
    };
    Either::Right(view! {
        <div class="table-wrap">
            <table data-testid="rules-table">
                <thead>
                    <tr>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Event"</th>
                        <th scope="col">"Scope"</th>
                        <th scope="col">"For"</th>
                        <th scope="col">"Repeat"</th>
                        <th scope="col">"Channels"</th>
                        <th scope="col">"Created"</th>
                        <th scope="col"><span class="sr-only">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {items.into_iter().map(|r| {
                        let scope = r.tenant_id.clone().map(|t| format!("tenant {t}")).unwrap_or_else(|| "every tenant".into());
                        let repeat = if r.repeat_secs == 0 { "never".to_string() } else { short_duration(r.repeat_secs) };
                        let chans = r.channels.iter().map(|c| view! { <span class="chip">{name_of(c)}</span> }).collect_view();
                        let aria = format!("Delete rule {}", r.name);
                        let delete_id = r.id.clone();
                        view! {
                            <tr data-rule-id=r.id.clone() data-rule-name=r.name.clone()>
                                <td>{r.name.clone()}</td>
                                <td>
                                    {r.event.replace('_', " ")}
                                    {r.threshold.map(|t| view! { <div class="muted small">{format!("threshold {t}")}</div> })}
                                </td>
                                <td class="labels">
                                    <span class="small">{scope}</span>
                                    {r.labels.iter().map(|(k, v)| view! { <span class="chip">{format!("{k}={v}")}</span> }).collect_view()}
                                </td>
                                <td>{short_duration(r.for_secs)}</td>
                                <td>{repeat}</td>
                                <td class="labels">{chans}</td>
                                <td>{when(clock, Some(r.created_at.clone()))}<div class="muted small">{r.created_by.clone()}</div></td>
                                <td>
                                    <PostForm action=DeleteRule::PATH ok="Rule deleted." class="inline" outcome="rule-delete-outcome">
                                        <input type="hidden" name="id" value=delete_id/>
                                        <button type="submit" class="small danger" aria-label=aria data-testid="rule-delete">"Delete"</button>
                                    </PostForm>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    })
}

#[component]
fn RuleForm(channels: Vec<Channel>) -> impl IntoView {
    let boxes = if channels.is_empty() {
        Either::Left(view! {
            <p class="muted small" data-testid="rule-no-channels">"No channels yet: " <a href="/alerts/channels">"add one"</a> " to be notified."</p>
        })
    } else {
        Either::Right(
            channels
                .into_iter()
                .map(|c| {
                    let input_id = format!("rc-{}", c.id);
                    let label_for = input_id.clone();
                    let value = c.id.clone();
                    view! {
                        <label class="check" for=label_for>
                            <input type="checkbox" id=input_id name="channels" value=value/>
                            {format!(" {} ({})", c.name, c.kind)}
                        </label>
                    }
                })
                .collect_view(),
        )
    };
    view! {
        <PostForm action=CreateRule::PATH ok="Rule added." class="stack" testid="rule-form" join="channels">
            <div class="row">
                <div class="field">
                    <label for="r-name">"Name"</label>
                    <input id="r-name" name="name" required maxlength="128" placeholder="e.g. production node down"/>
                </div>
                <div class="field">
                    <label for="r-event">"Event"</label>
                    <select id="r-event" name="event">
                        {ALERT_EVENTS.iter().map(|e| view! { <option value=*e>{e.replace('_', " ")}</option> }).collect_view()}
                    </select>
                </div>
            </div>
            <div class="row">
                <div class="field">
                    <label for="r-tenant">"Tenant (empty: every tenant)"</label>
                    <input id="r-tenant" name="tenant" maxlength="64"/>
                </div>
                <div class="field">
                    <label for="r-labels">"Labels (key=value, comma separated)"</label>
                    <input id="r-labels" name="labels" placeholder="env=prod, role=web"/>
                </div>
            </div>
            <div class="row">
                <div class="field">
                    <label for="r-for">"For (held this long before firing)"</label>
                    <input id="r-for" name="for_text" placeholder="0s, 30s, 5m"/>
                </div>
                <div class="field">
                    <label for="r-repeat">"Repeat while firing (0: never)"</label>
                    <input id="r-repeat" name="repeat_text" placeholder="4h"/>
                </div>
            </div>
            <div class="field">
                <label for="r-threshold">"Threshold (ingest lag in seconds, dead letters per 5 min; control-plane events only)"</label>
                <input id="r-threshold" name="threshold" inputmode="numeric"/>
            </div>
            <fieldset class="field">
                <legend>"Notify"</legend>
                {boxes}
                // Sent even when nothing is ticked; ticked ones join it.
                <input type="hidden" name="channels" value=""/>
            </fieldset>
            <div>
                <button type="submit" class="primary" data-testid="rule-create">"Add rule"</button>
            </div>
            <OutcomeSlot testid="rule-create-result"/>
        </PostForm>
    }
}
