//! `/alerts/channels`: notification channels (webhook, Slack, e-mail), each with its
//! delivery log and a test send; a form to add one that shows a webhook's signing
//! secret once. No island: the forms post through `live::forms`.

use super::ui::{
    AlertsNav, Badge, LiveRegion, OutcomeSlot, PageHead, PostForm, alerts_version, fetched, when,
};
use crate::fns::{CreateChannel, DeleteChannel, TestChannel, get_channels};
use crate::live;
use crate::model::alerts::{CHANNEL_KINDS, ChannelWithLog, Delivery};
use leptos::either::Either;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;

#[component]
pub fn ChannelsPage() -> impl IntoView {
    view! {
        <PageHead heading="Notification channels">
            <p class="muted small">"Where alerts are sent. Webhooks are signed: " <code>"X-Ritma-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>"</code> ". Failed deliveries are retried with back-off."</p>
        </PageHead>
        <AlertsNav/>
        <OutcomeSlot testid="channel-test-result" id="channel-test-outcome"/>
        <OutcomeSlot testid="channel-delete-result" id="channel-delete-outcome"/>
        <LiveRegion id="channels" follows="sync alerts">
            <ChannelCards/>
        </LiveRegion>
        <section class="card" aria-labelledby="new-channel-h">
            <h2 id="new-channel-h">"New channel"</h2>
            <ChannelForm/>
        </section>
    }
}

/// The channels with their delivery logs, read again on pushed alerts and when
/// the page re-syncs (after a form's action).
#[component]
fn ChannelCards() -> impl IntoView {
    let live = live::use_live();
    let pushed = alerts_version(live);
    let list = Resource::new(move || (pushed.get(), live.sync.get()), |_| get_channels());
    fetched(list, |items| view! { <ChannelList items=items/> })
}

#[component]
fn ChannelList(items: Vec<ChannelWithLog>) -> impl IntoView {
    let clock = live::use_clock();
    if items.is_empty() {
        return Either::Left(view! {
            <div class="card empty" data-testid="channels-empty"><p>"No channels yet: add the first below."</p></div>
        });
    }
    Either::Right(
        items
            .into_iter()
            .map(|c| {
                let ch = c.channel;
                let (test_aria, delete_aria) = (format!("Send a test to {}", ch.name), format!("Delete channel {}", ch.name));
                let (test_id, delete_id) = (ch.id.clone(), ch.id.clone());
                view! {
                    <section class="card" data-testid="channel" data-channel-id=ch.id.clone() data-channel-name=ch.name.clone()>
                        <div class="section-head">
                            <h2>{ch.name.clone()} " " <span class="badge tone-idle">{ch.kind.clone()}</span></h2>
                            <div class="row-inline">
                                <PostForm action=TestChannel::PATH ok="Test sent." class="inline" outcome="channel-test-outcome">
                                    <input type="hidden" name="id" value=test_id/>
                                    <button type="submit" class="small" aria-label=test_aria data-testid="channel-test">"Send test"</button>
                                </PostForm>
                                <PostForm action=DeleteChannel::PATH ok="Channel deleted." class="inline" outcome="channel-delete-outcome">
                                    <input type="hidden" name="id" value=delete_id/>
                                    <button type="submit" class="small danger" aria-label=delete_aria data-testid="channel-delete">"Delete"</button>
                                </PostForm>
                            </div>
                        </div>
                        <p class="muted small">
                            <span class="mono" data-testid="channel-target">{ch.target.clone()}</span>
                            " · added " {when(clock, Some(ch.created_at.clone()))} " by " {ch.created_by.clone()}
                        </p>
                        <h3>"Delivery log"</h3>
                        {match c.deliveries {
                            Ok(log) => Either::Left(view! { <DeliveryLog items=log/> }),
                            Err(e) => Either::Right(view! { <p class="error" role="alert">{e}</p> }),
                        }}
                    </section>
                }
            })
            .collect_view(),
    )
}

#[component]
fn DeliveryLog(items: Vec<Delivery>) -> impl IntoView {
    let clock = live::use_clock();
    if items.is_empty() {
        return Either::Left(
            view! { <p class="muted small" data-testid="deliveries-empty">"Nothing sent yet."</p> },
        );
    }
    Either::Right(view! {
        <div class="table-wrap">
            <table data-testid="deliveries">
                <thead>
                    <tr>
                        <th scope="col">"When"</th>
                        <th scope="col">"Notification"</th>
                        <th scope="col">"State"</th>
                        <th scope="col" class="num">"Attempts"</th>
                        <th scope="col">"Response"</th>
                        <th scope="col">"Last error"</th>
                    </tr>
                </thead>
                <tbody>
                    {items.into_iter().map(|d| {
                        let what = match (&d.rule_name, &d.node_id) {
                            (Some(r), Some(n)) => format!("{r} · node {n}"),
                            (Some(r), None) => r.clone(),
                            _ => String::new(),
                        };
                        view! {
                            <tr data-delivery-id=d.id.to_string() data-status=d.status.clone() data-state=d.state.clone()>
                                <td>{when(clock, Some(d.created_at.clone()))}</td>
                                <td><Badge value=d.status.clone()/> " " <span class="small">{what}</span></td>
                                <td data-testid="delivery-state">
                                    <Badge value=d.state.clone()/>
                                    {d.next_attempt_at.clone().filter(|_| d.state == "pending").map(|t| view! { <div class="muted small">"next try " {when(clock, Some(t))}</div> })}
                                </td>
                                <td class="num" data-testid="delivery-attempts">{d.attempts}</td>
                                <td data-testid="delivery-response">{d.response_status.map(|s| s.to_string()).unwrap_or_else(|| "—".into())}</td>
                                <td class="small error" data-testid="delivery-error">{d.last_error.clone()}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    })
}

/// The form for a new channel; a webhook's signing secret is shown once, below it.
#[component]
fn ChannelForm() -> impl IntoView {
    view! {
        <PostForm action=CreateChannel::PATH ok="Channel added." class="stack" testid="channel-form" result="channel-created">
            <div class="row">
                <div class="field">
                    <label for="c-name">"Name"</label>
                    <input id="c-name" name="name" required maxlength="128" placeholder="e.g. on-call webhook"/>
                </div>
                <div class="field">
                    <label for="c-kind">"Kind"</label>
                    <select id="c-kind" name="kind">
                        {CHANNEL_KINDS.iter().map(|k| view! { <option value=*k>{*k}</option> }).collect_view()}
                    </select>
                </div>
            </div>
            <div class="field">
                <label for="c-target">"Webhook or Slack incoming-webhook URL, or e-mail address"</label>
                <input id="c-target" name="target" required maxlength="2048" placeholder="https://…"/>
            </div>
            <div class="field">
                <label for="c-secret">"Signing secret of a webhook (16 to 256 characters; empty: one is generated)"</label>
                <input id="c-secret" name="secret" autocomplete="off" maxlength="256"/>
            </div>
            <div>
                <button type="submit" class="primary" data-testid="channel-create">"Add channel"</button>
            </div>
            <OutcomeSlot testid="channel-create-result"/>
            <div id="channel-created"></div>
        </PostForm>
    }
}

/// A new webhook's signing secret, shown this once: the create form's reply panel.
#[cfg(feature = "ssr")]
pub fn channel_secret_html(secret: String) -> String {
    super::ui::reply_html(|| {
        view! {
            <div class="created" data-testid="channel-created">
                <p class="notice">"Copy the signing secret now: it is shown only once and cannot be retrieved later."</p>
                <super::ui::CopyBlock title="Signing secret" text=secret class="secret" testid="channel-secret"/>
            </div>
        }
    })
}
