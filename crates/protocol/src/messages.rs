//! Typed, versioned message bodies. Each carries `v` (the schema version),
//! the node it is about, and a per-node sequence number `seq` that makes it
//! unique (the database's idempotency key: a re-sent copy counts once).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{NodeId, OrgId, TenantId};
use crate::subjects::TelemetryKind;
use crate::validate::{self, Validate, ValidationError};
use crate::{MAX_MESSAGE_BYTES, SCHEMA_VERSION};

const MAX_LABEL: usize = 64;
const MAX_VERSION: usize = 128;
const MAX_COUNTERS: usize = 64;
const MAX_REJECTION: usize = 512;
const MAX_SLO_ROWS: usize = 256;
/// Periods longer than a day are refused: summaries are meant to be small and frequent.
const MAX_PERIOD_SECS: i64 = 86_400;

/// How the node judges its own health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeHealth {
    Ok,
    Degraded,
    /// Sent once on graceful shutdown: the controller marks the node offline at once.
    Stopping,
}

/// Facts about the machine the node runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HostFacts {
    #[schemars(length(max = 253))]
    pub hostname: String,
    #[schemars(length(max = 64))]
    pub os: String,
    #[schemars(length(max = 128))]
    pub kernel: String,
    #[schemars(length(max = 32))]
    pub arch: String,
    #[schemars(range(max = 65536))]
    pub cpus: u32,
    pub memory_bytes: u64,
    pub uptime_secs: u64,
}

impl Validate for HostFacts {
    fn validate(&self) -> Result<(), ValidationError> {
        validate::text("host.hostname", &self.hostname, 253)?;
        validate::text("host.os", &self.os, 64)?;
        validate::text("host.kernel", &self.kernel, 128)?;
        validate::text("host.arch", &self.arch, 32)?;
        validate::range("host.cpus", self.cpus, 0, 65_536)
    }
}

/// The daemon's disk spool, reported so that loss is never silent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SpoolStats {
    /// Messages waiting on disk for the bus.
    pub depth: u64,
    /// Messages the spool had to drop because it was full, since the node's first start.
    pub dropped: u64,
}

/// `ritma.<org>.<tenant>.node.<node>.heartbeat`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Heartbeat {
    pub v: u16,
    pub node_id: NodeId,
    pub seq: u64,
    /// The node's clock; the controller keeps its own receive time beside it.
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub sent_at: DateTime<Utc>,
    pub status: NodeHealth,
    #[schemars(length(min = 1, max = 64))]
    pub agent_version: String,
    /// Seconds until the next heartbeat; offline detection is based on it.
    #[schemars(range(min = 1, max = 3600))]
    pub interval_secs: u32,
    #[schemars(length(min = 1, max = 128))]
    pub policy_version: Option<String>,
    #[serde(default, deserialize_with = "crate::timestamp::option::deserialize")]
    pub last_policy_sync_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "crate::timestamp::option::deserialize")]
    pub last_evidence_batch_at: Option<DateTime<Utc>>,
    /// The signing key the node uses, for key governance.
    #[schemars(length(min = 1, max = 128))]
    pub key_id: Option<String>,
    /// Running SLO counters by name (at most 64).
    pub slo_counters: BTreeMap<String, u64>,
    pub host: HostFacts,
    #[serde(default)]
    pub spool: SpoolStats,
    /// Why the node refused the last policy it was served (signature, node,
    /// content); absent while it applies what it is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub policy_rejected: Option<String>,
}

impl Validate for Heartbeat {
    fn validate(&self) -> Result<(), ValidationError> {
        version(self.v)?;
        validate::non_empty_text("agent_version", &self.agent_version, MAX_LABEL)?;
        validate::range("interval_secs", self.interval_secs, 1, 3600)?;
        validate::optional_text(
            "policy_version",
            self.policy_version.as_deref(),
            MAX_VERSION,
        )?;
        validate::optional_text("key_id", self.key_id.as_deref(), MAX_VERSION)?;
        validate::optional_text(
            "policy_rejected",
            self.policy_rejected.as_deref(),
            MAX_REJECTION,
        )?;
        validate::at_most("slo_counters", self.slo_counters.len(), MAX_COUNTERS)?;
        for name in self.slo_counters.keys() {
            validate::non_empty_text("slo_counters", name, MAX_LABEL)?;
        }
        self.host.validate()
    }
}

