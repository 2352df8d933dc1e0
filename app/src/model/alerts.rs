//! Alerting (rules, channels, silences, deliveries, alerts): the controller's JSON
//! deserializes straight into these (times via [`Instant`]), the same types cross to
//! the browser, and the request bodies are typed too.

use super::Instant;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Events a rule can watch, as the controller names them (ritma_protocol::AlertEvent).
pub const ALERT_EVENTS: [&str; 8] = [
    "node_offline",
    "node_degraded",
    "node_flapping",
    "policy_drift",
    "key_warning",
    "node_enrolled",
    "ingest_lag",
    "dead_letter_spike",
];

/// Events about the control plane: they need a threshold (operators only).
pub fn needs_threshold(event: &str) -> bool {
    matches!(event, "ingest_lag" | "dead_letter_spike")
}

pub const CHANNEL_KINDS: [&str; 3] = ["webhook", "slack", "email"];

/// `GET .../notification-channels` item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    pub id: String,
    pub name: String,
    pub kind: String,
    /// Redacted: the URL's scheme and host, or the e-mail address.
    pub target: String,
    pub created_by: String,
    pub created_at: Instant,
}

/// `POST .../notification-channels` reply: the channel and, for a webhook, its
/// signing secret (shown once).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelCreated {
    #[serde(flatten)]
    pub channel: Channel,
    #[serde(default)]
    pub secret: Option<String>,
}

impl Delivery {
    /// How a test send went, in one line.
    pub fn test_text(&self) -> String {
        let status = self
            .response_status
            .map(|s| format!(" (HTTP {s})"))
            .unwrap_or_default();
        match self.state.as_str() {
            "delivered" => format!("Test delivered{status}."),
            other => format!(
                "Test {other}{status}: {}",
                self.last_error.as_deref().unwrap_or("no error reported")
            ),
        }
    }
}

/// One notification to one channel (the delivery log), or a test send.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: i64,
    #[serde(default)]
    pub channel_id: Option<String>,
    #[serde(default)]
    pub alert_id: Option<String>,
    #[serde(default)]
    pub rule_name: Option<String>,
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub node_id: Option<String>,
    /// `firing`, `resolved` or `test`.
    pub status: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i32,
    #[serde(default)]
    pub response_status: Option<i32>,
    #[serde(default)]
    pub last_error: Option<String>,
    pub created_at: Instant,
    #[serde(default)]
    pub next_attempt_at: Option<Instant>,
    #[serde(default)]
    pub delivered_at: Option<Instant>,
}

/// A channel with its latest deliveries (the channels page).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelWithLog {
    pub channel: Channel,
    /// The log, or why it could not be read.
    pub deliveries: Result<Vec<Delivery>, String>,
}

/// `GET .../alert-rules` item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub event: String,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub for_secs: i64,
    pub repeat_secs: i64,
    #[serde(default)]
    pub threshold: Option<i64>,
    #[serde(default)]
    pub channels: Vec<String>,
    pub created_by: String,
    pub created_at: Instant,
}

/// The rules page: rules and the channels they may notify.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RulesView {
    pub rules: Vec<Rule>,
    pub channels: Vec<Channel>,
}

/// `GET .../silences` item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    #[serde(default)]
    pub rule_id: Option<String>,
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub node_id: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub comment: String,
    pub created_by: String,
    pub starts_at: Instant,
    pub ends_at: Instant,
    pub active: bool,
}

impl Silence {
    /// What the silence matches, for people ("every alert" when nothing).
    pub fn matchers(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("rule", &self.rule_id),
            ("event", &self.event),
            ("tenant", &self.tenant_id),
            ("node", &self.node_id),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k}={v}"));
            }
        }
        parts.extend(self.labels.iter().map(|(k, v)| format!("label {k}={v}")));
        if parts.is_empty() {
            "every alert".into()
        } else {
            parts.join(", ")
        }
    }
}

