//! Every NATS subject the product uses is built and parsed here.
//!
//! Layout (the integrators' contract, documented in `docs/asyncapi.yaml`):
//! - `ritma.<org>.<tenant>.node.<node>.{heartbeat,slo,usage,events}`: node to bus,
//!   captured by JetStream;
//! - `ritma.<org>.<tenant>.node.<node>.cmd.<command>`: controller to node;
//! - `ritma.<org>.<tenant>.state.node.<node>`: controller to everyone, after commit;
//! - `ritma_sys.*`: the controller's own internal subjects (dead letters);
//! - `$SYS.ACCOUNT.<account>.{CONNECT,DISCONNECT}`: the broker's own connection
//!   events, read by the controller in the system account.

use std::fmt;

use crate::ids::{IdError, NodeId, OrgId, TenantId};

pub const ROOT: &str = "ritma";
const SYSTEM_ROOT: &str = "ritma_sys";

/// What a node publishes; each kind has its own subject suffix and schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TelemetryKind {
    Heartbeat,
    Slo,
    Usage,
    Events,
}

impl TelemetryKind {
    pub const ALL: [TelemetryKind; 4] = [Self::Heartbeat, Self::Slo, Self::Usage, Self::Events];

    pub fn token(self) -> &'static str {
        match self {
            Self::Heartbeat => "heartbeat",
            Self::Slo => "slo",
            Self::Usage => "usage",
            Self::Events => "events",
        }
    }

    fn from_token(token: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.token() == token)
    }
}

impl fmt::Display for TelemetryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("subject {0:?} is not a ritma node telemetry subject")]
    NotTelemetry(String),
    #[error("subject {subject:?} has an invalid id: {source}")]
    BadId { subject: String, source: IdError },
}

/// The scope of one node: everything needed to build its subjects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeSubject {
    pub org: OrgId,
    pub tenant: TenantId,
    pub node: NodeId,
}

impl NodeSubject {
    pub fn new(org: OrgId, tenant: TenantId, node: NodeId) -> Self {
        Self { org, tenant, node }
    }

    fn prefix(&self) -> String {
        format!("{ROOT}.{}.{}.node.{}", self.org, self.tenant, self.node)
    }

    /// Where this node publishes telemetry of `kind`.
    pub fn telemetry(&self, kind: TelemetryKind) -> String {
        format!("{}.{}", self.prefix(), kind.token())
    }

    /// One command sent to this node, e.g. `policy_changed`.
    pub fn command(&self, command: &str) -> String {
        format!("{}.cmd.{command}", self.prefix())
    }

    /// All commands for this node (what the node subscribes to).
    pub fn commands_wildcard(&self) -> String {
        format!("{}.cmd.>", self.prefix())
    }

    /// Where the controller announces this node's state changes.
    pub fn state(&self) -> String {
        format!(
            "{ROOT}.{}.{}.state.node.{}",
            self.org, self.tenant, self.node
        )
    }

    /// The private reply-inbox prefix of this node's connection, so that no
    /// other node of the org can read its replies (a plain `_INBOX.>` grant
    /// would allow that).
    pub fn inbox_prefix(&self) -> String {
        format!("_INBOX_{}", self.node)
    }

    /// Parse a telemetry subject into the node scope and the kind.
    pub fn parse_telemetry(subject: &str) -> Result<(Self, TelemetryKind), SubjectError> {
        let not = || SubjectError::NotTelemetry(subject.chars().take(200).collect());
        let [root, org, tenant, node_lit, node, kind] = six_tokens(subject).ok_or_else(not)?;
        if root != ROOT || node_lit != "node" {
            return Err(not());
        }
        let kind = TelemetryKind::from_token(kind).ok_or_else(not)?;
        let bad = |source| SubjectError::BadId {
            subject: subject.chars().take(200).collect(),
            source,
        };
        Ok((
            Self {
                org: OrgId::new(org).map_err(bad)?,
                tenant: TenantId::new(tenant).map_err(bad)?,
                node: NodeId::new(node).map_err(bad)?,
            },
            kind,
        ))
    }
}