/// One row of an SLO summary: how many operations of a component ended how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SloCount {
    #[schemars(length(min = 1, max = 64))]
    pub component: String,
    #[schemars(length(min = 1, max = 64))]
    pub operation: String,
    #[schemars(length(min = 1, max = 64))]
    pub outcome: String,
    pub count: u64,
}

/// `ritma.<org>.<tenant>.node.<node>.slo`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SloSummary {
    pub v: u16,
    pub node_id: NodeId,
    pub seq: u64,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub sent_at: DateTime<Utc>,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub period_start: DateTime<Utc>,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub period_end: DateTime<Utc>,
    /// At most 256 rows.
    pub counts: Vec<SloCount>,
}

impl Validate for SloSummary {
    fn validate(&self) -> Result<(), ValidationError> {
        version(self.v)?;
        period(self.period_start, self.period_end)?;
        validate::at_most("counts", self.counts.len(), MAX_SLO_ROWS)?;
        for row in &self.counts {
            validate::non_empty_text("counts.component", &row.component, MAX_LABEL)?;
            validate::non_empty_text("counts.operation", &row.operation, MAX_LABEL)?;
            validate::non_empty_text("counts.outcome", &row.outcome, MAX_LABEL)?;
            counter("counts.count", row.count)?;
        }
        Ok(())
    }
}

/// `ritma.<org>.<tenant>.node.<node>.usage`: the billing metrics of one period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UsageReport {
    pub v: u16,
    pub node_id: NodeId,
    pub seq: u64,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub sent_at: DateTime<Utc>,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub period_start: DateTime<Utc>,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub period_end: DateTime<Utc>,
    pub decisions: u64,
    pub dig_files: u64,
    pub storage_bytes: u64,
    pub snapshot_exports: u64,
}

impl Validate for UsageReport {
    fn validate(&self) -> Result<(), ValidationError> {
        version(self.v)?;
        period(self.period_start, self.period_end)?;
        counter("decisions", self.decisions)?;
        counter("dig_files", self.dig_files)?;
        counter("storage_bytes", self.storage_bytes)?;
        counter("snapshot_exports", self.snapshot_exports)
    }
}

/// `ritma.<org>.<tenant>.node.<node>.events`: enforcement decisions of one
/// period, as counts only (never payloads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EnforcementSummary {
    pub v: u16,
    pub node_id: NodeId,
    pub seq: u64,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub sent_at: DateTime<Utc>,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub period_start: DateTime<Utc>,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub period_end: DateTime<Utc>,
    pub allow: u64,
    pub deny: u64,
    pub throttle: u64,
    pub isolate: u64,
}

impl Validate for EnforcementSummary {
    fn validate(&self) -> Result<(), ValidationError> {
        version(self.v)?;
        period(self.period_start, self.period_end)?;
        counter("allow", self.allow)?;
        counter("deny", self.deny)?;
        counter("throttle", self.throttle)?;
        counter("isolate", self.isolate)
    }
}

/// The controller's view of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Enrolled, no heartbeat yet.
    Unseen,
    Online,
    /// Heartbeats arrive, but the node reports itself degraded.
    Degraded,
    /// A heartbeat is late (more than twice the interval) but the node is not yet offline.
    Stale,
    /// No heartbeat for k x interval + grace, or the node said it was stopping.
    Offline,
    /// Removed by an operator; its credentials are revoked at the broker.
    Decommissioned,
    /// Its liveness changed too often (N status changes in M minutes): its
    /// further flips are not published until it has been steady for M minutes.
    Flapping,
}

