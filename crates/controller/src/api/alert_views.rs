//! The alerting API's views of its records (`ritma_api::alerts`).

use ritma_api::alerts::{AlertView, ChannelView, DeliveryView, RuleView, SilenceView};
use ritma_db::alerts::{AlertRecord, ChannelRecord, DeliveryRecord, RuleRecord, SilenceRecord};
use ritma_protocol::alerts::AlertEvent;
use serde_json::Value;

use crate::error::ApiError;

fn stored_event(raw: &str) -> Result<AlertEvent, ApiError> {
    AlertEvent::parse(raw).ok_or_else(|| ApiError::Internal(format!("stored alert event {raw:?}")))
}

fn stored_labels(labels: Value) -> Result<std::collections::BTreeMap<String, String>, ApiError> {
    serde_json::from_value(labels).map_err(|e| ApiError::Internal(format!("stored labels: {e}")))
}

pub fn channel_view(c: ChannelRecord) -> ChannelView {
    ChannelView {
        id: c.id,
        org_id: c.org_id,
        name: c.name,
        kind: c.kind,
        target: c.target,
        created_by: c.created_by,
        created_at: c.created_at,
    }
}

pub fn delivery_view(d: DeliveryRecord) -> DeliveryView {
    DeliveryView {
        id: d.id,
        channel_id: d.channel_id,
        alert_id: d.alert_id,
        rule_name: d.rule_name,
        event: d.event,
        node_id: d.node_id,
        status: d.status,
        state: d.state,
        attempts: d.attempts,
        response_status: d.response_status,
        last_error: d.last_error,
        created_at: d.created_at,
        next_attempt_at: d.next_attempt_at,
        delivered_at: d.delivered_at,
    }
}

pub fn rule_view(r: RuleRecord) -> Result<RuleView, ApiError> {
    Ok(RuleView {
        event: stored_event(&r.event)?,
        labels: stored_labels(r.labels)?,
        id: r.id,
        org_id: r.org_id,
        name: r.name,
        tenant_id: r.tenant_id,
        for_secs: r.for_secs,
        repeat_secs: r.repeat_secs,
        threshold: r.threshold,
        channels: r.channels,
        created_by: r.created_by,
        created_at: r.created_at,
    })
}

pub fn silence_view(s: SilenceRecord) -> Result<SilenceView, ApiError> {
    Ok(SilenceView {
        event: s.event.as_deref().map(stored_event).transpose()?,
        labels: stored_labels(s.labels)?,
        id: s.id,
        org_id: s.org_id,
        rule_id: s.rule_id,
        tenant_id: s.tenant_id,
        node_id: s.node_id,
        comment: s.comment,
        created_by: s.created_by,
        starts_at: s.starts_at,
        ends_at: s.ends_at,
        active: s.active,
    })
}

pub fn alert_view(a: AlertRecord) -> Result<AlertView, ApiError> {
    Ok(AlertView {
        event: stored_event(&a.event)?,
        id: a.id,
        org_id: a.org_id,
        rule_id: a.rule_id,
        rule_name: a.rule_name,
        tenant_id: a.tenant_id,
        node_id: a.node_id,
        state: a.state,
        detail: a.detail,
        opened_at: a.opened_at,
        fired_at: a.fired_at,
        resolved_at: a.resolved_at,
        silenced: a.silenced,
    })
}
