//! The controller's own state: liveness, readiness, the org's ingest
//! counters, its control key and a new node's configuration template.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `GET /healthz`: the process is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// `GET /readyz`: ready when the database answers and the bus connection
/// is up (200; 503 with the same body otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Readiness {
    pub ready: bool,
    pub database: bool,
    pub bus: bool,
    pub ingest: IngestProgress,
}

/// This controller's ingest since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IngestProgress {
    pub batches: u64,
    pub messages: u64,
    pub dead_letters: u64,
    pub db_failures: u64,
}

/// What the ingest did with an org's messages: accepted; over the node's or
/// the org's budget (acked, not written); invalid and kept as dead letters,
/// or over the dead-letter budget and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IngestCounts {
    pub accepted: u64,
    pub throttled_node: u64,
    pub throttled_org: u64,
    pub dead_letters_kept: u64,
    pub dead_letters_dropped: u64,
}

/// One hour of an org's ingest counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IngestHour {
    pub hour: DateTime<Utc>,
    pub accepted: i64,
    pub throttled_node: i64,
    pub throttled_org: i64,
    pub dead_letters_kept: i64,
    pub dead_letters_dropped: i64,
}

/// A sustained rate per second and a burst on top; 0 per second is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RateView {
    pub per_sec: u32,
    pub burst: u32,
}

/// The ingest budgets in force: per node, per org, and for dead letters per org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BudgetsView {
    pub node: RateView,
    pub org: RateView,
    pub dead_letters: RateView,
}

/// `GET /api/orgs/{org}/ingest-stats?hours=N`: per hour, the totals (hours
/// plus `pending`, this controller's counts not yet written) and the budgets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IngestStats {
    pub org_id: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub budgets: BudgetsView,
    pub totals: IngestCounts,
    pub pending: IngestCounts,
    pub hours: Vec<IngestHour>,
}

/// `GET /api/orgs/{org}/control-key`: the key the org's nodes pin, and the
/// chain of its rotations (oldest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ControlKeyView {
    pub public_key: String,
    pub rotations: Vec<ritma_protocol::trust::KeyRotation>,
}

/// `POST /api/orgs/{org}/control-key/rotate`: the new key, the one it
/// replaced, and how many rulepack revisions were signed again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ControlKeyRotated {
    pub public_key: String,
    pub previous_key: String,
    pub revisions_signed_again: u64,
}

/// `GET /api/orgs/{org}/nodes/config-template`: what a new node of the
/// tenant needs (its environment, a systemd unit, one install command).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConfigTemplate {
    pub org_id: String,
    pub tenant_id: String,
    pub env: BTreeMap<String, String>,
    pub env_file: String,
    pub systemd_unit: String,
    pub install_command: String,
}