impl NodeStatus {
    pub const ALL: [NodeStatus; 7] = [
        Self::Unseen,
        Self::Online,
        Self::Degraded,
        Self::Stale,
        Self::Offline,
        Self::Decommissioned,
        Self::Flapping,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unseen => "unseen",
            Self::Online => "online",
            Self::Degraded => "degraded",
            Self::Stale => "stale",
            Self::Offline => "offline",
            Self::Decommissioned => "decommissioned",
            Self::Flapping => "flapping",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// What changed about a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StateChangeKind {
    Status {
        from: NodeStatus,
        to: NodeStatus,
        #[schemars(length(max = 256))]
        reason: String,
    },
    Enrolled {
        #[schemars(length(max = 253))]
        hostname: String,
    },
    /// The node reported a different applied policy.
    PolicyApplied { applied: Option<String> },
    /// The applied policy has differed from the assigned one for longer than
    /// the grace period (`drifted: true`), or agrees again (`false`).
    PolicyDrift {
        drifted: bool,
        assigned: Option<String>,
        applied: Option<String>,
    },
    /// The node signs with a key that is revoked, compromised or expired
    /// (`key_status` set), or no longer does (`key_status: null`).
    KeyWarning {
        key_id: Option<String>,
        key_status: Option<crate::keys::KeyStatus>,
    },
    /// The node refused the policy it was served and keeps its current one:
    /// the signature does not verify under the key it pinned, the assignment
    /// names another node, or the content does not match its hash.
    PolicyRejected {
        #[schemars(length(min = 1, max = 512))]
        reason: String,
    },
}

/// `ritma.<org>.<tenant>.state.node.<node>`: published after the database commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StateChange {
    pub v: u16,
    /// Increases with every state change the controller commits (an outbox id):
    /// lets a subscriber drop duplicates and order what it missed.
    pub event_id: i64,
    pub org_id: OrgId,
    pub tenant_id: TenantId,
    pub node_id: NodeId,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub change: StateChangeKind,
}

/// `ritma.<org>.audit`: one committed audit entry. `hash` chains it to the
/// previous entry (`prev_hash`), so a subscriber can check nothing was
/// removed or altered between two entries it received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditEvent {
    pub v: u16,
    pub id: i64,
    pub org_id: Option<OrgId>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub source: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub at: DateTime<Utc>,
    /// Hex SHA-256 of the previous entry.
    pub prev_hash: String,
    /// Hex SHA-256 over `prev_hash` and this entry's fields.
    pub hash: String,
}

/// Any message a node publishes, decoded and validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Telemetry {
    Heartbeat(Box<Heartbeat>),
    Slo(SloSummary),
    Usage(UsageReport),
    Events(EnforcementSummary),
}

/// Why a message off the bus was refused. `reason()` is the short token used
/// for the dead-letter subject and the counters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("message is {size} bytes, at most {MAX_MESSAGE_BYTES} allowed")]
    TooLarge { size: usize },
    #[error("message is not valid JSON for its subject: {0}")]
    Malformed(String),
    #[error("schema version {found} is not supported (this controller speaks {SCHEMA_VERSION})")]
    UnsupportedVersion { found: u64 },
    #[error("message is invalid: {0}")]
    Invalid(#[from] ValidationError),
}

impl DecodeError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::Malformed(_) => "malformed",
            Self::UnsupportedVersion { .. } => "unsupported_version",
            Self::Invalid(_) => "invalid",
        }
    }
}

#[derive(Deserialize)]
struct VersionProbe {
    v: Option<u64>,
}

