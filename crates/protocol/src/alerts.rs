//! Alerting: the events a rule can watch, and the notification every channel
//! (webhook body, Slack text, e-mail, `ritma.<org>.alerts`) is made from.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{NodeId, OrgId, TenantId};

/// What an alert rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    NodeOffline,
    NodeDegraded,
    NodeFlapping,
    PolicyDrift,
    KeyWarning,
    /// Fires once per enrollment; never resolves.
    NodeEnrolled,
    /// A node refused a policy bundle (bad signature, not assigned to it):
    /// fires once per refusal.
    PolicyRejected,
    /// Control plane (operators only): the ingest's watermark is more than
    /// `threshold` seconds behind the clock.
    IngestLag,
    /// Control plane (operators only): more than `threshold` dead letters in
    /// the last five minutes.
    DeadLetterSpike,
}

impl AlertEvent {
    pub const ALL: [AlertEvent; 9] = [
        Self::NodeOffline,
        Self::NodeDegraded,
        Self::NodeFlapping,
        Self::PolicyDrift,
        Self::KeyWarning,
        Self::NodeEnrolled,
        Self::PolicyRejected,
        Self::IngestLag,
        Self::DeadLetterSpike,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NodeOffline => "node_offline",
            Self::NodeDegraded => "node_degraded",
            Self::NodeFlapping => "node_flapping",
            Self::PolicyDrift => "policy_drift",
            Self::KeyWarning => "key_warning",
            Self::NodeEnrolled => "node_enrolled",
            Self::PolicyRejected => "policy_rejected",
            Self::IngestLag => "ingest_lag",
            Self::DeadLetterSpike => "dead_letter_spike",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// Events about the control plane as a whole (not one org's nodes):
    /// only the platform's operators may watch them.
    pub fn is_control_plane(self) -> bool {
        matches!(self, Self::IngestLag | Self::DeadLetterSpike)
    }

    /// Events that fire once and never resolve.
    pub fn is_one_shot(self) -> bool {
        matches!(self, Self::NodeEnrolled | Self::PolicyRejected)
    }

    /// Events that need a `threshold`.
    pub fn needs_threshold(self) -> bool {
        self.is_control_plane()
    }
}

/// Whether a notification opens or closes an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Firing,
    Resolved,
    /// Sent by `POST .../notification-channels/{id}/test`.
    Test,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
            Self::Test => "test",
        }
    }
}

/// One notification about one alert. The webhook body (with `delivery_id`
/// and `sent_at` added per attempt) and the `ritma.<org>.alerts` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlertNotification {
    pub v: u16,
    pub alert_id: uuid::Uuid,
    pub org_id: OrgId,
    pub tenant_id: Option<TenantId>,
    pub node_id: Option<NodeId>,
    pub event: AlertEvent,
    pub status: AlertStatus,
    /// When the condition began (firing) or ended (resolved).
    pub at: DateTime<Utc>,
    pub rule_id: uuid::Uuid,
    #[schemars(length(max = 128))]
    pub rule_name: String,
    /// One line for people: what, where, why.
    #[schemars(length(max = 512))]
    pub summary: String,
    #[schemars(length(max = 512))]
    pub detail: String,
}

impl AlertNotification {
    /// The one line a person reads first (Slack text, e-mail subject).
    pub fn headline(&self) -> String {
        let status = match self.status {
            AlertStatus::Firing => "FIRING",
            AlertStatus::Resolved => "RESOLVED",
            AlertStatus::Test => "TEST",
        };
        format!("[{status}] {}: {}", self.rule_name, self.summary)
    }
}

/// What happened to a node that an alert cares about, read from a state
/// change: `Open` starts (or keeps) a condition, `Close` ends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Open { event: AlertEvent, detail: String },
    Close { event: AlertEvent, detail: String },
}

