//! Alerting: notification channels, alert rules, silences and the alerts
//! they raise (`/api/orgs/{org}/notification-channels`, `.../alert-rules`,
//! `.../silences`, `.../alerts`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ritma_protocol::alerts::AlertEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /api/orgs/{org}/notification-channels`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelCreate {
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
    /// `webhook`, `slack` or `email`.
    pub kind: String,
    /// webhook and slack: an http(s) URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub url: Option<String>,
    /// email: the recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// webhook: the HMAC key (made when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 16, max = 256))]
    pub secret: Option<String>,
}

/// A channel; its URL or address is sealed and only shown redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChannelView {
    pub id: Uuid,
    pub org_id: String,
    pub name: String,
    /// `webhook`, `slack` or `email`.
    pub kind: String,
    /// The URL's scheme, host and port, or the e-mail address.
    pub target: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// The reply to a create: the channel, and a webhook's signing secret, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChannelCreated {
    #[serde(flatten)]
    pub channel: ChannelView,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChannelList {
    pub items: Vec<ChannelView>,
}

/// `?limit=` of a channel's deliveries (1-500, default 100).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeliveryQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<i64>,
}

/// One notification sent (or being retried) to a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeliveryView {
    pub id: i64,
    pub channel_id: Option<Uuid>,
    pub alert_id: Option<Uuid>,
    pub rule_name: Option<String>,
    pub event: Option<String>,
    pub node_id: Option<String>,
    /// `firing`, `resolved` or `test`.
    pub status: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i32,
    pub response_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeliveryList {
    pub items: Vec<DeliveryView>,
}

/// `POST /api/orgs/{org}/alert-rules`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleCreate {
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
    /// Read as text, so an unknown event is named in the refusal.
    #[schemars(with = "AlertEvent")]
    pub event: String,
    /// Channel ids, 1 to 10.
    #[schemars(length(min = 1, max = 10))]
    pub channels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = crate::ID_PATTERN))]
    pub tenant_id: Option<String>,
    /// Nodes carrying all these labels (at most 16).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// How long the condition holds before the alert fires (0-604,800 s, default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 604_800))]
    pub for_secs: Option<i32>,
    /// Re-notify a firing alert this often; 0 never, else at least 60 (default 14,400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2_592_000))]
    pub repeat_secs: Option<i32>,
    /// ingest_lag: seconds; dead_letter_spike: dead letters in 5 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub threshold: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RuleView {
    pub id: Uuid,
    pub org_id: String,
    pub name: String,
    pub event: AlertEvent,
    pub tenant_id: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub for_secs: i32,
    pub repeat_secs: i32,
    pub threshold: Option<i64>,
    pub channels: Vec<Uuid>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RuleList {
    pub items: Vec<RuleView>,
}

/// `POST /api/orgs/{org}/silences`: a maintenance window; at least one
/// matcher, and `ends_at` or `duration_secs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceCreate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Uuid>")]
    pub rule_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<AlertEvent>")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = crate::ID_PATTERN))]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = crate::ID_PATTERN))]
    pub node_id: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub duration_secs: Option<i64>,
    /// Why (kept with the silence and in the audit trail).
    #[schemars(length(min = 1, max = 512))]
    pub comment: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SilenceView {
    pub id: Uuid,
    pub org_id: String,
    pub rule_id: Option<Uuid>,
    pub event: Option<AlertEvent>,
    pub tenant_id: Option<String>,
    pub node_id: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub comment: String,
    pub created_by: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Now within its window.
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SilenceList {
    pub items: Vec<SilenceView>,
}

/// `GET /api/orgs/{org}/alerts?state=&limit=`: pending and firing by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AlertQuery {
    /// `pending`, `firing` or `resolved`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["pending", "firing", "resolved"]))]
    pub state: Option<String>,
    /// 1-1,000, default 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AlertView {
    pub id: Uuid,
    pub org_id: String,
    pub rule_id: Uuid,
    pub rule_name: String,
    pub event: AlertEvent,
    pub tenant_id: Option<String>,
    pub node_id: Option<String>,
    /// `pending`, `firing` or `resolved`.
    pub state: String,
    pub detail: String,
    pub opened_at: DateTime<Utc>,
    pub fired_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// A silence matched it: it is not notified.
    pub silenced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AlertList {
    pub items: Vec<AlertView>,
}