/// The schema version a body claims, checked apart from its other fields, so
/// a future schema gets a precise error rather than whatever field happens
/// to fail to parse.
fn version_check(body: &[u8]) -> Result<(), DecodeError> {
    let probe: VersionProbe =
        serde_json::from_slice(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    match probe.v {
        Some(v) if v == u64::from(SCHEMA_VERSION) => Ok(()),
        Some(found) => Err(DecodeError::UnsupportedVersion { found }),
        None => Err(DecodeError::Malformed("missing field `v`".into())),
    }
}

/// One pass over a good body (the ingest decodes every message); the version
/// probe runs only when the body fails to parse or claims another version.
fn parse<T: serde::de::DeserializeOwned + Validate>(body: &[u8]) -> Result<T, DecodeError> {
    let message: T = match serde_json::from_slice(body) {
        Ok(m) => m,
        Err(e) => {
            version_check(body)?;
            return Err(DecodeError::Malformed(e.to_string()));
        }
    };
    match message.validate() {
        Ok(()) => Ok(message),
        Err(e) if e.field == "v" => {
            version_check(body)?;
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

impl Telemetry {
    /// Decode a body received on a telemetry subject of `kind`.
    pub fn decode(kind: TelemetryKind, body: &[u8]) -> Result<Self, DecodeError> {
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(DecodeError::TooLarge { size: body.len() });
        }
        Ok(match kind {
            TelemetryKind::Heartbeat => Self::Heartbeat(Box::new(parse(body)?)),
            TelemetryKind::Slo => Self::Slo(parse(body)?),
            TelemetryKind::Usage => Self::Usage(parse(body)?),
            TelemetryKind::Events => Self::Events(parse(body)?),
        })
    }

    pub fn kind(&self) -> TelemetryKind {
        match self {
            Self::Heartbeat(_) => TelemetryKind::Heartbeat,
            Self::Slo(_) => TelemetryKind::Slo,
            Self::Usage(_) => TelemetryKind::Usage,
            Self::Events(_) => TelemetryKind::Events,
        }
    }

    pub fn node_id(&self) -> &NodeId {
        match self {
            Self::Heartbeat(m) => &m.node_id,
            Self::Slo(m) => &m.node_id,
            Self::Usage(m) => &m.node_id,
            Self::Events(m) => &m.node_id,
        }
    }

    pub fn seq(&self) -> u64 {
        match self {
            Self::Heartbeat(m) => m.seq,
            Self::Slo(m) => m.seq,
            Self::Usage(m) => m.seq,
            Self::Events(m) => m.seq,
        }
    }

    pub fn sent_at(&self) -> DateTime<Utc> {
        match self {
            Self::Heartbeat(m) => m.sent_at,
            Self::Slo(m) => m.sent_at,
            Self::Usage(m) => m.sent_at,
            Self::Events(m) => m.sent_at,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serialising these plain structs cannot fail.
        match self {
            Self::Heartbeat(m) => serde_json::to_vec(m),
            Self::Slo(m) => serde_json::to_vec(m),
            Self::Usage(m) => serde_json::to_vec(m),
            Self::Events(m) => serde_json::to_vec(m),
        }
        .unwrap_or_default()
    }
}

fn version(v: u16) -> Result<(), ValidationError> {
    if v != SCHEMA_VERSION {
        return Err(ValidationError::new(
            "v",
            format!("must be {SCHEMA_VERSION}"),
        ));
    }
    Ok(())
}

fn period(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<(), ValidationError> {
    let secs = (end - start).num_seconds();
    if end < start {
        return Err(ValidationError::new("period_end", "is before period_start"));
    }
    validate::range("period", secs, 0, MAX_PERIOD_SECS)
}

/// Counters are stored as signed 64-bit integers.
fn counter(field: &'static str, value: u64) -> Result<(), ValidationError> {
    validate::range(field, value, 0, i64::MAX as u64)
}

/// Every schema the contract documents, by file stem, for `docs/schemas/`.
pub fn json_schemas() -> Vec<(&'static str, serde_json::Value)> {
    fn schema<T: JsonSchema>() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default()
    }
    vec![
        ("heartbeat", schema::<Heartbeat>()),
        ("slo", schema::<SloSummary>()),
        ("usage", schema::<UsageReport>()),
        ("events", schema::<EnforcementSummary>()),
        ("state_change", schema::<StateChange>()),
        ("command", schema::<crate::command::SignedCommand>()),
        ("audit", schema::<AuditEvent>()),
        ("alert", schema::<crate::alerts::AlertNotification>()),
        (
            "bulk_job_progress",
            schema::<crate::jobs::BulkJobProgress>(),
        ),
        (
            "rollups_updated",
            schema::<crate::activity::RollupsUpdated>(),
        ),
        (
            "dry_run_report",
            schema::<crate::connectors::DryRunReport>(),
        ),
        (
            "diagnostic_bundle",
            schema::<crate::diagnostics::DiagnosticBundle>(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn heartbeat() -> Heartbeat {
        Heartbeat {
            v: SCHEMA_VERSION,
            node_id: NodeId::new("web-1").unwrap(),
            seq: 7,
            sent_at: Utc::now(),
            status: NodeHealth::Ok,
            agent_version: "0.1.0".into(),
            interval_secs: 10,
            policy_version: None,
            last_policy_sync_at: None,
            last_evidence_batch_at: None,
            key_id: Some("k1".into()),
            slo_counters: BTreeMap::from([("decisions".into(), 3)]),
            host: HostFacts {
                hostname: "web-1".into(),
                os: "linux".into(),
                kernel: "6.1".into(),
                arch: "x86_64".into(),
                cpus: 2,
                memory_bytes: 1 << 30,
                uptime_secs: 5,
            },
            spool: SpoolStats::default(),
            policy_rejected: None,
        }
    }

    #[test]
    fn round_trip() {
        let hb = Telemetry::Heartbeat(Box::new(heartbeat()));
        let decoded = Telemetry::decode(TelemetryKind::Heartbeat, &hb.encode()).unwrap();
        assert_eq!(decoded, hb);
    }

    #[test]
    fn refuses_each_kind_of_bad_input_with_its_reason() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"{not json".to_vec(), "malformed"),
            (b"{}".to_vec(), "malformed"),
            (br#"{"v":2}"#.to_vec(), "unsupported_version"),
            (vec![b' '; MAX_MESSAGE_BYTES + 1], "too_large"),
            (
                {
                    let mut hb = heartbeat();
                    hb.interval_secs = 0;
                    serde_json::to_vec(&hb).unwrap()
                },
                "invalid",
            ),
            (
                {
                    let mut hb = heartbeat();
                    hb.agent_version = "x".repeat(65);
                    serde_json::to_vec(&hb).unwrap()
                },
                "invalid",
            ),
            (
                serde_json::to_vec(&heartbeat())
                    .unwrap()
                    .into_iter()
                    .collect::<Vec<_>>(),
                "malformed", // a heartbeat body on the usage subject
            ),
            (
                // A later schema whose body still parses as this one.
                {
                    let mut hb = heartbeat();
                    hb.v = SCHEMA_VERSION + 1;
                    serde_json::to_vec(&hb).unwrap()
                },
                "unsupported_version",
            ),
        ];
        for (i, (body, reason)) in cases.into_iter().enumerate() {
            let kind = if i == 6 {
                TelemetryKind::Usage
            } else {
                TelemetryKind::Heartbeat
            };
            let err = Telemetry::decode(kind, &body).unwrap_err();
            assert_eq!(err.reason(), reason, "case {i}: {err}");
        }
    }

    #[test]
    fn period_limits() {
        let now = Utc::now();
        let usage = UsageReport {
            v: SCHEMA_VERSION,
            node_id: NodeId::new("n").unwrap(),
            seq: 1,
            sent_at: now,
            period_start: now,
            period_end: now - chrono::Duration::seconds(1),
            decisions: 1,
            dig_files: 0,
            storage_bytes: 0,
            snapshot_exports: 0,
        };
        assert_eq!(usage.validate().unwrap_err().field, "period_end");
        let usage = UsageReport {
            decisions: u64::MAX,
            period_end: now,
            ..usage
        };
        assert_eq!(usage.validate().unwrap_err().field, "decisions");
    }

    #[test]
    fn state_change_and_command_shapes_are_flat() {
        let sc = StateChange {
            v: 1,
            event_id: 3,
            org_id: OrgId::new("acme").unwrap(),
            tenant_id: TenantId::new("prod").unwrap(),
            node_id: NodeId::new("web-1").unwrap(),
            at: Utc::now(),
            change: StateChangeKind::Status {
                from: NodeStatus::Online,
                to: NodeStatus::Offline,
                reason: "no heartbeat".into(),
            },
        };
        let json = serde_json::to_value(&sc).unwrap();
        assert_eq!(json["kind"], "status");
        assert_eq!(json["to"], "offline");
        let cmd = crate::command::Command::new(
            OrgId::new("acme").unwrap(),
            NodeId::new("web-1").unwrap(),
            30,
            crate::command::CommandKind::PolicyChanged {
                version: "3".into(),
            },
        );
        assert_eq!(
            serde_json::to_value(&cmd).unwrap()["command"],
            "policy_changed"
        );
    }
}