/// The org's audit trail: every committed audit entry, in order.
pub fn audit(org: &OrgId) -> String {
    format!("{ROOT}.{org}.audit")
}

/// The org's alert notifications: every firing and resolved alert.
pub fn alerts(org: &OrgId) -> String {
    format!("{ROOT}.{org}.alerts")
}

/// Every org's alert notifications: what the console's bus credential may
/// read besides node state changes (its live banner).
pub fn all_alerts() -> String {
    format!("{ROOT}.*.alerts")
}

/// The org of an alert subject (`ritma.<org>.alerts`).
pub fn alerts_org(subject: &str) -> Option<OrgId> {
    let mut parts = subject.split('.');
    let (root, org, leaf) = (parts.next()?, parts.next()?, parts.next()?);
    if root != ROOT || leaf != "alerts" || parts.next().is_some() {
        return None;
    }
    OrgId::new(org).ok()
}

/// The org's bulk job progress: each running job's counts, throttled, and
/// its final state (the console shows them live).
pub fn jobs(org: &OrgId) -> String {
    format!("{ROOT}.{org}.jobs")
}

/// Every org's bulk job progress: what the console's bus credential may read
/// besides node state changes and alerts.
pub fn all_jobs() -> String {
    format!("{ROOT}.*.jobs")
}

/// The org of a job progress subject (`ritma.<org>.jobs`).
pub fn jobs_org(subject: &str) -> Option<OrgId> {
    let mut parts = subject.split('.');
    let (root, org, leaf) = (parts.next()?, parts.next()?, parts.next()?);
    if root != ROOT || leaf != "jobs" || parts.next().is_some() {
        return None;
    }
    OrgId::new(org).ok()
}

/// The org's rollup cue: its hourly rollups grew (throttled per org).
pub fn activity(org: &OrgId) -> String {
    format!("{ROOT}.{org}.activity")
}

/// Every org's rollup cue: what the console's bus credential may read
/// besides state changes, alerts and job progress.
pub fn all_activity() -> String {
    format!("{ROOT}.*.activity")
}

/// The org of a rollup cue subject (`ritma.<org>.activity`).
pub fn activity_org(subject: &str) -> Option<OrgId> {
    let mut parts = subject.split('.');
    let (root, org, leaf) = (parts.next()?, parts.next()?, parts.next()?);
    if root != ROOT || leaf != "activity" || parts.next().is_some() {
        return None;
    }
    OrgId::new(org).ok()
}

/// Every telemetry subject of one org (the org account's service export).
pub fn org_all(org: &OrgId) -> String {
    format!("{ROOT}.{org}.>")
}

/// Every state change of one org, or of one tenant of it.
pub fn state_changes(org: &OrgId, tenant: Option<&TenantId>) -> String {
    match tenant {
        Some(t) => format!("{ROOT}.{org}.{t}.state.>"),
        None => format!("{ROOT}.{org}.*.state.>"),
    }
}

/// Every node state change of every org: what the console's bus credential
/// (in the controller account, which every org account's service import
/// reaches) may subscribe to, and nothing else.
pub fn all_state_changes() -> String {
    format!("{ROOT}.*.*.state.node.*")
}

/// The org of a node state-change subject (`ritma.<org>.<tenant>.state.node.<node>`).
pub fn state_change_org(subject: &str) -> Option<OrgId> {
    let [root, org, tenant, state, node_lit, node] = six_tokens(subject)?;
    if root != ROOT
        || state != "state"
        || node_lit != "node"
        || TenantId::new(tenant).is_err()
        || NodeId::new(node).is_err()
    {
        return None;
    }
    OrgId::new(org).ok()
}

/// The tokens of a subject of exactly six, without collecting them (the
/// ingest parses one per message).
fn six_tokens(subject: &str) -> Option<[&str; 6]> {
    let mut parts = subject.split('.');
    let tokens = [
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    ];
    parts.next().is_none().then_some(tokens)
}

