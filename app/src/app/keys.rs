//! `/keys`: the signing-key registry, its governance (admins) and key registration.
//! No island: the registry is a live region and the forms post through `live::forms`.

use super::ui::{
    Badge, LiveRegion, OutcomeSlot, PageHead, PostForm, Stat, alert_class, synced, when,
};
use crate::fns::{GovernKey, RegisterKey, get_keys};
use crate::live;
use crate::model::fleet::{CloudSync, Key, KeySummary, KeysView};
use leptos::either::Either;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;

#[component]
pub fn KeysPage() -> impl IntoView {
    view! {
        <PageHead heading="Signing keys" title="Keys">
            <p class="muted small">"Nodes sign their evidence with these keys. A node still signing with a revoked, compromised or expired key raises a key warning."</p>
        </PageHead>
        <OutcomeSlot testid="key-govern-result" id="key-govern-outcome"/>
        <LiveRegion id="keys" follows="sync">
            <Registry/>
        </LiveRegion>
        <section class="card" aria-labelledby="register-h">
            <h2 id="register-h">"Register a key"</h2>
            <RegisterForm/>
        </section>
    }
}

/// The registry, read again whenever the page re-syncs (after a form's action).
#[component]
fn Registry() -> impl IntoView {
    synced(get_keys, |v| view! { <KeysBody v=v/> })
}

#[component]
fn KeysBody(v: KeysView) -> impl IntoView {
    let can = v.can_govern;
    view! {
        <Summary s=v.summary.clone()/>
        {v.list.cloud.clone().filter(|c| c.configured).map(|c| view! { <CloudLine c=c/> })}
        <KeyTable items=v.list.items can_govern=can/>
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
fn KeyTable(items: Vec<Key>, can_govern: bool) -> impl IntoView {
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
                        let actions = can_govern.then(|| key_actions(&k));
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

/// The key's governance: each change behind a disclosure that explains it and
/// asks for a reason (audited) before it is confirmed.
fn key_actions(k: &Key) -> impl IntoView + use<> {
    let forms = actions_for(&k.status)
        .into_iter()
        .map(|(target, label)| {
            let id = k.key_id.clone();
            let reason_id = format!("gov-reason-{id}-{target}");
            let class = if target == "active" {
                "button small"
            } else {
                "button small danger"
            };
            view! {
                <details class="govern" data-action=target>
                    <summary class=class aria-label=format!("{label} key {id}")>{label}</summary>
                    <PostForm action=GovernKey::PATH ok=format!("Key {id} is now {target}.") class="stack confirm"
                        outcome="key-govern-outcome" testid="key-confirm">
                        <p class="muted small">{confirm_text(target)}</p>
                        <input type="hidden" name="key_id" value=id.clone()/>
                        <input type="hidden" name="status" value=target/>
                        <label for=reason_id.clone()>"Reason (recorded in the audit trail)"</label>
                        <input id=reason_id name="reason" placeholder="e.g. laptop lost"/>
                        <button type="submit" class="primary small" data-testid="key-confirm-submit">{format!("Confirm: {label}")}</button>
                    </PostForm>
                </details>
            }
        })
        .collect_view();
    view! { <td class="actions">{forms}</td> }
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
fn RegisterForm() -> impl IntoView {
    view! {
        <PostForm action=RegisterKey::PATH ok="Key registered." class="stack" testid="register-key-form">
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
                <button type="submit" class="primary">"Register key"</button>
            </div>
            <OutcomeSlot testid="register-key-result"/>
        </PostForm>
    }
}