/// The alert conditions a node state change opens or closes.
pub fn conditions_of(change: &crate::StateChangeKind) -> Vec<Condition> {
    use crate::StateChangeKind as K;
    let status_event = |s: &str| match s {
        "offline" => Some(AlertEvent::NodeOffline),
        "degraded" => Some(AlertEvent::NodeDegraded),
        "flapping" => Some(AlertEvent::NodeFlapping),
        _ => None,
    };
    match change {
        K::Status { from, to, reason } => {
            let (from, to) = (from.as_str(), to.as_str());
            let mut out = Vec::new();
            if let Some(event) = status_event(from).filter(|_| from != to) {
                out.push(Condition::Close {
                    event,
                    detail: format!("now {to}: {reason}"),
                });
            }
            if to == "decommissioned" {
                for event in [
                    AlertEvent::PolicyDrift,
                    AlertEvent::KeyWarning,
                    AlertEvent::NodeOffline,
                ] {
                    out.push(Condition::Close {
                        event,
                        detail: "decommissioned".into(),
                    });
                }
            }
            if let Some(event) = status_event(to).filter(|_| from != to) {
                out.push(Condition::Open {
                    event,
                    detail: reason.clone(),
                });
            }
            out
        }
        K::Enrolled { hostname } => vec![Condition::Open {
            event: AlertEvent::NodeEnrolled,
            detail: format!("enrolled from host {hostname}"),
        }],
        K::PolicyApplied { .. } => Vec::new(),
        K::PolicyRejected { reason } => vec![Condition::Open {
            event: AlertEvent::PolicyRejected,
            detail: format!("refused a policy: {reason}"),
        }],
        K::PolicyDrift {
            drifted,
            assigned,
            applied,
        } => {
            let detail = format!(
                "assigned {}, applied {}",
                assigned.as_deref().unwrap_or("none"),
                applied.as_deref().unwrap_or("none")
            );
            let event = AlertEvent::PolicyDrift;
            vec![if *drifted {
                Condition::Open { event, detail }
            } else {
                Condition::Close { event, detail }
            }]
        }
        K::KeyWarning { key_id, key_status } => {
            let event = AlertEvent::KeyWarning;
            let key = key_id.as_deref().unwrap_or("unknown key");
            vec![match key_status {
                Some(s) => Condition::Open {
                    event,
                    detail: format!("signs with {key}, which is {}", s.as_str()),
                },
                None => Condition::Close {
                    event,
                    detail: format!("no longer signs with a bad key ({key})"),
                },
            }]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NodeStatus, StateChangeKind};

    fn status(from: NodeStatus, to: NodeStatus) -> StateChangeKind {
        StateChangeKind::Status {
            from,
            to,
            reason: "why".into(),
        }
    }

    #[test]
    fn going_offline_opens_and_coming_back_closes() {
        let open = conditions_of(&status(NodeStatus::Stale, NodeStatus::Offline));
        assert_eq!(
            open,
            vec![Condition::Open {
                event: AlertEvent::NodeOffline,
                detail: "why".into()
            }]
        );
        let close = conditions_of(&status(NodeStatus::Offline, NodeStatus::Online));
        assert!(matches!(
            close.as_slice(),
            [Condition::Close {
                event: AlertEvent::NodeOffline,
                ..
            }]
        ));
        // Degraded to offline closes one condition and opens the other.
        let both = conditions_of(&status(NodeStatus::Degraded, NodeStatus::Offline));
        assert_eq!(both.len(), 2);
        assert!(conditions_of(&status(NodeStatus::Unseen, NodeStatus::Online)).is_empty());
    }

    #[test]
    fn every_event_name_round_trips() {
        for e in AlertEvent::ALL {
            assert_eq!(AlertEvent::parse(e.as_str()), Some(e));
            let json = serde_json::to_value(e).unwrap();
            assert_eq!(json, serde_json::Value::String(e.as_str().into()));
        }
        assert_eq!(AlertEvent::parse("node_exploded"), None);
    }
}
