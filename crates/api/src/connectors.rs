//! Connectors: checks a node runs against its host, storage and cloud
//! accounts (`/api/nodes/{id}/connectors`, `/api/orgs/{org}/connectors`).
//! The configuration, the allow-list and the dry-run report are the bus
//! contract's own types (`ritma_protocol::connectors`).

use chrono::{DateTime, Utc};
use ritma_protocol::NodeStatus;
use ritma_protocol::connectors::ConnectorKind;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use ritma_protocol::connectors::{ConnectorAllowList, ConnectorConfig, DryRunReport};

/// A connector and its last result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConnectorView {
    pub id: String,
    pub node_id: String,
    pub tenant_id: String,
    pub kind: ConnectorKind,
    /// The `ConnectorConfig` as saved (secrets only as references).
    pub config: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The `DryRunReport` of its last run.
    pub last_run: Option<Value>,
    pub last_run_at: Option<DateTime<Utc>>,
    /// `pass`, `fail` or `incomplete`.
    pub last_outcome: Option<String>,
    pub node_hostname: String,
    pub node_status: NodeStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConnectorList {
    pub items: Vec<ConnectorView>,
}

/// `GET /api/orgs/{org}/connectors`: the filters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConnectorListQuery {
    /// host, storage, k8s, aws or gcp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["host", "storage", "k8s", "aws", "gcp"]))]
    pub kind: Option<String>,
    /// pass, fail, incomplete or never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["pass", "fail", "incomplete", "never"]))]
    pub outcome: Option<String>,
}
