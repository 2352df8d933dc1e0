//! `/api/orgs/{org}/nodes`: the inventory.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ritma_protocol::NodeStatus;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A node as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeView {
    pub id: String,
    pub org_id: String,
    pub tenant_id: String,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    pub capabilities: Vec<String>,
    /// `flapping`: the node's liveness changed RITMA_FLAPPING_TRANSITIONS times
    /// within RITMA_FLAPPING_WINDOW_SECS; shown until it has been steady that long.
    pub status: NodeStatus,
    pub status_changed_at: DateTime<Utc>,
    pub enrolled_at: DateTime<Utc>,
    pub agent_version: Option<String>,
    pub policy_version: Option<String>,
    pub last_policy_sync_at: Option<DateTime<Utc>>,
    pub last_evidence_batch_at: Option<DateTime<Utc>>,
    pub key_id: Option<String>,
    pub interval_secs: i32,
    /// The controller's receive time of the last heartbeat.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// The node's own clock at that heartbeat.
    pub last_sent_at: Option<DateTime<Utc>>,
    pub last_seq: i64,
    pub connector_count: i64,
    pub slo_counters: Option<BTreeMap<String, u64>>,
    /// From the last heartbeat; absent before the first.
    pub host: Option<HostView>,
    pub spool: Option<SpoolView>,
    pub public_key: String,
    /// What the controller assigns, e.g. `baseline@3`.
    pub policy_assigned: Option<String>,
    pub policy_mode: Option<String>,
    /// What the node applies differs from its assignment past the grace period.
    pub drifted: bool,
    pub drift_since: Option<DateTime<Utc>>,
    /// `revoked`, `compromised` or `expired`: the node signs with such a key.
    pub key_warning: Option<String>,
    /// Why the node refused the policy it was last served (bad signature,
    /// another node's assignment); it keeps its previous one meanwhile.
    pub policy_rejected: Option<String>,
}

/// The host facts of the node's last heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HostView {
    pub hostname: String,
    pub os: String,
    pub kernel: Option<String>,
    pub arch: Option<String>,
    pub cpus: Option<i32>,
    pub memory_bytes: Option<i64>,
    pub uptime_secs: Option<i64>,
}

/// The node's local spool: messages waiting for the bus, and those it had to drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SpoolView {
    pub depth: i64,
    pub dropped: i64,
}

/// `GET /api/orgs/{org}/nodes`: the filter, sort and page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeListQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// One status or several, comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `key=value`; several separated by commas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Text in the id or hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub q: Option<String>,
    /// `name`, `id`, `last_seen` or `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["name", "id", "last_seen", "status"]))]
    pub sort: Option<String>,
    /// `asc` or `desc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["asc", "desc"]))]
    pub order: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// `true`: only nodes whose policy has drifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drifted: Option<bool>,
    /// `true`: only nodes signing with a revoked, compromised or expired key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_warning: Option<bool>,
}

/// One page of nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeList {
    pub items: Vec<NodeView>,
    /// Pass back as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
    /// Matching nodes, counted up to 10,000 (exact counts per status: `/nodes/summary`) ...
    pub total: i64,
    /// ... false when more match (then `total` is 10,000).
    pub total_exact: bool,
}

/// `GET /api/orgs/{org}/nodes/{id}`: the node and its latest status changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeDetail {
    #[serde(flatten)]
    pub node: NodeView,
    /// Newest first, at most 100.
    pub status_history: Vec<StatusChange>,
}

/// One change of a node's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StatusChange {
    pub from_status: NodeStatus,
    pub to_status: NodeStatus,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// `GET /api/orgs/{org}/nodes/summary`: exact counts, for dashboards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeSummary {
    pub total: i64,
    /// Every status, zero included.
    pub by_status: BTreeMap<String, i64>,
    pub drifted: i64,
    pub key_warnings: i64,
}

/// `GET /api/orgs/{org}/nodes/config-template?tenant_id=`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConfigTemplateQuery {
    /// The tenant the new node joins (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
}