/// The outer bound of what an integrator of `org` (optionally one tenant)
/// may ever be granted; what it gets is [`integrator_subjects`].
pub fn integrator_scope(org: &OrgId, tenant: Option<&TenantId>) -> String {
    match tenant {
        Some(t) => format!("{ROOT}.{org}.{t}.>"),
        None => format!("{ROOT}.{org}.>"),
    }
}

/// What an integrator may read beyond the default (telemetry and state
/// changes): each only when asked for by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegratorExtra {
    /// `ritma.<org>.<tenant>.node.*.cmd.>`: commands the controller sends nodes.
    Commands,
    /// `ritma.<org>.audit`: the org's audit trail (org-wide, so never for a
    /// tenant-scoped integrator).
    Audit,
    /// `ritma.<org>.alerts`: the org's alert notifications (org-wide, so
    /// never for a tenant-scoped integrator).
    Alerts,
}

impl IntegratorExtra {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "commands" => Some(Self::Commands),
            "audit" => Some(Self::Audit),
            "alerts" => Some(Self::Alerts),
            _ => None,
        }
    }
}

/// Node telemetry of one kind across an org (or one tenant of it).
pub fn telemetry_of(org: &OrgId, tenant: Option<&TenantId>, kind: TelemetryKind) -> String {
    let t = tenant.map_or("*", TenantId::as_str);
    format!("{ROOT}.{org}.{t}.node.*.{}", kind.token())
}

/// Commands to every node of an org (or one tenant of it).
pub fn commands_of(org: &OrgId, tenant: Option<&TenantId>) -> String {
    let t = tenant.map_or("*", TenantId::as_str);
    format!("{ROOT}.{org}.{t}.node.*.cmd.>")
}

