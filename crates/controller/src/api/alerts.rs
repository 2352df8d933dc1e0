//! Alerting API: notification channels (with a test send and their delivery
//! log), alert rules, silences, and the alerts themselves. Every change is
//! audited; channel URLs and secrets are sealed and never shown again.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::Utc;
use ritma_api::alerts::{
    AlertList, AlertQuery, ChannelCreate, ChannelCreated, ChannelList, DeliveryList, DeliveryQuery,
    DeliveryView, RuleCreate, RuleList, RuleView, SilenceCreate, SilenceList, SilenceView,
};
use ritma_db::alerts::{self as store, ChannelRecord, DeliveryNew, RuleRecord, SilenceRecord};
use ritma_protocol::alerts::{AlertEvent, AlertNotification, AlertStatus};
use ritma_protocol::{NodeId, OrgId, SCHEMA_VERSION, TenantId};
use serde_json::{Value, json};
use uuid::Uuid;

use super::alert_views::{alert_view, channel_view, delivery_view, rule_view, silence_view};
use super::fleet_common::org_authorized;
use super::{AppState, JsonBody, PathParams, QueryParams, path_id};
use crate::alerts::deliver::send_to_channel;
use crate::alerts::send::{ChannelSecret, SendError, Sender, seal_context};
use crate::alerts::target;
use crate::audit::{self, WithStates};
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::metrics::DeliveryOutcome;

/// Per org: enough for any team, small enough that nobody fills the tables.
const MAX_CHANNELS: i64 = 50;
const MAX_RULES: i64 = 200;
const MAX_ACTIVE_SILENCES: i64 = 500;
/// A silence lasts at most this long (a maintenance window, not a mute button).
const MAX_SILENCE_SECS: i64 = 90 * 24 * 3600;
const MAX_NAME: usize = 64;

fn name_check(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "name must be 1 to {MAX_NAME} printable characters"
        )));
    }
    Ok(name.to_owned())
}

fn labels_check(labels: &BTreeMap<String, String>) -> Result<Value, ApiError> {
    if labels.len() > 16
        || labels
            .iter()
            .any(|(k, v)| k.is_empty() || k.len() > 63 || v.len() > 256)
    {
        return Err(ApiError::BadRequest(
            "labels: at most 16, keys of 1 to 63 and values of at most 256 characters".into(),
        ));
    }
    Ok(json!(labels))
}

fn tenant_check(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    raw.map(|t| {
        TenantId::new(t)
            .map(|t| t.as_str().to_owned())
            .map_err(|e| ApiError::BadRequest(format!("tenant_id: {e}")))
    })
    .transpose()
}

fn uuid_of(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    path_id(raw, what)
}

