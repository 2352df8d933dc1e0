//! Server functions of alerting: alerts, rules, notification channels (with their
//! delivery log and test sends) and silences. Request bodies are the typed models of
//! `crate::model::alerts`; the controller's refusals come back as its message.

use crate::model::alerts::{Alert, AlertsView, ChannelWithLog, RulesView, Silence};
#[cfg(feature = "ssr")]
use crate::model::alerts::{Channel, ChannelCreated, Delivery};
use crate::model::{AppError, FormReply};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
use crate::server::api::uuid_path;
#[cfg(feature = "ssr")]
use ritma_api::params::{NoParams, OrgPath};
#[cfg(feature = "ssr")]
use ritma_api::routes;

#[cfg(feature = "ssr")]
fn bad(msg: String) -> AppError {
    AppError::BadRequest(msg)
}

/// A trimmed value, None when empty.
#[cfg(feature = "ssr")]
fn optional(value: &str) -> Option<String> {
    Some(value.trim().to_string()).filter(|v| !v.is_empty())
}

/// Deliveries shown per channel.
pub const DELIVERY_LOG_SIZE: u32 = 20;

/// How far back the alerts page lists resolved alerts.
#[cfg(feature = "ssr")]
const RESOLVED_WINDOW_MS: i64 = 86_400_000;

#[cfg(feature = "ssr")]
async fn alerts_in(
    st: &crate::server::AppState,
    s: &crate::server::session::Session,
    state: Option<&str>,
) -> Result<Vec<Alert>, AppError> {
    use crate::model::fleet::Items;
    let query = ritma_api::alerts::AlertQuery {
        state: state.map(str::to_owned),
        limit: None,
    };
    let list: Items<Alert> = st
        .api
        .call_as::<routes::ListAlerts, _>(&s.token, &OrgPath::new(&s.org), &query, &())
        .await?;
    Ok(list.items)
}

/// Open alerts (pending and firing) and those resolved in the last day.
#[server]
pub async fn get_alerts() -> Result<AlertsView, AppError> {
    let (st, s) = super::ctx::current().await?;
    let open = alerts_in(&st, &s, None).await?;
    let since = chrono::Utc::now().timestamp_millis() - RESOLVED_WINDOW_MS;
    let mut resolved = alerts_in(&st, &s, Some("resolved")).await?;
    resolved.retain(|a| a.resolved_at.as_ref().is_some_and(|t| t.ms >= since));
    Ok(AlertsView { open, resolved })
}

/// Firing, unsilenced alerts: the banner's seed.
#[server]
pub async fn get_firing_alerts() -> Result<Vec<Alert>, AppError> {
    let (st, s) = super::ctx::current().await?;
    let mut list = alerts_in(&st, &s, Some("firing")).await?;
    list.retain(|a| !a.silenced);
    Ok(list)
}

// ---------------------------------------------------------------- channels

#[cfg(feature = "ssr")]
async fn channels_of(
    st: &crate::server::AppState,
    s: &crate::server::session::Session,
) -> Result<Vec<Channel>, AppError> {
    use crate::model::fleet::Items;
    let list: Items<Channel> = st
        .api
        .call_as::<routes::ListChannels, _>(&s.token, &OrgPath::new(&s.org), &NoParams {}, &())
        .await?;
    Ok(list.items)
}

/// Every channel with its latest deliveries.
#[server]
pub async fn get_channels() -> Result<Vec<ChannelWithLog>, AppError> {
    use crate::model::fleet::Items;
    let (st, s) = super::ctx::current().await?;
    let channels = channels_of(&st, &s).await?;
    let query = ritma_api::alerts::DeliveryQuery {
        limit: Some(i64::from(DELIVERY_LOG_SIZE)),
    };
    let logs = channels.iter().map(|c| {
        let path = uuid_path(&s.org, &c.id);
        let (api, token, query) = (st.api.clone(), s.token.clone(), query.clone());
        async move {
            let path = path.map_err(|e| e.to_string())?;
            api.call_as::<routes::ListDeliveries, Items<Delivery>>(&token, &path, &query, &())
                .await
                .map(|l| l.items)
                .map_err(|e| e.to_string())
        }
    });
    let logs = futures::future::join_all(logs).await;
    Ok(channels
        .into_iter()
        .zip(logs)
        .map(|(channel, deliveries)| ChannelWithLog {
            channel,
            deliveries,
        })
        .collect())
}

