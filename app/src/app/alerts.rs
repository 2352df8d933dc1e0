//! `/alerts`: open and recently resolved alerts with a silence shortcut, and the live
//! banner of firing alerts shown on every page (the section's navigation is in `ui`).

use super::ui::{
    AlertsNav, Badge, LiveRegion, OutcomeSlot, PageHead, PostForm, alerts_version, fetched, when,
};
use crate::fns::{CreateSilence, get_alerts, get_firing_alerts};
use crate::live;
use crate::model::alerts::{Alert, AlertsView};
use leptos::either::Either;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;

/// One firing alert as the banner counts it: id, headline, since (ms).
#[derive(Clone, Debug, PartialEq)]
struct Firing {
    id: String,
    headline: String,
    at_ms: i64,
}

/// The fetched firing alerts, minus those resolved since, plus those fired since;
/// newest first.
fn firing_now(
    fetched: &[Alert],
    pushed: &std::collections::HashMap<String, crate::model::alerts::LiveAlert>,
) -> Vec<Firing> {
    let mut out: Vec<Firing> = fetched
        .iter()
        .filter(|a| pushed.get(&a.id).is_none_or(|p| p.status == "firing"))
        .map(|a| Firing {
            id: a.id.clone(),
            headline: a.headline(),
            at_ms: a.fired_at.as_ref().unwrap_or(&a.opened_at).ms,
        })
        .collect();
    for p in pushed.values().filter(|p| p.status == "firing") {
        if let Some(known) = out.iter_mut().find(|f| f.id == p.alert_id) {
            known.headline = p.headline.clone();
        } else {
            out.push(Firing {
                id: p.alert_id.clone(),
                headline: p.headline.clone(),
                at_ms: p.at.ms,
            });
        }
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.at_ms));
    out
}

/// "N alerts firing" with the newest headline, on every page: seeded from the API,
/// then kept up to date by the live stream (firing adds, resolved removes).
#[cfg_attr(feature = "islands", island)]
#[cfg_attr(not(feature = "islands"), component)]
pub fn AlertBanner() -> impl IntoView {
    let live = live::use_live();
    let seed = Resource::new(move || live.sync.get(), |_| get_firing_alerts());
    view! {
        <Transition fallback=|| ()>
            {move || {
                // Read here, inside the transition: the server render waits for it.
                let fetched = seed.get().and_then(Result::ok).unwrap_or_default();
                let list = live.alerts.with(|pushed| firing_now(&fetched, pushed));
                let newest = list.first().cloned()?;
                let n = list.len();
                let text = if n == 1 { "1 alert firing".to_string() } else { format!("{n} alerts firing") };
                Some(view! {
                    <div class="banner bad alert-banner" role="alert" data-testid="alert-banner" data-count=n.to_string()>
                        <strong data-testid="alert-banner-count">{text}</strong>
                        " · "
                        <span data-testid="alert-banner-headline">{newest.headline}</span>
                        " "
                        <a href="/alerts">"See alerts"</a>
                    </div>
                })
            }}
        </Transition>
    }
}

#[component]
pub fn AlertsPage() -> impl IntoView {
    view! {
        <PageHead heading="Alerts">
            <p class="muted small">"Open alerts of this org, updated live, and those resolved in the last day. Rules decide what alerts; silences hold notifications back."</p>
        </PageHead>
        <AlertsNav/>
        <OutcomeSlot testid="alert-silence-result" id="alert-silence-outcome"/>
        <LiveRegion id="alerts" follows="sync alerts">
            <AlertLists/>
        </LiveRegion>
    }
}

/// Open and resolved alerts, read again on pushed alerts and re-syncs (a
/// silence made here re-syncs the page).
#[component]
fn AlertLists() -> impl IntoView {
    let live = live::use_live();
    let pushed = alerts_version(live);
    let alerts = Resource::new(move || (live.sync.get(), pushed.get()), |_| get_alerts());
    fetched(alerts, move |v| view! { <AlertsBody v=v/> })
}

#[component]
fn AlertsBody(v: AlertsView) -> impl IntoView {
    view! {
        <section class="card" aria-labelledby="open-alerts-h">
            <h2 id="open-alerts-h">"Firing and pending"</h2>
            <AlertTable items=v.open testid="alerts-open" silence=true empty="No open alerts."/>
        </section>
        <section class="card" aria-labelledby="resolved-alerts-h">
            <h2 id="resolved-alerts-h">"Resolved in the last day"</h2>
            <AlertTable items=v.resolved testid="alerts-resolved" silence=false empty="None resolved in the last day."/>
        </section>
    }
}