/// `POST /api/orgs/{org}/notification-channels`
pub async fn channel_create(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
    JsonBody(body): JsonBody<ChannelCreate>,
) -> Result<(StatusCode, Json<ChannelCreated>), ApiError> {
    let org = org_authorized(&p, Action::ManageAlerts, &org)?;
    let name = name_check(&body.name)?;
    let allowed = &state.alerting.settings.allowed_networks;
    let bad = |e: target::TargetError| ApiError::BadRequest(format!("url: {e}"));
    let (target, sealed) = match body.kind.as_str() {
        "webhook" | "slack" => {
            let raw = body.url.as_deref().ok_or_else(|| {
                ApiError::BadRequest(format!("a {} channel needs a url", body.kind))
            })?;
            if raw.len() > 2048 {
                return Err(ApiError::BadRequest("url: at most 2048 characters".into()));
            }
            let url = target::parse(raw).map_err(bad)?;
            target::check_literal(&url, allowed).map_err(bad)?;
            let secret = match (body.kind.as_str(), &body.secret) {
                ("webhook", Some(s)) if s.len() < 16 || s.len() > 256 => {
                    return Err(ApiError::BadRequest(
                        "secret: 16 to 256 characters (or leave it out and one is made)".into(),
                    ));
                }
                ("webhook", Some(s)) => Some(s.clone()),
                ("webhook", None) => Some(crate::crypto::new_secret("rwhs_")),
                _ => None,
            };
            (
                target::redacted(&url),
                ChannelSecret {
                    url: Some(url.to_string()),
                    address: None,
                    secret,
                },
            )
        }
        "email" => {
            let address =
                body.address.as_deref().map(str::trim).ok_or_else(|| {
                    ApiError::BadRequest("an email channel needs an address".into())
                })?;
            address
                .parse::<lettre::Address>()
                .map_err(|e| ApiError::BadRequest(format!("address: {e}")))?;
            if state.alerting.settings.smtp_url.is_none() {
                return Err(ApiError::BadRequest(
                    "e-mail channels need an SMTP relay: the operator sets RITMA_SMTP_URL".into(),
                ));
            }
            (
                address.to_owned(),
                ChannelSecret {
                    url: None,
                    address: Some(address.to_owned()),
                    secret: None,
                },
            )
        }
        other => {
            return Err(ApiError::BadRequest(format!(
                "kind {other:?}: use \"webhook\", \"slack\" or \"email\""
            )));
        }
    };
    if store::channel_count(&state.pool, org.as_str()).await? >= MAX_CHANNELS {
        return Err(ApiError::Conflict(format!(
            "an org has at most {MAX_CHANNELS} notification channels"
        )));
    }
    let channel = ChannelRecord {
        id: Uuid::now_v7(),
        org_id: org.as_str().to_owned(),
        name,
        kind: body.kind.clone(),
        target,
        created_by: p.actor(),
        created_at: Utc::now(),
    };
    let plain = serde_json::to_vec(&sealed).map_err(|e| ApiError::Internal(e.to_string()))?;
    let enc = state
        .accounts
        .seal(&plain, &seal_context(org.as_str(), channel.id));
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    store::channel_insert(&mut tx, &channel, &enc)
        .await
        .map_err(|e| conflict_on_unique(e, "a channel with this name exists"))?;
    audit::record(
        &mut tx,
        audit::entry(
            &p,
            Some(org.as_str()),
            "alert.channel.create",
            channel.id.to_string(),
        )
        .states(None, Some(json!(channel))),
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    Ok((
        StatusCode::CREATED,
        Json(ChannelCreated {
            channel: channel_view(channel),
            secret: sealed.secret,
        }),
    ))
}

fn conflict_on_unique(e: ritma_db::DbError, message: &str) -> ApiError {
    if e.is_unique_violation() {
        ApiError::Conflict(message.into())
    } else {
        e.into()
    }
}

/// `GET /api/orgs/{org}/notification-channels`
pub async fn channel_list(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
) -> Result<Json<ChannelList>, ApiError> {
    let org = org_authorized(&p, Action::ReadFleet, &org)?;
    let items = store::channel_list(&state.pool, org.as_str()).await?;
    Ok(Json(ChannelList {
        items: items.into_iter().map(channel_view).collect(),
    }))
}

async fn channel_of(state: &AppState, org: &OrgId, raw: &str) -> Result<ChannelRecord, ApiError> {
    let id = uuid_of(raw, "channel")?;
    store::channel_get(&state.pool, org.as_str(), id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("channel {raw}")))
}

