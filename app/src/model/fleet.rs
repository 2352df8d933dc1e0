//! Fleet operations (policies, connectors, keys, telemetry, usage): the controller's
//! JSON deserializes straight into these (times via [`Instant`]), and the same types
//! cross to the browser.

use super::{AppError, Instant, Status};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `{items: [...]}`, the controller's list envelope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// A number kept as the controller wrote it (money, prices): no float formatting in
/// the browser bundle.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "AmountWire")]
pub struct Amount(pub String);

#[derive(Deserialize)]
#[serde(untagged)]
enum AmountWire {
    Number(serde_json::Number),
    Text(String),
}

impl From<AmountWire> for Amount {
    fn from(w: AmountWire) -> Self {
        match w {
            AmountWire::Number(n) => Amount(n.to_string()),
            AmountWire::Text(t) => Amount(t),
        }
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------- policies

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rulepack {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub latest_revision: i64,
    /// `name@rev`
    pub version: String,
    pub sha256: String,
    #[serde(default)]
    pub frameworks: Vec<String>,
    pub created_at: Instant,
    #[serde(default)]
    pub created_by: Option<String>,
}

/// A new revision as the controller answers a create.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RulepackRevision {
    pub name: String,
    pub revision: i64,
    pub version: String,
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub id: String,
    /// `org`, `tenant`, `label` or `node`.
    pub scope_kind: String,
    #[serde(default)]
    pub scope_value: String,
    pub rulepack: String,
    /// None: follows the latest revision.
    #[serde(default)]
    pub revision: Option<i64>,
    pub mode: String,
    pub created_at: Instant,
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub nodes: i64,
}

impl Assignment {
    /// `org`, `tenant acme`, `label env=prod`, `node n-1`.
    pub fn scope_text(&self) -> String {
        if self.scope_value.is_empty() {
            self.scope_kind.clone()
        } else {
            format!("{} {}", self.scope_kind, self.scope_value)
        }
    }

    /// `3`, or `latest` when it follows the newest revision.
    pub fn revision_text(&self) -> String {
        self.revision
            .map(|r| r.to_string())
            .unwrap_or_else(|| "latest".to_string())
    }
}

/// What the controller assigns a node (the winning assignment, resolved).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssignedPolicy {
    pub version: String,
    pub rulepack: String,
    pub revision: i64,
    pub mode: String,
    #[serde(default)]
    pub sha256: String,
    /// Empty when no assignment won (the API answers null).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub scope_kind: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub scope_value: String,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodePolicy {
    pub node_id: String,
    pub assigned: Option<AssignedPolicy>,
    pub applied: Option<String>,
    #[serde(default)]
    pub last_policy_sync_at: Option<Instant>,
    #[serde(default)]
    pub drifted: bool,
    #[serde(default)]
    pub drift_since: Option<Instant>,
    /// Every assignment matching the node, the winner first.
    #[serde(default)]
    pub assignments: Vec<Assignment>,
}

// ---------------------------------------------------------------- connectors

pub const CONNECTOR_KINDS: [&str; 5] = ["host", "storage", "k8s", "aws", "gcp"];
pub const OUTCOMES: [&str; 3] = ["pass", "fail", "incomplete"];

