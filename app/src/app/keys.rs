//! `/keys`: the signing-key registry, its governance (admins) and key registration.

use super::ui::{Badge, PageHead, Stat, alert_class, fetched, outcome, when};
use crate::fns::{GovernKey, RegisterKey, get_keys};
use crate::live;
use crate::model::fleet::{CloudSync, Key, KeySummary, KeysView};
use leptos::either::Either;
use leptos::prelude::*;

/// A governance change waiting for confirmation: key and target status.
type Pending = RwSignal<Option<(String, &'static str)>>;

#[component]
pub fn KeysPage() -> impl IntoView {
    view! {
        <PageHead heading="Signing keys" title="Keys">
            <p class="muted small">"Nodes sign their evidence with these keys. A node still signing with a revoked, compromised or expired key raises a key warning."</p>
        </PageHead>
        <KeysPageBody/>
    }
}

/// The registry and the registration form, read again after each change
/// and whenever the live stream re-syncs.
#[cfg_attr(feature = "islands", island(lazy))]
#[cfg_attr(not(feature = "islands"), component)]
fn KeysPageBody() -> impl IntoView {
    crate::app::preload_island("keys_page_body");
    let live = live::use_live();
    let govern = ServerAction::<GovernKey>::new();
    let register = ServerAction::<RegisterKey>::new();
    let keys = Resource::new(
        move || {
            (
                govern.version().get(),
                register.version().get(),
                live.sync.get(),
            )
        },
        |_| get_keys(),
    );
    let pending: Pending = RwSignal::new(None);
    // A finished change closes the confirmation.
    Effect::new(move |_| {
        if govern.version().get() > 0 {
            pending.set(None);
        }
    });
    view! {
        {fetched(keys, move |v| view! { <KeysBody v=v govern=govern pending=pending/> })}
        <section class="card" aria-labelledby="register-h">
            <h2 id="register-h">"Register a key"</h2>
            <RegisterForm register=register/>
        </section>
    }
}

#[component]
fn KeysBody(v: KeysView, govern: ServerAction<GovernKey>, pending: Pending) -> impl IntoView {
    let can = v.can_govern;
    view! {
        <Summary s=v.summary.clone()/>
        {v.list.cloud.clone().filter(|c| c.configured).map(|c| view! { <CloudLine c=c/> })}
        {can.then(|| view! { <Confirm govern=govern pending=pending/> })}
        {outcome(*govern, "key-govern-result", |k| format!("Key {} is now {}.", k.key_id, k.status))}
        <KeyTable items=v.list.items can_govern=can pending=pending/>
    }
}

#[component]
fn Summary(s: KeySummary) -> impl IntoView {
    view! {
        <section class="cards" aria-label="Key summary">
            <Stat label="Active" value=s.active.to_string() class="ok" testid="keys-active"/>
            <Stat label="Revoked" value=s.revoked.to_string() class=alert_class(s.revoked, "warn") testid="keys-revoked"/>
            <Stat label="Compromised" value=s.compromised.to_string() class=alert_class(s.compromised, "bad") testid="keys-compromised"/>
            <Stat label="Expired" value=s.expired.to_string() class=alert_class(s.expired, "warn") testid="keys-expired"/>
            <Stat label="Rotation due" value=s.rotation_due.to_string() sub="past their rotate-by date" class=alert_class(s.rotation_due, "warn") testid="keys-rotation-due"/>
            <Stat label="Nodes with warnings" value=s.nodes_with_warnings.to_string() sub="signing with a bad key" class=alert_class(s.nodes_with_warnings, "bad") testid="keys-nodes-with-warnings"/>
        </section>
    }
}

#[component]
fn CloudLine(c: CloudSync) -> impl IntoView {
    let clock = live::use_clock();
    view! {
        <p class="muted small" data-testid="keys-cloud">
            "Synchronised with Ritma Cloud: last "
            {when(clock, c.last_sync_at)}
            {c.error.map(|e| view! { <span class="error">" · " {e}</span> })}
        </p>
    }
}

/// Governance actions offered for a key in `status`: (target status, button label).
fn actions_for(status: &str) -> Vec<(&'static str, &'static str)> {
    if status == "active" {
        vec![
            ("revoked", "Revoke"),
            ("compromised", "Mark compromised"),
            ("expired", "Mark expired"),
        ]
    } else {
        let mut v = vec![("active", "Reactivate")];
        if status != "compromised" {
            v.push(("compromised", "Mark compromised"));
        }
        v
    }
}

#[component]
fn KeyTable(items: Vec<Key>, can_govern: bool, pending: Pending) -> impl IntoView {
    let clock = live::use_clock();
    if items.is_empty() {
        return Either::Left(
            view! { <p class="card muted" data-testid="keys-empty">"No keys registered."</p> },
        );
    }
    Either::Right(view! {
        <div class="table-wrap card flush">
            <table data-testid="keys-table">
                <caption class="sr-only">"Signing keys"</caption>
                <thead>
                    <tr>
                        <th scope="col">"Key"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col" class="num">"Nodes using"</th>
                        <th scope="col">"Last used"</th>
                        <th scope="col">"Rotate by"</th>
                        <th scope="col">"Expires"</th>
                        <th scope="col">"Source"</th>
                        {can_govern.then(|| view! { <th scope="col"><span class="sr-only">"Actions"</span></th> })}
                    </tr>
                </thead>
                <tbody>
                    {items.into_iter().map(|k| {
                        let actions = can_govern.then(|| key_actions(&k, pending));
                        view! {
                            <tr data-key-id=k.key_id.clone() data-status=k.status.clone()>
                                <td>
                                    <span class="mono">{k.key_id.clone()}</span>
                                    {k.label.clone().filter(|l| !l.is_empty()).map(|l| view! { <div class="muted small">{l}</div> })}
                                </td>
                                <td data-testid="key-status"><Badge value=k.status.clone()/></td>
                                <td class="num">{k.nodes_using}</td>
                                <td>{when(clock, k.last_used_at.clone())}</td>
                                <td>{when(clock, k.rotate_by.clone())}</td>
                                <td>{when(clock, k.expires_at.clone())}</td>
                                <td class="small">{k.source.replace('_', " ")}{k.updated_by.clone().map(|b| view! { <div class="muted">"changed by " {b}</div> })}</td>
                                {actions}
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    })
}

fn key_actions(k: &Key, pending: Pending) -> impl IntoView + use<> {
    let buttons = actions_for(&k.status)
        .into_iter()
        .map(|(target, label)| {
            let id = k.key_id.clone();
            let aria = format!("{label} key {id}");
            let class = if target == "active" {
                "small"
            } else {
                "small danger"
            };
            view! {
                <button type="button" class=class aria-label=aria data-action=target
                    on:click=move |_| pending.set(Some((id.clone(), target)))>{label}</button>
            }
        })
        .collect_view();
    view! { <td class="actions">{buttons}</td> }
}

/// The confirmation of a governance change, with an optional reason (audited).
#[component]
fn Confirm(govern: ServerAction<GovernKey>, pending: Pending) -> impl IntoView {
    let reason_ref = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |_| {
        if pending.with(Option::is_some)
            && let Some(input) = reason_ref.get()
        {
            let _ = input.focus();
        }
    });
    move || {
        pending.get().map(|(key, target)| {
            view! {
                <section class="card confirm" role="group" aria-labelledby="confirm-h" data-testid="key-confirm">
                    <h2 id="confirm-h">{format!("Set key {key} to {target}?")}</h2>
                    <p class="muted">{confirm_text(target)}</p>
                    <ActionForm action=govern attr:class="stack">
                        <input type="hidden" name="key_id" value=key.clone()/>
                        <input type="hidden" name="status" value=target/>
                        <div class="field">
                            <label for="gov-reason">"Reason (recorded in the audit trail)"</label>
                            <input id="gov-reason" name="reason" node_ref=reason_ref placeholder="e.g. laptop lost"/>
                        </div>
                        <div class="row-inline">
                            <button type="submit" class="primary" data-testid="key-confirm-submit" disabled=move || govern.pending().get()>"Confirm"</button>
                            <button type="button" on:click=move |_| pending.set(None)>"Cancel"</button>
                        </div>
                    </ActionForm>
                </section>
            }
        })
    }
}

fn confirm_text(target: &str) -> &'static str {
    match target {
        "active" => "Nodes using this key stop raising key warnings.",
        "compromised" => {
            "Every node signing with this key raises a key warning; treat its evidence as suspect."
        }
        _ => "Every node still signing with this key raises a key warning until it is re-keyed.",
    }
}

#[component]
fn RegisterForm(register: ServerAction<RegisterKey>) -> impl IntoView {
    view! {
        <ActionForm action=register attr:class="stack" attr:data-testid="register-key-form">
            <div class="row">
                <div class="field">
                    <label for="k-id">"Key ID"</label>
                    <input id="k-id" name="key_id" required maxlength="128" class="mono"/>
                </div>
                <div class="field">
                    <label for="k-label">"Label"</label>
                    <input id="k-label" name="label" placeholder="e.g. web fleet 2026"/>
                </div>
            </div>
            <div class="row">
                <div class="field">
                    <label for="k-rotate">"Rotate by"</label>
                    <input id="k-rotate" name="rotate_by" type="date"/>
                </div>
                <div class="field">
                    <label for="k-expires">"Expires"</label>
                    <input id="k-expires" name="expires_at" type="date"/>
                </div>
            </div>
            <div>
                <button type="submit" class="primary" disabled=move || register.pending().get()>"Register key"</button>
            </div>
            {outcome(*register, "register-key-result", |k| format!("Registered key {}.", k.key_id))}
        </ActionForm>
    }
}