/// A new channel; `target` is the URL (webhook, Slack) or the address (e-mail).
/// The reply's panel shows a webhook's signing secret, this once.
#[server]
pub async fn create_channel(
    name: String,
    kind: String,
    target: String,
    secret: String,
) -> Result<FormReply, AppError> {
    use crate::model::alerts::CHANNEL_KINDS;
    use crate::model::fleet::one_of;
    use ritma_api::alerts::ChannelCreate;
    let (st, s) = super::ctx::current().await?;
    let kind = one_of("kind", kind.trim(), &CHANNEL_KINDS).map_err(bad)?;
    let target =
        optional(&target).ok_or_else(|| bad("enter the URL or the e-mail address".into()))?;
    let (url, address) = if kind == "email" {
        (None, Some(target))
    } else {
        (Some(target), None)
    };
    let body = ChannelCreate {
        name: name.trim().to_string(),
        secret: optional(&secret).filter(|_| kind == "webhook"),
        kind,
        url,
        address,
    };
    let created: ChannelCreated = st
        .api
        .call_as::<routes::CreateChannel, _>(&s.token, &OrgPath::new(&s.org), &NoParams {}, &body)
        .await?;
    Ok(FormReply {
        message: Some(format!("Channel {} added.", created.channel.name)),
        html: created.secret.map(crate::app::channel_secret_html),
    })
}

#[server]
pub async fn delete_channel(id: String) -> Result<(), AppError> {
    let (st, s) = super::ctx::current().await?;
    let path = uuid_path(&s.org, &id)?;
    st.api
        .call::<routes::DeleteChannel>(&s.token, &path, &NoParams {}, &())
        .await
}

/// Sends a test notification now; the reply says how it went, in one line.
#[server]
pub async fn test_channel(id: String) -> Result<FormReply, AppError> {
    let (st, s) = super::ctx::current().await?;
    let path = uuid_path(&s.org, &id)?;
    let delivery: Delivery = st
        .api
        .call_as::<routes::TestChannel, _>(&s.token, &path, &NoParams {}, &())
        .await?;
    Ok(FormReply {
        message: Some(delivery.test_text()),
        html: None,
    })
}

// ---------------------------------------------------------------- rules

#[server]
pub async fn get_rules() -> Result<RulesView, AppError> {
    use crate::model::alerts::Rule;
    use crate::model::fleet::Items;
    let (st, s) = super::ctx::current().await?;
    let rules: Items<Rule> = st
        .api
        .call_as::<routes::ListAlertRules, _>(&s.token, &OrgPath::new(&s.org), &NoParams {}, &())
        .await?;
    let channels = channels_of(&st, &s).await?;
    Ok(RulesView {
        rules: rules.items,
        channels,
    })
}