/// `DELETE /api/orgs/{org}/notification-channels/{id}`: refused while a rule sends to it.
pub async fn channel_delete(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams((org, id)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let org = org_authorized(&p, Action::ManageAlerts, &org)?;
    let channel = channel_of(&state, &org, &id).await?;
    let users = store::channel_users(&state.pool, org.as_str(), channel.id).await?;
    if !users.is_empty() {
        return Err(ApiError::Conflict(format!(
            "rules send to this channel: {}; change or delete them first",
            users.join(", ")
        )));
    }
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    let gone = store::channel_delete(&mut tx, org.as_str(), channel.id).await?;
    audit::record(
        &mut tx,
        audit::entry(&p, Some(org.as_str()), "alert.channel.delete", id)
            .states(gone.map(|c| json!(c)), None),
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/orgs/{org}/notification-channels/{id}/test`: one test
/// notification now; the outcome is answered and kept in the delivery log.
pub async fn channel_test(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams((org, id)): PathParams<(String, String)>,
) -> Result<Json<DeliveryView>, ApiError> {
    let org = org_authorized(&p, Action::ManageAlerts, &org)?;
    let channel = channel_of(&state, &org, &id).await?;
    super::fleet_common::work_budget(
        &state,
        &format!("alert-test:{}", channel.id),
        "test notifications for this channel",
    )?;
    let n = AlertNotification {
        v: SCHEMA_VERSION,
        alert_id: Uuid::nil(),
        org_id: org.clone(),
        tenant_id: None,
        node_id: None,
        event: AlertEvent::NodeOffline,
        status: AlertStatus::Test,
        at: Utc::now(),
        rule_id: Uuid::nil(),
        rule_name: "test".into(),
        summary: format!("test notification from {}", p.actor()),
        detail: format!("sent to channel {}", channel.name),
    };
    let row = DeliveryNew {
        org_id: org.as_str().to_owned(),
        channel_id: Some(channel.id),
        alert_id: None,
        status: "test".into(),
        notification: serde_json::to_value(&n).map_err(|e| ApiError::Internal(e.to_string()))?,
    };
    let delivery_id = store::delivery_insert_one(&state.pool, &row).await?;
    let sender = Sender {
        settings: &state.alerting.settings,
        accounts: &state.accounts,
    };
    let outcome = send_to_channel(
        &state.pool,
        &state.accounts,
        &sender,
        channel.id,
        &n,
        delivery_id,
    )
    .await;
    let (status, error) = match &outcome {
        Ok(s) => (*s, None),
        Err(e @ (SendError::Retry(..) | SendError::Permanent(..))) => {
            (e.status(), Some(e.to_string()))
        }
    };
    // A test send is tried once: a failure is final.
    state.metrics.alert_delivery(if error.is_none() {
        DeliveryOutcome::Delivered
    } else {
        DeliveryOutcome::Failed
    });
    store::delivery_record(
        &state.pool,
        delivery_id,
        status.map(i32::from),
        error.as_deref(),
        None,
    )
    .await?;
    let record = store::delivery_get(&state.pool, delivery_id)
        .await?
        .ok_or_else(|| ApiError::Internal("test delivery vanished".into()))?;
    Ok(Json(delivery_view(record)))
}

/// `GET /api/orgs/{org}/notification-channels/{id}/deliveries`: newest first.
pub async fn channel_deliveries(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams((org, id)): PathParams<(String, String)>,
    QueryParams(q): QueryParams<DeliveryQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let org = org_authorized(&p, Action::ReadFleet, &org)?;
    let channel = channel_of(&state, &org, &id).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    let items = store::delivery_list(&state.pool, org.as_str(), channel.id, limit).await?;
    Ok(Json(DeliveryList {
        items: items.into_iter().map(delivery_view).collect(),
    }))
}

/// `POST /api/orgs/{org}/alert-rules`
pub async fn rule_create(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
    JsonBody(body): JsonBody<RuleCreate>,
) -> Result<(StatusCode, Json<RuleView>), ApiError> {
    let org = org_authorized(&p, Action::ManageAlerts, &org)?;
    let name = name_check(&body.name)?;
    let event = AlertEvent::parse(&body.event).ok_or_else(|| {
        let all: Vec<&str> = AlertEvent::ALL.iter().map(|e| e.as_str()).collect();
        ApiError::BadRequest(format!(
            "event {:?}: use one of {}",
            body.event,
            all.join(", ")
        ))
    })?;
    if event.is_control_plane() && !p.is_operator() {
        return Err(ApiError::Forbidden(format!(
            "{} watches the whole control plane: only its operators may make such rules",
            event.as_str()
        )));
    }
    let threshold = match (event.needs_threshold(), body.threshold) {
        (true, Some(t)) if t >= 0 => Some(t),
        (true, _) => {
            return Err(ApiError::BadRequest(format!(
                "{} needs a threshold of 0 or more",
                event.as_str()
            )));
        }
        (false, Some(_)) => {
            return Err(ApiError::BadRequest(format!(
                "{} takes no threshold",
                event.as_str()
            )));
        }
        (false, None) => None,
    };
    let for_secs = body.for_secs.unwrap_or(0);
    let repeat_secs = body.repeat_secs.unwrap_or(4 * 3600);
    if !(0..=7 * 24 * 3600).contains(&for_secs) {
        return Err(ApiError::BadRequest("for_secs: 0 to 604800".into()));
    }
    if repeat_secs != 0 && !(60..=30 * 24 * 3600).contains(&repeat_secs) {
        return Err(ApiError::BadRequest(
            "repeat_secs: 0 (never) or 60 to 2592000".into(),
        ));
    }
    if body.channels.is_empty() || body.channels.len() > 10 {
        return Err(ApiError::BadRequest("channels: 1 to 10 channel ids".into()));
    }
    let mut channels = Vec::new();
    for raw in &body.channels {
        let id: Uuid = raw
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("channel {raw} is not an id")))?;
        // Another org's channel is as unknown as a missing one.
        if store::channel_get(&state.pool, org.as_str(), id)
            .await?
            .is_none()
        {
            return Err(ApiError::BadRequest(format!(
                "channel {raw} does not exist in {org}"
            )));
        }
        if !channels.contains(&id) {
            channels.push(id);
        }
    }
    if store::rule_count(&state.pool, org.as_str()).await? >= MAX_RULES {
        return Err(ApiError::Conflict(format!(
            "an org has at most {MAX_RULES} alert rules"
        )));
    }
    let rule = RuleRecord {
        id: Uuid::now_v7(),
        org_id: org.as_str().to_owned(),
        name,
        event: event.as_str().into(),
        tenant_id: tenant_check(body.tenant_id.as_deref())?,
        labels: labels_check(&body.labels)?,
        for_secs,
        repeat_secs,
        threshold,
        channels,
        created_by: p.actor(),
        created_at: Utc::now(),
    };
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    store::rule_insert(&mut tx, &rule)
        .await
        .map_err(|e| conflict_on_unique(e, "a rule with this name exists"))?;
    crate::alerts::evaluate::seed_rule(&mut tx, &rule).await?;
    audit::record(
        &mut tx,
        audit::entry(
            &p,
            Some(org.as_str()),
            "alert.rule.create",
            rule.id.to_string(),
        )
        .states(None, Some(json!(rule))),
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    state.alerting.evaluate.notify_one();
    Ok((StatusCode::CREATED, Json(rule_view(rule)?)))
}

/// `GET /api/orgs/{org}/alert-rules`
pub async fn rule_list(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
) -> Result<Json<RuleList>, ApiError> {
    let org = org_authorized(&p, Action::ReadFleet, &org)?;
    let items = store::rule_list(&state.pool, org.as_str()).await?;
    Ok(Json(RuleList {
        items: items.into_iter().map(rule_view).collect::<Result<_, _>>()?,
    }))
}

/// `DELETE /api/orgs/{org}/alert-rules/{id}`: its alerts go with it, quietly.
pub async fn rule_delete(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams((org, id)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let org = org_authorized(&p, Action::ManageAlerts, &org)?;
    let rule_id = uuid_of(&id, "rule")?;
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    let gone = store::rule_delete(&mut tx, org.as_str(), rule_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("rule {id}")))?;
    audit::record(
        &mut tx,
        audit::entry(&p, Some(org.as_str()), "alert.rule.delete", id)
            .states(Some(json!(gone)), None),
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/orgs/{org}/silences`: a maintenance window. Node admins may
/// make them (they do the maintenance); at least one matcher is required.
pub async fn silence_create(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
    JsonBody(body): JsonBody<SilenceCreate>,
) -> Result<(StatusCode, Json<SilenceView>), ApiError> {
    let org = org_authorized(&p, Action::ManageNodes, &org)?;
    let comment = body.comment.trim();
    if comment.is_empty() || comment.len() > 512 {
        return Err(ApiError::BadRequest(
            "comment: say why, in 1 to 512 characters".into(),
        ));
    }
    let now = Utc::now();
    let ends_at = match (body.ends_at, body.duration_secs) {
        (Some(at), None) => at,
        (None, Some(secs)) if secs > 0 => {
            now + chrono::Duration::seconds(secs.min(MAX_SILENCE_SECS))
        }
        _ => {
            return Err(ApiError::BadRequest(
                "give either ends_at or a positive duration_secs".into(),
            ));
        }
    };
    if ends_at <= now || ends_at > now + chrono::Duration::seconds(MAX_SILENCE_SECS) {
        return Err(ApiError::BadRequest(
            "ends_at must be in the future and at most 90 days away".into(),
        ));
    }
    let rule_id = match &body.rule_id {
        Some(raw) => {
            let id: Uuid = raw
                .parse()
                .map_err(|_| ApiError::BadRequest(format!("rule {raw} is not an id")))?;
            let known = store::rule_list(&state.pool, org.as_str())
                .await?
                .iter()
                .any(|r| r.id == id);
            if !known {
                return Err(ApiError::BadRequest(format!(
                    "rule {raw} does not exist in {org}"
                )));
            }
            Some(id)
        }
        None => None,
    };
    let event = body
        .event
        .as_deref()
        .map(|e| {
            AlertEvent::parse(e)
                .map(|e| e.as_str().to_owned())
                .ok_or_else(|| ApiError::BadRequest(format!("event {e:?} is unknown")))
        })
        .transpose()?;
    let node_id = body
        .node_id
        .as_deref()
        .map(|n| {
            NodeId::new(n)
                .map(|n| n.as_str().to_owned())
                .map_err(|e| ApiError::BadRequest(format!("node_id: {e}")))
        })
        .transpose()?;
    let labels = labels_check(&body.labels)?;
    let tenant_id = tenant_check(body.tenant_id.as_deref())?;
    if rule_id.is_none()
        && event.is_none()
        && tenant_id.is_none()
        && node_id.is_none()
        && body.labels.is_empty()
    {
        return Err(ApiError::BadRequest(
            "a silence needs at least one matcher (rule_id, event, tenant_id, node_id or labels)"
                .into(),
        ));
    }
    if store::silence_active_count(&state.pool, org.as_str()).await? >= MAX_ACTIVE_SILENCES {
        return Err(ApiError::Conflict(format!(
            "an org has at most {MAX_ACTIVE_SILENCES} active silences"
        )));
    }
    let draft = SilenceRecord {
        id: Uuid::now_v7(),
        org_id: org.as_str().to_owned(),
        rule_id,
        event,
        tenant_id,
        node_id,
        labels,
        comment: comment.to_owned(),
        created_by: p.actor(),
        starts_at: now,
        ends_at,
        active: true,
    };
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    let silence = store::silence_insert(&mut tx, &draft).await?;
    audit::record(
        &mut tx,
        audit::entry(
            &p,
            Some(org.as_str()),
            "alert.silence.create",
            silence.id.to_string(),
        )
        .states(None, Some(json!(silence))),
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    Ok((StatusCode::CREATED, Json(silence_view(silence)?)))
}

/// `GET /api/orgs/{org}/silences`
pub async fn silence_list(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
) -> Result<Json<SilenceList>, ApiError> {
    let org = org_authorized(&p, Action::ReadFleet, &org)?;
    let items = store::silence_list(&state.pool, org.as_str()).await?;
    Ok(Json(SilenceList {
        items: items
            .into_iter()
            .map(silence_view)
            .collect::<Result<_, _>>()?,
    }))
}

/// `DELETE /api/orgs/{org}/silences/{id}`: ends it now (kept in the list).
pub async fn silence_end(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams((org, id)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let org = org_authorized(&p, Action::ManageNodes, &org)?;
    let silence_id = uuid_of(&id, "silence")?;
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    let ended = store::silence_end(&mut tx, org.as_str(), silence_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("silence {id}")))?;
    audit::record(
        &mut tx,
        audit::entry(&p, Some(org.as_str()), "alert.silence.end", id)
            .states(None, Some(json!(ended))),
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    // What the silence held back is due now.
    state.alerting.evaluate.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/orgs/{org}/alerts?state=firing|pending|resolved`
pub async fn alert_list(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
    QueryParams(q): QueryParams<AlertQuery>,
) -> Result<Json<AlertList>, ApiError> {
    let org = org_authorized(&p, Action::ReadFleet, &org)?;
    let states: Vec<&str> = match q.state.as_deref() {
        None | Some("") => vec!["pending", "firing"],
        Some(s @ ("pending" | "firing" | "resolved")) => vec![s],
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "state {other:?}: use pending, firing or resolved"
            )));
        }
    };
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    let items = store::alert_list(&state.pool, org.as_str(), &states, limit).await?;
    Ok(Json(AlertList {
        items: items
            .into_iter()
            .map(alert_view)
            .collect::<Result<_, _>>()?,
    }))
}
