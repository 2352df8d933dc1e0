//! `/enroll`: the enrollment wizard. Create a token, copy the install command and node
//! configuration, and manage the existing tokens.

#[cfg(feature = "ssr")]
use super::ui::{CopyBlock, ErrorBox};
use super::ui::{LiveRegion, OutcomeSlot, PageHead, PostForm, rel_time, synced};
use crate::fns::{CreateToken, RevokeToken, list_tenants, list_tokens};
use crate::live;
use crate::model::TokenInfo;
#[cfg(feature = "ssr")]
use crate::model::fleet::ConfigTemplate;
#[cfg(feature = "ssr")]
use crate::model::{AppError, CreatedToken, env_template};
use leptos::either::Either;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::hooks::use_query_map;

/// The enrollment wizard: no island. The token form is a post form whose reply
/// carries the new token's panel as the server rendered it (shown once, never
/// stored in the page's HTML), and the token list is a live region.
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
    let tenants = Resource::new(|| (), |_| list_tenants());
    view! {
        <PageHead heading="Enroll a node"/>
        <div class="grid2">
            <section class="card">
                <h2>"1. Create an enrollment token"</h2>
                <PostForm action=CreateToken::PATH ok="Token created." class="stack" testid="enroll-form" result="token-result">
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
                    <button type="submit" class="primary">"Create token"</button>
                    <OutcomeSlot testid="enroll-result"/>
                </PostForm>
            </section>
            <section class="card" aria-live="polite">
                <h2>"2. Install and start the node"</h2>
                <div id="token-result" data-testid="token-result">
                    <p class="muted">"Create a token first; the install command appears here. The token secret is shown only once."</p>
                </div>
            </section>
        </div>
        <section class="card">
            <h2>"Enrollment tokens"</h2>
            <LiveRegion id="tokens" follows="sync">
                {synced(list_tokens, |list| view! { <TokenList list=list/> })}
            </LiveRegion>
            <OutcomeSlot testid="token-revoke-result" id="token-revoke-outcome"/>
        </section>
    }
}

/// The new token's panel as HTML, for the enrollment form's reply.
#[cfg(feature = "ssr")]
pub fn token_created_html(t: CreatedToken, template: Result<ConfigTemplate, AppError>) -> String {
    super::ui::reply_html(|| view! { <TokenCreated t=t template=template/> })
}

#[cfg(feature = "ssr")]
#[component]
fn TokenCreated(t: CreatedToken, template: Result<ConfigTemplate, AppError>) -> impl IntoView {
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
            <ConfigTemplateView template=template secret=t.secret.clone()/>
        </div>
    }
}

/// The controller's node configuration for the tenant (env file, systemd unit, install
/// command), with the new token filled in.
#[cfg(feature = "ssr")]
#[component]
fn ConfigTemplateView(template: Result<ConfigTemplate, AppError>, secret: String) -> impl IntoView {
    view! {
        <section class="template" aria-labelledby="template-h" data-testid="config-template">
            <h3 id="template-h">"Node configuration"</h3>
            {match template {
                Ok(c) => {
                    let c = c.with_token(&secret);
                    Either::Left(view! {
                        <CopyBlock title="Environment file" text=c.env_file testid="config-template-env"/>
                        <CopyBlock title="systemd unit" text=c.systemd_unit testid="config-template-systemd"/>
                        <CopyBlock title="Install" text=c.install_command testid="config-template-install"/>
                    })
                }
                Err(e) => Either::Right(view! { <ErrorBox err=e/> }),
            }}
        </section>
    }
}

/// Now, in ms, when the server renders the list for islands mode (a live region,
/// never hydrated); `None` otherwise, where the page's clock tells (and the server
/// render must match what hydration computes).
fn server_now_ms() -> Option<i64> {
    #[cfg(all(feature = "ssr", feature = "islands"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_millis()).ok())
    }
    #[cfg(not(all(feature = "ssr", feature = "islands")))]
    {
        None
    }
}

#[component]
fn TokenList(list: Vec<TokenInfo>) -> impl IntoView {
    let clock = live::use_clock();
    let server_now = server_now_ms();
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
                        let expired = move || clock.0.get().or(server_now).unwrap_or(created) > expires_ms;
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
                                    <PostForm action=RevokeToken::PATH ok="Token revoked." class="inline" outcome="token-revoke-outcome">
                                        <input type="hidden" name="id" value=token_id.clone()/>
                                        <button type="submit" class="small danger">"Revoke"</button>
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
