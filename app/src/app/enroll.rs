//! `/enroll`: the enrollment wizard. Create a token, copy the install command and node
//! configuration, and manage the existing tokens.

use super::ui::{self, CopyBlock, ErrorBox, PageHead, rel_time};
use crate::fns::{CreateToken, RevokeToken, get_config_template, list_tenants, list_tokens};
use crate::live;
use crate::model::{CreatedToken, TokenInfo, env_template};
use leptos::either::{Either, EitherOf3};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

#[component]
pub fn EnrollPage() -> impl IntoView {
    let query = use_query_map();
    // "Enroll more like this" links fill the form from the URL.
    let initial_tenant = query
        .with_untracked(|q| q.get("tenant"))
        .unwrap_or_default();
    let initial_labels = query
        .with_untracked(|q| q.get("labels"))
        .map(|l| l.replace(',', "\n"))
        .unwrap_or_default();
    view! {
        <PageHead heading="Enroll a node"/>
        <EnrollBody initial_tenant=initial_tenant initial_labels=initial_labels/>
    }
}

/// The token form, what a new token installs, and the token list (read
/// again after each creation or revocation).
#[cfg_attr(feature = "islands", island(lazy))]
#[cfg_attr(not(feature = "islands"), component)]
fn EnrollBody(initial_tenant: String, initial_labels: String) -> impl IntoView {
    crate::app::preload_island("enroll_body");
    let create = ServerAction::<CreateToken>::new();
    let revoke = ServerAction::<RevokeToken>::new();
    let tenants = Resource::new(|| (), |_| list_tenants());
    let tokens = Resource::new(
        move || (create.version().get(), revoke.version().get()),
        |_| list_tokens(),
    );
    let result = create.value();
    view! {
        <div class="grid2">
            <section class="card">
                <h2>"1. Create an enrollment token"</h2>
                <ActionForm action=create attr:class="stack" attr:data-testid="enroll-form">
                    <div class="field">
                        <label for="e-tenant">"Tenant"</label>
                        <input id="e-tenant" name="tenant" list="e-tenant-list" required value=initial_tenant placeholder="tenant id"/>
                        <Suspense fallback=|| ()>
                            <datalist id="e-tenant-list">
                                {move || tenants.get().and_then(|r| r.ok()).map(|ts| ts.into_iter().map(|t| view! { <option value=t></option> }).collect_view())}
                            </datalist>
                        </Suspense>
                    </div>
                    <div class="row">
                        <div class="field">
                            <label for="e-ttl">"Valid for"</label>
                            <select id="e-ttl" name="ttl_secs">
                                <option value="900">"15 minutes"</option>
                                <option value="3600" selected>"1 hour"</option>
                                <option value="86400">"24 hours"</option>
                                <option value="604800">"7 days"</option>
                            </select>
                        </div>
                        <div class="field">
                            <label for="e-uses">"Uses"</label>
                            <input id="e-uses" name="max_uses" type="number" min="1" max="10000" value="1" required/>
                        </div>
                    </div>
                    <div class="field">
                        <label for="e-labels">"Labels for enrolled nodes"</label>
                        <textarea id="e-labels" name="labels" rows="3" placeholder="env=prod\nrole=web">{initial_labels}</textarea>
                    </div>
                    <button type="submit" class="primary" disabled=move || create.pending().get()>
                        {move || if create.pending().get() { "Creating…" } else { "Create token" }}
                    </button>
                </ActionForm>
            </section>
            <section class="card" aria-live="polite">
                <h2>"2. Install and start the node"</h2>
                {move || match result.get() {
                    None => EitherOf3::A(view! { <p class="muted">"Create a token first; the install command appears here. The token secret is shown only once."</p> }),
                    Some(Err(e)) => EitherOf3::B(view! { <ErrorBox err=e/> }),
                    Some(Ok(t)) => EitherOf3::C(view! { <TokenCreated t=t/> }),
                }}
            </section>
        </div>
        <section class="card">
            <h2>"Enrollment tokens"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || tokens.get().map(|r| match r {
                    Ok(list) => Either::Left(view! { <TokenList list=list revoke=revoke/> }),
                    Err(e) => Either::Right(view! { <ErrorBox err=e/> }),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn TokenCreated(t: CreatedToken) -> impl IntoView {
    let cmd = t.install_command();
    let env = env_template(
        &t.controller_url,
        &t.org_id,
        &t.info.tenant_id,
        &t.secret,
        "/var/lib/ritma-node",
    );
    view! {
        <div class="created" data-testid="token-created">
            <p class="notice">"Copy the token now: it is shown only once and cannot be retrieved later."</p>
            <CopyBlock title="Token" text=t.secret.clone() class="secret" testid="token-secret"/>
            <p class="muted small">
                {format!(
                    "Tenant {} · valid until {} · {} use(s)",
                    t.info.tenant_id, t.info.expires.text, t.info.max_uses
                )}
            </p>
            <CopyBlock title="Install command" text=cmd testid="install-command"/>
            <CopyBlock title="Or as an environment file" text=env testid="env-file"/>
            <ConfigTemplateView tenant=t.info.tenant_id.clone() secret=t.secret.clone()/>
        </div>
    }
}

/// The controller's node configuration for the tenant (env file, systemd unit, install
/// command), with the new token filled in.
#[component]
fn ConfigTemplateView(tenant: String, secret: String) -> impl IntoView {
    let template = Resource::new(move || tenant.clone(), get_config_template);
    view! {
        <section class="template" aria-labelledby="template-h" data-testid="config-template">
            <h3 id="template-h">"Node configuration"</h3>
            {ui::fetched(template, move |c| {
                let c = c.with_token(&secret);
                view! {
                    <CopyBlock title="Environment file" text=c.env_file testid="config-template-env"/>
                    <CopyBlock title="systemd unit" text=c.systemd_unit testid="config-template-systemd"/>
                    <CopyBlock title="Install" text=c.install_command testid="config-template-install"/>
                }
            })}
        </section>
    }
}

#[component]
fn TokenList(list: Vec<TokenInfo>, revoke: ServerAction<RevokeToken>) -> impl IntoView {
    let clock = live::use_clock();
    if list.is_empty() {
        return Either::Left(view! { <p class="muted">"No enrollment tokens."</p> });
    }
    Either::Right(view! {
        <div class="table-wrap">
            <table class="tokens" data-testid="tokens-table">
                <thead>
                    <tr>
                        <th scope="col">"ID"</th>
                        <th scope="col">"Tenant"</th>
                        <th scope="col">"Uses"</th>
                        <th scope="col">"Expires"</th>
                        <th scope="col">"Created"</th>
                        <th scope="col">"Labels"</th>
                        <th scope="col"><span class="sr-only">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {list.into_iter().map(|t| {
                        let created = t.created.ms;
                        let expires_ms = t.expires.ms;
                        let expires_text = t.expires.text.clone();
                        let token_id = t.id.clone();
                        let expired = move || clock.now_or(created) > expires_ms;
                        view! {
                            <tr data-token-id=t.id.clone()>
                                <td class="mono small">{t.id.clone()}</td>
                                <td>{t.tenant_id.clone()}</td>
                                <td>{format!("{} / {}", t.uses, t.max_uses)}</td>
                                <td title=t.expires.text.clone()>
                                    {move || if expired() { view! { <span class="badge status-offline">"expired"</span> }.into_any() } else { view! { <span>{expires_text.clone()}</span> }.into_any() }}
                                </td>
                                <td>{move || rel_time(clock, created, created)}</td>
                                <td class="labels">{t.labels.iter().map(|(k, v)| view! { <span class="chip">{format!("{k}={v}")}</span> }).collect_view()}</td>
                                <td>
                                    <ActionForm action=revoke attr:class="inline">
                                        <input type="hidden" name="id" value=token_id.clone()/>
                                        <button type="submit" class="small danger">"Revoke"</button>
                                    </ActionForm>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    })
}
