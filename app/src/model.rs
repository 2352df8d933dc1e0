//! Types shared by the server (SSR, server functions) and the browser (hydrated WASM).
//!
//! Times cross the wire as epoch milliseconds plus a preformatted UTC string, so the
//! browser bundle carries no date parsing code.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub mod alerts;
pub mod bulk;
pub mod chart;
pub mod fleet;

/// A node's status as the controller reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Unseen,
    Online,
    Degraded,
    Stale,
    Offline,
    Decommissioned,
    /// Its liveness changed too often; its flips are held back until it is steady.
    Flapping,
    /// A status this console does not know yet (a newer controller).
    #[serde(other)]
    Unknown,
}

/// The contract's statuses, as the console shows them.
#[cfg(feature = "ssr")]
impl From<ritma_protocol::NodeStatus> for Status {
    fn from(s: ritma_protocol::NodeStatus) -> Self {
        Status::parse(s.as_str()).unwrap_or(Status::Unknown)
    }
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Online,
        Status::Degraded,
        Status::Stale,
        Status::Offline,
        Status::Flapping,
        Status::Unseen,
        Status::Decommissioned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unseen => "unseen",
            Status::Online => "online",
            Status::Degraded => "degraded",
            Status::Stale => "stale",
            Status::Offline => "offline",
            Status::Decommissioned => "decommissioned",
            Status::Flapping => "flapping",
            Status::Unknown => "unknown",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Status::Unseen => "Unseen",
            Status::Online => "Online",
            Status::Degraded => "Degraded",
            Status::Stale => "Stale",
            Status::Offline => "Offline",
            Status::Decommissioned => "Decommissioned",
            Status::Flapping => "Flapping",
            Status::Unknown => "Unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Heartbeats arrive (online or degraded).
    pub fn is_active(self) -> bool {
        matches!(self, Status::Online | Status::Degraded)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A point in time: epoch milliseconds and a readable UTC rendering.
///
/// Deserializes from that pair or, on the server, from an RFC 3339 string (the
/// controller's form), so controller JSON maps onto the shared types directly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "InstantWire")]
pub struct Instant {
    pub ms: i64,
    pub text: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum InstantWire {
    Parts { ms: i64, text: String },
    Rfc3339(String),
}

impl TryFrom<InstantWire> for Instant {
    type Error = String;

    fn try_from(w: InstantWire) -> Result<Self, String> {
        match w {
            InstantWire::Parts { ms, text } => Ok(Instant { ms, text }),
            InstantWire::Rfc3339(s) => parse_rfc3339(&s),
        }
    }
}

#[cfg(feature = "ssr")]
fn parse_rfc3339(s: &str) -> Result<Instant, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| crate::server::api::instant(t.with_timezone(&chrono::Utc)))
        .map_err(|e| format!("invalid time {s:?}: {e}"))
}

#[cfg(not(feature = "ssr"))]
fn parse_rfc3339(s: &str) -> Result<Instant, String> {
    Err(format!("unexpected time string {s:?}"))
}

/// One row of the inventory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeRow {
    pub id: String,
    pub tenant_id: String,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    pub status: Status,
    pub agent_version: Option<String>,
    pub policy_version: Option<String>,
    /// What the controller assigns, e.g. `baseline@3`.
    pub policy_assigned: Option<String>,
    pub policy_mode: Option<String>,
    /// Applied differs from assigned for longer than the grace period.
    pub drifted: bool,
    pub drift_since: Option<Instant>,
    /// `revoked`, `compromised` or `expired`: the node signs with such a key.
    pub key_warning: Option<String>,
    pub connector_count: i64,
    pub last_seen: Option<Instant>,
    pub status_changed: Instant,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodePage {
    pub items: Vec<NodeRow>,
    pub next_cursor: Option<String>,
    pub total: i64,
    /// False when more nodes match than the controller counts (`total` is then a floor).
    pub total_exact: bool,
    /// Server clock when the page was fetched (base for relative times before hydration).
    pub fetched_ms: i64,
}

impl NodePage {
    /// "1234", or "10000+" past what the controller counts.
    pub fn total_text(&self) -> String {
        if self.total_exact {
            self.total.to_string()
        } else {
            format!("{}+", self.total)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostFacts {
    pub hostname: Option<String>,
    pub os: Option<String>,
    pub kernel: Option<String>,
    pub arch: Option<String>,
    pub cpus: Option<i64>,
    pub memory_bytes: Option<i64>,
    pub uptime_secs: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spool {
    pub depth: i64,
    pub dropped: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub from: Status,
    pub to: Status,
    pub reason: String,
    pub at: Instant,
}

impl HistoryEntry {
    /// What the entry says happened: a transition, or the enrollment (the
    /// first entry, which the controller records as unseen to unseen).
    pub fn title(&self) -> String {
        if self.from == Status::Unseen && self.to == Status::Unseen {
            "Enrolled".to_owned()
        } else {
            format!("{} → {}", self.from.label(), self.to.label())
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeDetail {
    pub node: NodeRow,
    pub org_id: String,
    pub key_id: Option<String>,
    pub interval_secs: i64,
    pub enrolled: Instant,
    pub host: Option<HostFacts>,
    pub spool: Option<Spool>,
    pub history: Vec<HistoryEntry>,
    /// Controller URL nodes use (for the configuration snippet).
    pub controller_url: String,
    pub fetched_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    pub total: i64,
    pub counts: Vec<(Status, i64)>,
    pub drifted: i64,
    pub key_warnings: i64,
    pub fetched_ms: i64,
}

impl Dashboard {
    pub fn count(&self, status: Status) -> i64 {
        self.counts
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrgInfo {
    pub id: String,
    pub name: String,
}

/// What the browser may know about its session (never the token).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// Who signed in (email, name or subject).
    pub user: String,
    pub org: String,
    pub orgs: Vec<OrgInfo>,
}

/// How people may sign in to this console.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignInOptions {
    /// Single sign-on with the IdP is configured.
    pub sso: bool,
    /// The admin-token form is offered.
    pub token_login: bool,
}

/// One entry of the org's audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub source: Option<String>,
    /// Pretty-printed JSON of the object before and after the change.
    pub before: Option<String>,
    pub after: Option<String>,
    pub at: Instant,
    pub hash: String,
}

/// Filters of the audit page; mirrors the URL query.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    /// Show entries older than this id (the next page).
    pub before: Option<i64>,
}

impl AuditQuery {
    /// The page's URL with these filters (empty ones left out).
    pub fn href(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("actor", &self.actor),
            ("action", &self.action),
            ("target", &self.target),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                parts.push(format!("{k}={}", url_encode(v)));
            }
        }
        if let Some(b) = self.before {
            parts.push(format!("before={b}"));
        }
        if parts.is_empty() {
            "/audit".to_string()
        } else {
            format!("/audit?{}", parts.join("&"))
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Set when older entries exist.
    pub older: Option<i64>,
}

/// Filters, sort and cursor of the inventory; mirrors the URL query.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeQuery {
    pub tenant: Option<String>,
    pub status: Option<String>,
    pub label: Option<String>,
    pub version: Option<String>,
    pub q: Option<String>,
    pub sort: Option<String>,
    pub order: Option<String>,
    pub cursor: Option<String>,
    /// `true`: only nodes whose applied policy drifted.
    pub drifted: Option<String>,
    /// `true`: only nodes signing with a revoked, compromised or expired key.
    pub key_warning: Option<String>,
}

impl NodeQuery {
    pub const KEYS: [&'static str; 10] = [
        "tenant",
        "status",
        "label",
        "version",
        "q",
        "drifted",
        "key_warning",
        "sort",
        "order",
        "cursor",
    ];

    /// Yes/no filters: set only as `true`.
    pub const FLAGS: [&'static str; 2] = ["drifted", "key_warning"];

    pub fn get(&self, key: &str) -> Option<&str> {
        let v = match key {
            "tenant" => &self.tenant,
            "status" => &self.status,
            "label" => &self.label,
            "version" => &self.version,
            "q" => &self.q,
            "sort" => &self.sort,
            "order" => &self.order,
            "cursor" => &self.cursor,
            "drifted" => &self.drifted,
            "key_warning" => &self.key_warning,
            _ => return None,
        };
        v.as_deref().filter(|s| !s.is_empty())
    }

    pub fn set(&mut self, key: &str, value: Option<String>) {
        let value = value.filter(|s| !s.trim().is_empty());
        let value = if Self::FLAGS.contains(&key) {
            value.filter(|v| v == "true")
        } else {
            value
        };
        match key {
            "tenant" => self.tenant = value,
            "status" => self.status = value,
            "label" => self.label = value,
            "version" => self.version = value,
            "q" => self.q = value,
            "sort" => self.sort = value,
            "order" => self.order = value,
            "cursor" => self.cursor = value,
            "drifted" => self.drifted = value,
            "key_warning" => self.key_warning = value,
            _ => {}
        }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut q = NodeQuery::default();
        for (k, v) in pairs {
            q.set(k, Some(v.to_string()));
        }
        q
    }

    /// Any filter set (not sort or cursor)?
    pub fn is_filtered(&self) -> bool {
        Self::KEYS
            .iter()
            .filter(|k| !["sort", "order", "cursor"].contains(k))
            .any(|k| self.get(k).is_some())
    }

    /// `?a=b&c=d` for links (empty string when nothing is set).
    pub fn to_query_string(&self) -> String {
        let parts: Vec<String> = Self::KEYS
            .iter()
            .filter_map(|k| self.get(k).map(|v| format!("{k}={}", url_encode(v))))
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A state change as pushed to browsers over `/live` (event `state`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveEvent {
    pub event_id: i64,
    pub tenant_id: String,
    pub node_id: String,
    /// `status`, `enrolled`, `policy_applied`, `policy_drift` or `key_warning`.
    pub kind: String,
    pub from: Option<Status>,
    pub to: Option<Status>,
    pub reason: Option<String>,
    pub hostname: Option<String>,
    /// `policy_applied`, `policy_drift`: the policy the node applies.
    #[serde(default)]
    pub applied: Option<String>,
    /// `policy_drift`: what the controller assigns.
    #[serde(default)]
    pub assigned: Option<String>,
    #[serde(default)]
    pub drifted: Option<bool>,
    /// `key_warning`: the node's key and its status (None: no warning any more).
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub key_status: Option<String>,
    pub at: Instant,
}

/// An enrollment token as listed (no secret).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub tenant_id: String,
    pub expires: Instant,
    pub max_uses: i64,
    pub uses: i64,
    pub labels: BTreeMap<String, String>,
    pub created: Instant,
}

/// A freshly created enrollment token: the secret is shown once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreatedToken {
    pub info: TokenInfo,
    pub secret: String,
    pub controller_url: String,
    pub org_id: String,
}

impl CreatedToken {
    pub fn install_command(&self) -> String {
        install_command(
            &self.controller_url,
            &self.org_id,
            &self.info.tenant_id,
            &self.secret,
        )
    }
}

/// Single-quotes a value for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub fn install_command(controller_url: &str, org: &str, tenant: &str, token: &str) -> String {
    format!(
        "RITMA_NODE_CONTROLLER_URL={} RITMA_NODE_ORG_ID={} RITMA_NODE_TENANT_ID={} RITMA_ENROLL_TOKEN={} ritma-node",
        shell_quote(controller_url),
        shell_quote(org),
        shell_quote(tenant),
        shell_quote(token)
    )
}

/// The environment a node needs, one `KEY=value` a line.
pub fn env_template(
    controller_url: &str,
    org: &str,
    tenant: &str,
    token: &str,
    state_dir: &str,
) -> String {
    format!(
        "RITMA_NODE_CONTROLLER_URL={}\nRITMA_NODE_ORG_ID={}\nRITMA_NODE_TENANT_ID={}\nRITMA_ENROLL_TOKEN={}\nRITMA_STATE_DIR={}\n",
        shell_quote(controller_url),
        shell_quote(org),
        shell_quote(tenant),
        shell_quote(token),
        shell_quote(state_dir)
    )
}

/// What a post form's server function replies for the page to show
/// (`live::forms`): a line of text, and a panel the server rendered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormReply {
    pub message: Option<String>,
    pub html: Option<String>,
}

/// Errors a server function reports to the page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppError {
    /// No session, or the controller refused the session's token.
    Unauthorized,
    Forbidden(String),
    NotFound(String),
    BadRequest(String),
    /// The controller API cannot be reached or failed.
    Unavailable(String),
    /// The controller asked a node, which did not answer in time (HTTP 504).
    NodeUnreachable(String),
    Internal(String),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Unauthorized => f.write_str("Your session has ended; sign in again."),
            AppError::Forbidden(m) => write!(f, "Not permitted: {m}"),
            AppError::NotFound(m) => write!(f, "Not found: {m}"),
            AppError::BadRequest(m) => write!(f, "Invalid request: {m}"),
            AppError::Unavailable(m) => write!(f, "The controller API is unavailable: {m}"),
            AppError::NodeUnreachable(m) => write!(f, "The node did not answer: {m}"),
            AppError::Internal(m) => write!(f, "Something went wrong: {m}"),
        }
    }
}

impl std::error::Error for AppError {}

impl leptos::server_fn::error::FromServerFnError for AppError {
    type Encoder = leptos::server_fn::codec::JsonEncoding;