#[component]
fn AlertTable(
    items: Vec<Alert>,
    testid: &'static str,
    silence: bool,
    empty: &'static str,
) -> impl IntoView {
    let clock = live::use_clock();
    if items.is_empty() {
        return Either::Left(
            view! { <p class="muted" data-testid=format!("{testid}-empty")>{empty}</p> },
        );
    }
    Either::Right(view! {
        <div class="table-wrap">
            <table data-testid=testid>
                <thead>
                    <tr>
                        <th scope="col">"State"</th>
                        <th scope="col">"Rule"</th>
                        <th scope="col">"Event"</th>
                        <th scope="col">"Node"</th>
                        <th scope="col">"Detail"</th>
                        <th scope="col">"Since"</th>
                        <th scope="col">"Resolved"</th>
                        {silence.then(|| view! { <th scope="col"><span class="sr-only">"Actions"</span></th> })}
                    </tr>
                </thead>
                <tbody>
                    {items.into_iter().map(|a| {
                        let since = a.fired_at.clone().unwrap_or_else(|| a.opened_at.clone());
                        let actions = silence.then(|| silence_shortcut(&a));
                        view! {
                            <tr data-alert-id=a.id.clone() data-state=a.state.clone() data-event=a.event.clone()>
                                <td>
                                    <Badge value=a.state.clone()/>
                                    {a.silenced.then(|| view! { <span class="badge tone-idle" data-testid="alert-silenced">"silenced"</span> })}
                                </td>
                                <td>{a.rule_name.clone()}</td>
                                <td>{a.event.replace('_', " ")}</td>
                                <td>{a.node_id.clone().map(|n| view! { <a class="node-link" href=format!("/nodes/{n}")>{n.clone()}</a> })}</td>
                                <td class="small">{a.detail.clone()}</td>
                                <td>{when(clock, Some(since))}</td>
                                <td>{when(clock, a.resolved_at.clone())}</td>
                                {actions}
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    })
}

/// "Silence 1 h / 4 h" for the alert's rule and node.
fn silence_shortcut(a: &Alert) -> impl IntoView + use<> {
    let node = a.node_id.clone().unwrap_or_default();
    let (rule_id, rule_name) = (a.rule_id.clone(), a.rule_name.clone());
    let forms = [("1h", "Silence 1 h"), ("4h", "Silence 4 h")]
        .into_iter()
        .map(move |(duration, label)| {
            let aria = format!("{label}: {rule_name} on {node}");
            let (rule_id, node) = (rule_id.clone(), node.clone());
            let comment = format!("silenced from the alerts page ({rule_name})");
            view! {
                <PostForm action=CreateSilence::PATH ok="Silenced." class="inline" outcome="alert-silence-outcome">
                    <input type="hidden" name="rule_id" value=rule_id/>
                    <input type="hidden" name="event" value=""/>
                    <input type="hidden" name="tenant" value=""/>
                    <input type="hidden" name="node" value=node/>
                    <input type="hidden" name="labels" value=""/>
                    <input type="hidden" name="duration" value=duration/>
                    <input type="hidden" name="comment" value=comment/>
                    <button type="submit" class="small" aria-label=aria data-testid="alert-silence">{label}</button>
                </PostForm>
            }
        })
        .collect_view();
    view! { <td class="actions">{forms}</td> }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Instant;
    use crate::model::alerts::LiveAlert;

    fn at(ms: i64) -> Instant {
        Instant {
            ms,
            text: String::new(),
        }
    }

    fn fetched(id: &str, ms: i64) -> Alert {
        Alert {
            id: id.into(),
            rule_id: "r".into(),
            rule_name: "down".into(),
            event: "node_offline".into(),
            tenant_id: None,
            node_id: Some(format!("n-{id}")),
            state: "firing".into(),
            detail: String::new(),
            opened_at: at(ms),
            fired_at: Some(at(ms)),
            resolved_at: None,
            silenced: false,
        }
    }

    fn pushed(id: &str, status: &str, ms: i64) -> (String, LiveAlert) {
        let a = LiveAlert {
            alert_id: id.into(),
            status: status.into(),
            event: "node_offline".into(),
            node_id: None,
            rule_name: "down".into(),
            headline: format!("pushed {id}"),
            at: at(ms),
        };
        (id.into(), a)
    }

    #[test]
    fn firing_adds_and_resolved_removes() {
        let base = vec![fetched("a", 1), fetched("b", 2)];
        let none = Default::default();
        let ids = |v: Vec<Firing>| v.into_iter().map(|f| f.id).collect::<Vec<_>>();
        assert_eq!(ids(firing_now(&base, &none)), vec!["b", "a"]);
        let p = [pushed("b", "resolved", 5), pushed("c", "firing", 9)]
            .into_iter()
            .collect();
        let now = firing_now(&base, &p);
        assert_eq!(now[0].headline, "pushed c", "newest first");
        assert_eq!(ids(now), vec!["c", "a"]);
    }
}
