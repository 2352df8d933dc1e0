//! `/alerts/channels`: notification channels (webhook, Slack, e-mail), each with its
//! delivery log and a test send; a form to add one that shows a webhook's signing
//! secret once.

use super::ui::{AlertsNav, Badge, CopyBlock, PageHead, alerts_version, fetched, outcome, when};
use crate::fns::{CreateChannel, DeleteChannel, TestChannel, get_channels};
use crate::live;
use crate::model::alerts::{CHANNEL_KINDS, ChannelCreated, ChannelWithLog, Delivery};
use leptos::either::{Either, EitherOf3};
use leptos::prelude::*;

#[derive(Clone, Copy)]
struct Actions {
    test: ServerAction<TestChannel>,
    delete: ServerAction<DeleteChannel>,
}

#[component]
pub fn ChannelsPage() -> impl IntoView {
    view! {
        <PageHead heading="Notification channels">
            <p class="muted small">"Where alerts are sent. Webhooks are signed: " <code>"X-Ritma-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>"</code> ". Failed deliveries are retried with back-off."</p>
        </PageHead>
        <AlertsNav/>
        <ChannelsBody/>
    }
}

/// The channels with their delivery logs and the form for a new one, read
/// again after each change and on pushed alerts.
#[cfg_attr(feature = "islands", island(lazy))]
#[cfg_attr(not(feature = "islands"), component)]
fn ChannelsBody() -> impl IntoView {
    crate::app::preload_island("channels_body");
    let live = live::use_live();
    let create = ServerAction::<CreateChannel>::new();
    let actions = Actions {
        test: ServerAction::<TestChannel>::new(),
        delete: ServerAction::<DeleteChannel>::new(),
    };
    let pushed = alerts_version(live);
    let list = Resource::new(
        move || {
            (
                create.version().get(),
                actions.test.version().get(),
                actions.delete.version().get(),
                pushed.get(),
                live.sync.get(),
            )
        },
        |_| get_channels(),
    );
    view! {
        {outcome(*actions.test, "channel-test-result", test_text)}
        {outcome(*actions.delete, "channel-delete-result", |_| "Channel deleted.".to_string())}
        {fetched(list, move |items| view! { <ChannelList items=items actions=actions/> })}
        <section class="card" aria-labelledby="new-channel-h">
            <h2 id="new-channel-h">"New channel"</h2>
            <ChannelForm create=create/>
        </section>
    }
}

/// How a test send went, in one line.
fn test_text(d: &Delivery) -> String {
    let status = d
        .response_status
        .map(|s| format!(" (HTTP {s})"))
        .unwrap_or_default();
    match d.state.as_str() {
        "delivered" => format!("Test delivered{status}."),
        other => format!(
            "Test {other}{status}: {}",
            d.last_error.as_deref().unwrap_or("no error reported")
        ),
    }
}

#[component]
fn ChannelList(items: Vec<ChannelWithLog>, actions: Actions) -> impl IntoView {
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
                                <ActionForm action=actions.test attr:class="inline">
                                    <input type="hidden" name="id" value=test_id/>
                                    <button type="submit" class="small" aria-label=test_aria data-testid="channel-test" disabled=move || actions.test.pending().get()>"Send test"</button>
                                </ActionForm>
                                <ActionForm action=actions.delete attr:class="inline">
                                    <input type="hidden" name="id" value=delete_id/>
                                    <button type="submit" class="small danger" aria-label=delete_aria data-testid="channel-delete">"Delete"</button>
                                </ActionForm>
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

#[component]
fn ChannelForm(create: ServerAction<CreateChannel>) -> impl IntoView {
    let kind = RwSignal::new("webhook".to_string());
    let target_label = move || match kind.get().as_str() {
        "email" => "E-mail address",
        "slack" => "Slack incoming-webhook URL",
        _ => "Webhook URL",
    };
    view! {
        <ActionForm action=create attr:class="stack" attr:data-testid="channel-form">
            <div class="row">
                <div class="field">
                    <label for="c-name">"Name"</label>
                    <input id="c-name" name="name" required maxlength="128" placeholder="e.g. on-call webhook"/>
                </div>
                <div class="field">
                    <label for="c-kind">"Kind"</label>
                    <select id="c-kind" name="kind" on:change=move |ev| kind.set(event_target_value(&ev))>
                        {CHANNEL_KINDS.iter().map(|k| view! { <option value=*k>{*k}</option> }).collect_view()}
                    </select>
                </div>
            </div>
            <div class="field">
                <label for="c-target">{target_label}</label>
                <input id="c-target" name="target" required maxlength="2048" placeholder="https://…"/>
            </div>
            <div class="field" hidden=move || kind.get() != "webhook">
                <label for="c-secret">"Signing secret (16 to 256 characters; empty: one is generated)"</label>
                <input id="c-secret" name="secret" autocomplete="off" maxlength="256"/>
            </div>
            <div>
                <button type="submit" class="primary" data-testid="channel-create" disabled=move || create.pending().get()>"Add channel"</button>
            </div>
            {move || create.value().get().map(|r| match r {
                Ok(c) => EitherOf3::A(view! { <Created c=c/> }),
                Err(e) => EitherOf3::B(view! { <p class="error" role="alert" data-testid="channel-create-error">{e.to_string()}</p> }),
            }).unwrap_or(EitherOf3::C(()))}
        </ActionForm>
    }
}

/// A new channel; a webhook's secret, shown this once.
#[component]
fn Created(c: ChannelCreated) -> impl IntoView {
    let name = c.channel.name.clone();
    view! {
        <div class="created" data-testid="channel-created" aria-live="polite">
            <p class="ok-msg">{format!("Channel {name} added.")}</p>
            {c.secret.map(|s| view! {
                <p class="notice">"Copy the signing secret now: it is shown only once and cannot be retrieved later."</p>
                <CopyBlock title="Signing secret" text=s class="secret" testid="channel-secret"/>
            })}
        </div>
    }
}