/// An example configuration per connector kind (secrets only as references).
pub fn connector_template(kind: &str) -> &'static str {
    match kind {
        "host" => "{\n  \"allowed_ports\": [22, 443],\n  \"protected_paths\": [\"/etc/ssh\"]\n}",
        "storage" => {
            "{\n  \"paths\": [{\"path\": \"/var/lib/ritma\", \"writable\": true}],\n  \"min_free_bytes\": 1073741824\n}"
        }
        "k8s" => {
            "{\n  \"api_server\": \"https://k8s.example:6443\",\n  \"namespace\": \"default\",\n  \"token_ref\": \"env:K8S_TOKEN\"\n}"
        }
        "aws" => {
            "{\n  \"region\": \"eu-west-1\",\n  \"account_id\": \"123456789012\",\n  \"credentials_ref\": \"env:AWS_CREDENTIALS\"\n}"
        }
        "gcp" => {
            "{\n  \"project_id\": \"my-project\",\n  \"credentials_ref\": \"file:/etc/ritma/gcp.json\"\n}"
        }
        _ => "{}",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub check: String,
    /// `pass`, `fail`, `unreachable` or `error`.
    pub status: String,
    /// `info`, `low`, `medium` or `high`.
    pub severity: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DryRunReport {
    pub connector_id: String,
    pub kind: String,
    pub started_at: Instant,
    pub finished_at: Instant,
    /// `pass`, `fail` or `incomplete`.
    pub outcome: String,
    #[serde(default)]
    pub findings: Vec<Finding>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Connector {
    pub id: String,
    pub node_id: String,
    #[serde(default)]
    pub tenant_id: String,
    pub kind: String,
    pub config: serde_json::Value,
    pub created_at: Instant,
    pub updated_at: Instant,
    #[serde(default)]
    pub last_run: Option<DryRunReport>,
    /// Cross-node list only.
    #[serde(default)]
    pub node_hostname: Option<String>,
    #[serde(default)]
    pub node_status: Option<Status>,
}

impl Connector {
    /// The configuration without its `kind` tag, pretty-printed (the edit form's text).
    pub fn config_text(&self) -> String {
        let mut c = self.config.clone();
        if let Some(o) = c.as_object_mut() {
            o.remove("kind");
        }
        serde_json::to_string_pretty(&c).unwrap_or_default()
    }
}

/// Filters of the cross-node connectors page; mirrors the URL query.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConnectorQuery {
    pub kind: Option<String>,
    pub outcome: Option<String>,
}

// ---------------------------------------------------------------- keys

pub const KEY_STATUSES: [&str; 4] = ["active", "revoked", "compromised", "expired"];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Key {
    pub key_id: String,
    #[serde(default)]
    pub label: Option<String>,
    pub status: String,
    #[serde(default)]
    pub created_at: Option<Instant>,
    #[serde(default)]
    pub rotated_at: Option<Instant>,
    #[serde(default)]
    pub rotate_by: Option<Instant>,
    #[serde(default)]
    pub expires_at: Option<Instant>,
    #[serde(default)]
    pub last_used_at: Option<Instant>,
    #[serde(default)]
    pub nodes_using: i64,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub updated_at: Option<Instant>,
    #[serde(default)]
    pub updated_by: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CloudSync {
    #[serde(default)]
    pub configured: bool,
    #[serde(default)]
    pub last_sync_at: Option<Instant>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyList {
    pub items: Vec<Key>,
    #[serde(default)]
    pub cloud: Option<CloudSync>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeySummary {
    #[serde(default)]
    pub active: i64,
    #[serde(default)]
    pub revoked: i64,
    #[serde(default)]
    pub compromised: i64,
    #[serde(default)]
    pub expired: i64,
    #[serde(default)]
    pub rotation_due: i64,
    #[serde(default)]
    pub nodes_with_warnings: i64,
}

/// The keys page: registry, summary, and whether the caller may change governance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeysView {
    pub list: KeyList,
    pub summary: KeySummary,
    pub can_govern: bool,
    pub fetched_ms: i64,
}

// ---------------------------------------------------------------- telemetry

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SloTotal {
    pub component: String,
    pub operation: String,
    pub outcome: String,
    pub count: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SloSummary {
    #[serde(default)]
    pub totals: Vec<SloTotal>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EnforcementCounts {
    #[serde(default)]
    pub allow: i64,
    #[serde(default)]
    pub deny: i64,
    #[serde(default)]
    pub throttle: i64,
    #[serde(default)]
    pub isolate: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnforcementSummary {
    #[serde(default)]
    pub totals: EnforcementCounts,
}

/// A node's last-24-hours telemetry: SLO outcomes and enforcement decisions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeTelemetry {
    pub slo: Result<SloSummary, AppError>,
    pub events: Result<EnforcementSummary, AppError>,
}

// ---------------------------------------------------------------- usage and cost

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageMetrics {
    #[serde(default)]
    pub decisions: i64,
    #[serde(default)]
    pub dig_files: i64,
    #[serde(default)]
    pub storage_bytes: i64,
    #[serde(default)]
    pub snapshot_exports: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantUsage {
    pub tenant_id: String,
    #[serde(default)]
    pub nodes: i64,
    #[serde(flatten)]
    pub m: UsageMetrics,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DailyUsage {
    pub day: String,
    #[serde(flatten)]
    pub m: UsageMetrics,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageSummary {
    pub period: String,
    pub totals: UsageMetrics,
    #[serde(default)]
    pub tenants: Vec<TenantUsage>,
    #[serde(default)]
    pub daily: Vec<DailyUsage>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BillingLine {
    pub metric: String,
    /// In the metric's own unit (decisions, bytes).
    pub quantity: Amount,
    /// In the unit it is priced in (`unit`: millions of decisions, GiB);
    /// absent where the source already states it so (the billing service).
    #[serde(default)]
    pub priced_quantity: Option<Amount>,
    #[serde(default)]
    pub unit: String,
    pub unit_price: Amount,
    pub amount: Amount,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantBill {
    pub tenant_id: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub lines: Vec<BillingLine>,
    pub total: Amount,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BillingEstimate {
    pub period: String,
    #[serde(default)]
    pub currency: String,
    /// `billing_daemon` or `price_table`.
    pub source: String,
    /// Human text, shown as is (e.g. "Estimate …; not an invoice").
    pub label: String,
    #[serde(default)]
    pub tenants: Vec<TenantBill>,
    pub total: Amount,
}

/// The usage page: metering and the cost estimate of one period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageView {
    pub usage: UsageSummary,
    /// An error here leaves the metering visible.
    pub billing: Result<BillingEstimate, AppError>,
    /// Each metric by day over the month, drawn by the server.
    #[serde(default)]
    pub charts: Vec<super::chart::Chart>,
}

// ---------------------------------------------------------------- enrollment

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfigTemplate {
    pub tenant_id: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub env_file: String,
    pub systemd_unit: String,
    pub install_command: String,
}

impl ConfigTemplate {
    /// The template with the enrollment-token placeholder replaced by `secret`.
    pub fn with_token(mut self, secret: &str) -> Self {
        for text in [
            &mut self.env_file,
            &mut self.systemd_unit,
            &mut self.install_command,
        ] {
            *text = text.replace("<token>", secret);
        }
        self
    }
}

// ---------------------------------------------------------------- form input

/// Parses a JSON text field: the message names the field, line and column.
/// Whether `text` is valid JSON, with [`parse_json_field`]'s message (no value
/// built: the browser's check).
pub fn check_json_field(field: &str, text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err(format!("{field} is empty: enter a JSON value"));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| format!("{field} is not valid JSON: {e}"))
}

pub fn parse_json_field(field: &str, text: &str) -> Result<serde_json::Value, String> {
    if text.trim().is_empty() {
        return Err(format!("{field} is empty: enter a JSON value"));
    }
    serde_json::from_str(text).map_err(|e| format!("{field} is not valid JSON: {e}"))
}

/// Items separated by commas or new lines, trimmed, empty ones dropped.
pub fn parse_list(text: &str) -> Vec<String> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// An optional revision number (empty: follow the latest).
pub fn parse_revision(text: &str) -> Result<Option<i64>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    match t.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(Some(n)),
        _ => Err(format!("revision {t:?} is not a positive whole number")),
    }
}

/// `value` when it is one of `allowed`.
pub fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<String, String> {
    if allowed.contains(&value) {
        Ok(value.to_string())
    } else {
        Err(format!("{field} must be one of {}", allowed.join(", ")))
    }
}

/// `YYYY-MM`.
pub fn is_period(p: &str) -> bool {
    let b = p.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || c.is_ascii_digit())
        && matches!(
            &p[5..],
            "01" | "02" | "03" | "04" | "05" | "06" | "07" | "08" | "09" | "10" | "11" | "12"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_keep_their_text() {
        let a: Amount = serde_json::from_str("12.5").unwrap();
        assert_eq!(a.0, "12.5");
        let b: Amount = serde_json::from_str("\"3.1\"").unwrap();
        assert_eq!(b.to_string(), "3.1");
        assert_eq!(serde_json::to_string(&b).unwrap(), "\"3.1\"");
    }

    #[test]
    fn times_parse_from_both_forms() {
        let i: Instant = serde_json::from_str(r#"{"ms":5,"text":"x"}"#).unwrap();
        assert_eq!(i.ms, 5);
        #[cfg(feature = "ssr")]
        {
            let t: Instant = serde_json::from_str("\"2026-01-02T03:04:05Z\"").unwrap();
            assert_eq!(t.text, "2026-01-02 03:04:05 UTC");
        }
    }

    #[test]
    fn form_input() {
        assert!(
            parse_json_field("rules", "{")
                .unwrap_err()
                .contains("rules is not valid JSON")
        );
        assert!(parse_json_field("rules", " ").is_err());
        assert_eq!(parse_list("a, b\n,c"), vec!["a", "b", "c"]);
        assert_eq!(parse_revision(""), Ok(None));
        assert_eq!(parse_revision("3"), Ok(Some(3)));
        assert!(parse_revision("0").is_err());
        assert!(is_period("2026-11"));
        assert!(!is_period("2026-13"));
        assert!(!is_period("26-11"));
    }

    #[test]
    fn assignment_texts() {
        let a: Assignment = serde_json::from_value(serde_json::json!({
            "id": "x", "scope_kind": "org", "scope_value": "", "rulepack": "base",
            "revision": null, "mode": "observe", "created_at": {"ms": 0, "text": ""}
        }))
        .unwrap();
        assert_eq!(a.scope_text(), "org");
        assert_eq!(a.revision_text(), "latest");
    }
}