/// `GET .../alerts` item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub rule_id: String,
    pub rule_name: String,
    pub event: String,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub node_id: Option<String>,
    /// `pending`, `firing` or `resolved`.
    pub state: String,
    pub detail: String,
    pub opened_at: Instant,
    #[serde(default)]
    pub fired_at: Option<Instant>,
    #[serde(default)]
    pub resolved_at: Option<Instant>,
    pub silenced: bool,
}

impl Alert {
    /// The banner's line for a fetched alert.
    pub fn headline(&self) -> String {
        headline(
            &self.rule_name,
            &self.event,
            self.node_id.as_deref(),
            &self.detail,
        )
    }
}

/// "rule: node n-1 node offline (detail)".
pub fn headline(rule: &str, event: &str, node: Option<&str>, detail: &str) -> String {
    let what = event.replace('_', " ");
    let mut s = match node {
        Some(n) => format!("{rule}: {what} · node {n}"),
        None => format!("{rule}: {what}"),
    };
    if !detail.is_empty() {
        s.push_str(&format!(" ({detail})"));
    }
    s
}

/// The alerts page: open (pending and firing) and resolved in the last day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertsView {
    pub open: Vec<Alert>,
    pub resolved: Vec<Alert>,
}

/// An alert notification as pushed to browsers over `/live` (event `alert`), made
/// from `ritma.<org>.alerts`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveAlert {
    pub alert_id: String,
    /// `firing` or `resolved`.
    pub status: String,
    pub event: String,
    #[serde(default)]
    pub node_id: Option<String>,
    pub rule_name: String,
    /// The notification's one line for people.
    pub headline: String,
    pub at: Instant,
}

/// "5m", "1h 30m", "0s" for rule durations.
pub fn short_duration(secs: i64) -> String {
    if secs <= 0 {
        return "0s".into();
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = Vec::new();
    if h > 0 {
        out.push(format!("{h}h"));
    }
    if m > 0 {
        out.push(format!("{m}m"));
    }
    if s > 0 {
        out.push(format!("{s}s"));
    }
    out.join(" ")
}

/// Parses "90", "90s", "5m", "2h", "1d", "1h30m" into seconds.
pub fn parse_duration(field: &str, text: &str) -> Result<i64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(0);
    }
    if let Ok(n) = t.parse::<i64>() {
        return if n >= 0 {
            Ok(n)
        } else {
            Err(format!("{field} must not be negative"))
        };
    }
    let bad = || format!("{field}: {t:?} is not a duration (e.g. 90s, 5m, 2h, 1d)");
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            ' ' => continue,
            _ => return Err(bad()),
        };
        let n: i64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("for", ""), Ok(0));
        assert_eq!(parse_duration("for", "90"), Ok(90));
        assert_eq!(parse_duration("for", "5m"), Ok(300));
        assert_eq!(parse_duration("for", "1h30m"), Ok(5400));
        assert_eq!(parse_duration("for", "1d"), Ok(86_400));
        assert!(parse_duration("for", "5x").is_err());
        assert!(parse_duration("for", "5m3").is_err());
        assert!(parse_duration("for", "-3").is_err());
        assert!(parse_duration("for", "99999999999999999d").is_err());
        assert_eq!(short_duration(5400), "1h 30m");
        assert_eq!(short_duration(0), "0s");
    }

    #[test]
    fn a_silence_names_what_it_matches() {
        let mut s = Silence {
            id: "s".into(),
            rule_id: None,
            event: Some("node_offline".into()),
            tenant_id: None,
            node_id: Some("n-1".into()),
            labels: BTreeMap::from([("env".into(), "prod".into())]),
            comment: String::new(),
            created_by: "a".into(),
            starts_at: Instant {
                ms: 0,
                text: String::new(),
            },
            ends_at: Instant {
                ms: 0,
                text: String::new(),
            },
            active: true,
        };
        assert_eq!(s.matchers(), "event=node_offline, node=n-1, label env=prod");
        s.event = None;
        s.node_id = None;
        s.labels.clear();
        assert_eq!(s.matchers(), "every alert");
    }
}