    fn from_server_fn_error(value: leptos::server_fn::error::ServerFnErrorErr) -> Self {
        use leptos::server_fn::error::ServerFnErrorErr as E;
        match value {
            E::Request(m) => AppError::Unavailable(format!("console server unreachable ({m})")),
            other => AppError::Internal(other.to_string()),
        }
    }
}

/// "5s ago", "3 min ago", "2 h ago", "4 d ago".
pub fn relative(now_ms: i64, then_ms: i64) -> String {
    let secs = (now_ms - then_ms).max(0) / 1000;
    match secs {
        0..=4 => "just now".to_string(),
        5..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// A count with thousands separators: `1,234,567`.
pub fn human_count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A quantity with its unit; a unit that starts with a multiple (`1M decisions`,
/// `1k files`) reads as a factor: `0.0269 × 1M decisions`.
pub fn quantity_in(quantity: &str, unit: &str) -> String {
    if unit.is_empty() {
        quantity.to_owned()
    } else if unit.starts_with(|c: char| c.is_ascii_digit()) {
        format!("{quantity} × {unit}")
    } else {
        format!("{quantity} {unit}")
    }
}

/// A decimal as text without trailing zeros: `0.0290` → `0.029`, `3.0` → `3`.
pub fn decimal_text(n: &str) -> String {
    if n.contains('.') && !n.contains(['e', 'E']) {
        n.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        n.to_owned()
    }
}

/// An amount of money with at least two decimals: `2.0` → `2.00`,
/// `0.0005` stays.
pub fn money_text(n: &str) -> String {
    if n.contains(['e', 'E']) {
        return n.to_owned();
    }
    match n.split_once('.') {
        None => format!("{n}.00"),
        Some((whole, frac)) if frac.len() < 2 => format!("{whole}.{frac:0<2}"),
        Some(_) => n.to_owned(),
    }
}

/// The date of an RFC 3339 timestamp (`2026-12-06T00:00:00Z` → `2026-12-06`).
pub fn date_of(timestamp: &str) -> &str {
    timestamp.get(..10).unwrap_or(timestamp)
}

pub fn human_bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    // tenths, in integers (keeps float formatting out of the WASM bundle)
    let mut tenths = n.max(0) as i128 * 10;
    let mut i = 0;
    while tenths >= 10 * 1024 && i < UNITS.len() - 1 {
        tenths /= 1024;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[i])
    }
}

pub fn human_duration(secs: i64) -> String {
    let (d, h, m) = (secs / 86_400, (secs % 86_400) / 3600, (secs % 3600) / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else {
        format!("{m}m {}s", secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_round_trip() {
        let q = NodeQuery::from_pairs([("status", "offline"), ("label", "env=prod"), ("q", "")]);
        assert_eq!(q.status.as_deref(), Some("offline"));
        assert_eq!(q.q, None);
        assert_eq!(q.to_query_string(), "?status=offline&label=env%3Dprod");
        assert!(q.is_filtered());
        assert!(!NodeQuery::default().is_filtered());
    }

    #[test]
    fn status_parses_unknown_values() {
        let s: Status = serde_json::from_str("\"quarantined\"").unwrap();
        assert_eq!(s, Status::Unknown);
        assert_eq!(Status::parse("offline"), Some(Status::Offline));
    }

    #[test]
    fn install_command_quotes_values() {
        let cmd = install_command("http://127.0.0.1:8080", "demo", "default", "abc def");
        assert_eq!(
            cmd,
            "RITMA_NODE_CONTROLLER_URL=http://127.0.0.1:8080 RITMA_NODE_ORG_ID=demo RITMA_NODE_TENANT_ID=default RITMA_ENROLL_TOKEN='abc def' ritma-node"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn relative_times() {
        assert_eq!(relative(10_000, 9_000), "just now");
        assert_eq!(relative(70_000, 0), "1 min ago");
        assert_eq!(relative(0, 10_000), "just now");
        assert_eq!(human_bytes(2048), "2.0 KiB");
    }

    #[test]
    fn figures_read_as_people_write_them() {
        assert_eq!(human_count(0), "0");
        assert_eq!(human_count(999), "999");
        assert_eq!(human_count(26_920), "26,920");
        assert_eq!(human_count(1_234_567), "1,234,567");
        assert_eq!(human_count(-1_000), "-1,000");
        assert_eq!(human_bytes(47_377_864), "45.1 MiB");
        assert_eq!(
            quantity_in("0.0269", "1M decisions"),
            "0.0269 × 1M decisions"
        );
        assert_eq!(quantity_in("0.0441", "GiB"), "0.0441 GiB");
        assert_eq!(quantity_in("3", ""), "3");
        assert_eq!(date_of("2026-12-06T00:00:00Z"), "2026-12-06");
        assert_eq!(date_of("bad"), "bad");
        assert_eq!(decimal_text("0.0290"), "0.029");
        assert_eq!(decimal_text("3.0"), "3");
        assert_eq!(decimal_text("120"), "120");
        assert_eq!(money_text("2.0"), "2.00");
        assert_eq!(money_text("0.01"), "0.01");
        assert_eq!(money_text("12"), "12.00");
        assert_eq!(money_text("0.0005"), "0.0005");
        let entry = |from, to| HistoryEntry {
            from,
            to,
            reason: String::new(),
            at: Instant {
                ms: 0,
                text: String::new(),
            },
        };
        assert_eq!(entry(Status::Unseen, Status::Unseen).title(), "Enrolled");
        assert_eq!(
            entry(Status::Unseen, Status::Online).title(),
            "Unseen → Online"
        );
    }
}