/// The subjects an integrator is granted: node telemetry and state changes
/// of its org (or tenant), plus each extra it asked for by name.
pub fn integrator_subjects(
    org: &OrgId,
    tenant: Option<&TenantId>,
    extras: &[IntegratorExtra],
) -> Vec<String> {
    let mut out: Vec<String> = TelemetryKind::ALL
        .iter()
        .map(|k| telemetry_of(org, tenant, *k))
        .collect();
    out.push(state_changes(org, tenant));
    for extra in extras {
        let s = match extra {
            IntegratorExtra::Commands => commands_of(org, tenant),
            IntegratorExtra::Audit => audit(org),
            IntegratorExtra::Alerts => alerts(org),
        };
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// True when every subject `inner` can match is also matched by `outer`
/// (both may hold wildcards): a grant of `outer` covers a request for `inner`.
pub fn covers(outer: &str, inner: &str) -> bool {
    let mut o = outer.split('.');
    let mut i = inner.split('.');
    loop {
        match (o.next(), i.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(t)) if t != ">" => {}
            (Some(a), Some(b)) if a == b && a != "*" && a != ">" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Commands to every node of an org (what the controller may publish there).
pub fn org_commands(org: &OrgId) -> String {
    format!("{ROOT}.{org}.*.node.*.cmd.>")
}

/// Filter of the central stream: node telemetry of every org.
pub fn all_telemetry() -> String {
    format!("{ROOT}.*.*.node.*.*")
}

/// Where rejected messages go, with the reason as the last token.
pub fn dead_letter(reason: &str) -> String {
    format!("{SYSTEM_ROOT}.deadletter.{reason}")
}

/// Filter of the dead-letter stream.
pub fn all_dead_letters() -> String {
    format!("{SYSTEM_ROOT}.deadletter.>")
}

/// Benchmarks only: a raw stream's subject beside the product's (same server,
/// same sizes, no ingest), to measure the bus's own ceiling.
pub fn bench_raw(node: &NodeId) -> String {
    format!("{SYSTEM_ROOT}.bench.{node}")
}

/// Filter of the benchmarks' raw stream.
pub fn all_bench_raw() -> String {
    format!("{SYSTEM_ROOT}.bench.>")
}

/// `Nats-Msg-Id` for a node's message, stable across retries. Optional: the
/// node daemon does not send it (the database absorbs re-sent copies by
/// node and `seq`); a publisher that does gets its retries dropped by the
/// stream's duplicate window.
pub fn message_id(node: &NodeId, seq: u64) -> String {
    format!("{node}:{seq}")
}

/// The NATS server's system-account subjects (server-defined names).
const BROKER_SYS: &str = "$SYS.ACCOUNT";

/// A broker connection event: a client of some account connected or disconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerConnection {
    Connect,
    Disconnect,
}

impl BrokerConnection {
    fn token(self) -> &'static str {
        match self {
            Self::Connect => "CONNECT",
            Self::Disconnect => "DISCONNECT",
        }
    }
}

/// `$SYS.ACCOUNT.*.CONNECT` / `.DISCONNECT`: every account's connection events,
/// published by every server of a cluster for its own clients.
pub fn broker_connection_events(event: BrokerConnection) -> String {
    format!("{BROKER_SYS}.*.{}", event.token())
}

/// `$SYS.ACCOUNT.<account>.CONNECT` / `.DISCONNECT` of one account.
pub fn broker_account_connection_events(account: &str, event: BrokerConnection) -> String {
    format!("{BROKER_SYS}.{account}.{}", event.token())
}

/// `$SYS.REQ.ACCOUNT.<account>.CONNZ`: every server of a cluster answers
/// with its own open connections of that account (system account only).
pub fn broker_account_connz(account: &str) -> String {
    format!("$SYS.REQ.ACCOUNT.{account}.CONNZ")
}

/// The account public key and event a broker connection-event subject names.
pub fn parse_broker_connection_event(subject: &str) -> Option<(&str, BrokerConnection)> {
    let rest = subject.strip_prefix(BROKER_SYS)?.strip_prefix('.')?;
    let (account, event) = rest.split_once('.')?;
    if account.is_empty() || account.contains(['*', '>']) {
        return None;
    }
    let event = match event {
        "CONNECT" => BrokerConnection::Connect,
        "DISCONNECT" => BrokerConnection::Disconnect,
        _ => return None,
    };
    Some((account, event))
}

/// True when `subject` is inside `pattern` under NATS wildcard rules.
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn broker_connection_event_subjects_round_trip() {
        use super::{BrokerConnection::*, *};
        let acc = "ABCDEF";
        for e in [Connect, Disconnect] {
            let subject = broker_account_connection_events(acc, e);
            assert!(matches(&broker_connection_events(e), &subject));
            assert_eq!(parse_broker_connection_event(&subject), Some((acc, e)));
        }
        assert_eq!(broker_connection_events(Connect), "$SYS.ACCOUNT.*.CONNECT");
        assert_eq!(
            parse_broker_connection_event("$SYS.ACCOUNT.A.LEAFNODE.CONNECT"),
            None
        );
        assert_eq!(
            parse_broker_connection_event("$SYS.ACCOUNT.*.CONNECT"),
            None
        );
        assert_eq!(parse_broker_connection_event("ritma.a.b.CONNECT"), None);
    }

    use super::*;

    fn scope() -> NodeSubject {
        NodeSubject::new(
            OrgId::new("acme").unwrap(),
            TenantId::new("prod").unwrap(),
            NodeId::new("web-1").unwrap(),
        )
    }

    #[test]
    fn builds_the_documented_layout() {
        let s = scope();
        assert_eq!(
            s.telemetry(TelemetryKind::Heartbeat),
            "ritma.acme.prod.node.web-1.heartbeat"
        );
        assert_eq!(
            s.command("policy_changed"),
            "ritma.acme.prod.node.web-1.cmd.policy_changed"
        );
        assert_eq!(s.state(), "ritma.acme.prod.state.node.web-1");
        assert_eq!(all_telemetry(), "ritma.*.*.node.*.*");
    }

    #[test]
    fn parse_round_trips_every_kind() {
        let s = scope();
        for kind in TelemetryKind::ALL {
            let (parsed, k) = NodeSubject::parse_telemetry(&s.telemetry(kind)).unwrap();
            assert_eq!((parsed, k), (s.clone(), kind));
            assert!(matches(&all_telemetry(), &s.telemetry(kind)));
        }
    }

    #[test]
    fn parse_rejects_foreign_subjects() {
        for bad in [
            "ritma.acme.prod.node.web-1",
            "ritma.acme.prod.node.web-1.cmd.x",
            "ritma.acme.prod.state.node.web-1",
            "other.acme.prod.node.web-1.heartbeat",
            "ritma.ACME.prod.node.web-1.heartbeat",
            "ritma.acme.prod.node.web-1.heartbeat.extra",
        ] {
            assert!(NodeSubject::parse_telemetry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn integrators_get_telemetry_and_state_and_extras_only_by_name() {
        let org = OrgId::new("acme").unwrap();
        let default = integrator_subjects(&org, None, &[]);
        let cmd = scope().command("policy_changed");
        let audit_subject = audit(&org);
        for s in [&cmd, &audit_subject] {
            assert!(!default.iter().any(|g| matches(g, s)), "{s} in {default:?}");
        }
        for kind in TelemetryKind::ALL {
            assert!(default.iter().any(|g| matches(g, &scope().telemetry(kind))));
        }
        assert!(default.iter().any(|g| matches(g, &scope().state())));
        let more = integrator_subjects(
            &org,
            None,
            &[IntegratorExtra::Commands, IntegratorExtra::Audit],
        );
        assert!(more.iter().any(|g| matches(g, &cmd)));
        assert!(more.iter().any(|g| matches(g, &audit_subject)));
        let dev = TenantId::new("dev").unwrap();
        let tenant = integrator_subjects(&org, Some(&dev), &[IntegratorExtra::Commands]);
        assert!(!tenant.iter().any(|g| matches(g, &cmd)), "prod is not dev");
    }

    #[test]
    fn covers_compares_wildcard_subjects() {
        assert!(covers("ritma.acme.>", "ritma.acme.*.node.*.heartbeat"));
        assert!(covers(
            "ritma.acme.*.node.*.heartbeat",
            "ritma.acme.prod.node.n1.heartbeat"
        ));
        assert!(covers(
            "ritma.acme.*.node.*.heartbeat",
            "ritma.acme.*.node.*.heartbeat"
        ));
        assert!(!covers("ritma.acme.*.node.*.heartbeat", "ritma.acme.>"));
        assert!(!covers(
            "ritma.acme.*.node.*.heartbeat",
            "ritma.acme.prod.node.>"
        ));
        assert!(!covers("ritma.acme.prod.>", "ritma.acme.*.state.>"));
        assert!(!covers("ritma.acme.*.state.>", "ritma.acme.*.state"));
    }

    #[test]
    fn state_change_subjects_of_every_org() {
        let s = scope();
        assert_eq!(all_state_changes(), "ritma.*.*.state.node.*");
        assert!(matches(&all_state_changes(), &s.state()));
        assert_eq!(state_change_org(&s.state()).unwrap().as_str(), "acme");
        for other in [
            s.telemetry(TelemetryKind::Heartbeat),
            s.command("policy_changed"),
            audit(&s.org),
            "ritma.acme.prod.state.node".to_string(),
            "ritma.acme.prod.state.node.web-1.x".to_string(),
        ] {
            assert!(!matches(&all_state_changes(), &other), "{other}");
            assert!(state_change_org(&other).is_none(), "{other}");
        }
    }

    #[test]
    fn wildcard_matching() {
        assert!(matches("ritma.acme.>", "ritma.acme.prod.state.node.x"));
        assert!(!matches("ritma.acme.>", "ritma.acme"));
        assert!(!matches("ritma.acme.>", "ritma.other.prod.state.node.x"));
        assert!(matches("a.*.c", "a.b.c"));
        assert!(!matches("a.*.c", "a.b.d"));
    }
}