/// A new rule. `channels`: channel ids, comma separated; `labels`: `key=value` lines;
/// durations as "90s", "5m", "2h" (empty `for`: at once; empty `repeat`: every 4 h).
#[server]
pub async fn create_rule(
    name: String,
    event: String,
    tenant: String,
    labels: String,
    for_text: String,
    repeat_text: String,
    threshold: String,
    channels: String,
) -> Result<crate::model::alerts::Rule, AppError> {
    use crate::model::alerts::{ALERT_EVENTS, needs_threshold, parse_duration};
    use crate::model::fleet::{one_of, parse_list};
    use ritma_api::alerts::RuleCreate;
    let (st, s) = super::ctx::current().await?;
    let event = one_of("event", event.trim(), &ALERT_EVENTS).map_err(bad)?;
    let threshold = match optional(&threshold) {
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| bad(format!("threshold {t:?} is not a whole number")))?,
        ),
        None if needs_threshold(&event) => {
            return Err(bad(format!("{event} needs a threshold")));
        }
        None => None,
    };
    let repeat_secs = match optional(&repeat_text) {
        Some(r) => parse_duration("repeat", &r).map_err(bad)?,
        None => 4 * 3600,
    };
    let body = RuleCreate {
        name: name.trim().to_string(),
        channels: parse_list(&channels),
        tenant_id: optional(&tenant),
        labels: super::parse_labels(&labels).map_err(bad)?,
        for_secs: Some(seconds(
            "for",
            parse_duration("for", &for_text).map_err(bad)?,
        )?),
        repeat_secs: Some(seconds("repeat", repeat_secs)?),
        threshold,
        event,
    };
    st.api
        .call_as::<routes::CreateAlertRule, _>(&s.token, &OrgPath::new(&s.org), &NoParams {}, &body)
        .await
}

#[server]
pub async fn delete_rule(id: String) -> Result<(), AppError> {
    let (st, s) = super::ctx::current().await?;
    let path = uuid_path(&s.org, &id)?;
    st.api
        .call::<routes::DeleteAlertRule>(&s.token, &path, &NoParams {}, &())
        .await
}

// ---------------------------------------------------------------- silences

#[server]
pub async fn get_silences() -> Result<Vec<Silence>, AppError> {
    use crate::model::fleet::Items;
    let (st, s) = super::ctx::current().await?;
    let list: Items<Silence> = st
        .api
        .call_as::<routes::ListSilences, _>(&s.token, &OrgPath::new(&s.org), &NoParams {}, &())
        .await?;
    let mut items = list.items;
    // Active first, then the most recently ended.
    items.sort_by_key(|s| (!s.active, std::cmp::Reverse(s.ends_at.ms)));
    Ok(items)
}

/// A maintenance window from now for `duration` ("2h", "30m"); empty matchers match
/// every alert of the org.
#[server]
pub async fn create_silence(
    rule_id: String,
    event: String,
    tenant: String,
    node: String,
    labels: String,
    duration: String,
    comment: String,
) -> Result<Silence, AppError> {
    use crate::model::alerts::parse_duration;
    use ritma_api::alerts::SilenceCreate;
    let (st, s) = super::ctx::current().await?;
    let duration_secs = parse_duration("duration", &duration).map_err(bad)?;
    if duration_secs <= 0 {
        return Err(bad("enter how long the silence lasts (e.g. 2h)".into()));
    }
    let body = SilenceCreate {
        rule_id: optional(&rule_id),
        event: optional(&event),
        tenant_id: optional(&tenant),
        node_id: optional(&node),
        labels: super::parse_labels(&labels).map_err(bad)?,
        ends_at: None,
        duration_secs: Some(duration_secs),
        comment: comment.trim().to_string(),
    };
    st.api
        .call_as::<routes::CreateSilence, _>(&s.token, &OrgPath::new(&s.org), &NoParams {}, &body)
        .await
}

/// Ends a silence now (it stays listed).
#[server]
pub async fn end_silence(id: String) -> Result<(), AppError> {
    let (st, s) = super::ctx::current().await?;
    let path = uuid_path(&s.org, &id)?;
    st.api
        .call::<routes::EndSilence>(&s.token, &path, &NoParams {}, &())
        .await
}

/// A duration as the rule API takes it (whole seconds that fit in 32 bits).
#[cfg(feature = "ssr")]
fn seconds(field: &str, secs: i64) -> Result<i32, AppError> {
    i32::try_from(secs).map_err(|_| bad(format!("{field} is too long")))
}
