//! Commands from the controller to one node, signed by the org's control key
//! ([`crate::trust`]), bound to the node, with an expiry and a unique id. The
//! node acts on a command only when [`SignedCommand::open`] accepts it and
//! it has not seen its id before; it answers anything else with a refusal.

use chrono::{DateTime, Utc};
use nkeys::KeyPair;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::SCHEMA_VERSION;
use crate::ids::{NodeId, OrgId};
use crate::trust::{self, TrustError};

/// Longest lifetime a command may claim; the node refuses longer ones (its
/// replay memory only has to cover this long).
pub const MAX_COMMAND_TTL_SECS: i64 = 600;
/// How far ahead of the node's clock a command's `issued_at` may be.
pub const COMMAND_CLOCK_SKEW_SECS: i64 = 60;

/// What the controller asks a node to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum CommandKind {
    /// Fetch the assigned policy; `version` is what the controller now assigns.
    PolicyChanged {
        #[schemars(length(min = 1, max = 128))]
        version: String,
    },
    /// Run a connector's checks now and reply (request/reply) with a
    /// [`crate::connectors::DryRunReport`]; nothing is changed on the node.
    ConnectorDryRun {
        #[schemars(length(min = 1, max = 64))]
        connector_id: String,
        config: crate::connectors::ConnectorConfig,
    },
    /// Fetch a fresh bus credential now (e.g. after a key rotation).
    RefreshCredentials,
    /// Reply (request/reply) with a [`crate::diagnostics::DiagnosticBundle`].
    Diagnose,
}

impl CommandKind {
    /// The last subject token of this command.
    pub fn token(&self) -> &'static str {
        match self {
            Self::PolicyChanged { .. } => "policy_changed",
            Self::ConnectorDryRun { .. } => "connector_dry_run",
            Self::RefreshCredentials => "refresh_credentials",
            Self::Diagnose => "diagnose",
        }
    }
}

/// The command itself: what, for which node, from when until when. It
/// travels as JSON text inside a [`SignedCommand`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Command {
    pub v: u16,
    /// Unique per command: a node acts on an id once.
    pub id: uuid::Uuid,
    pub org_id: OrgId,
    /// The only node that may act on it.
    pub node_id: NodeId,
    pub issued_at: DateTime<Utc>,
    /// After this the node refuses it (at most [`MAX_COMMAND_TTL_SECS`] after `issued_at`).
    pub expires_at: DateTime<Utc>,
    #[serde(flatten)]
    pub command: CommandKind,
}

impl Command {
    pub fn new(org: OrgId, node: NodeId, ttl_secs: i64, command: CommandKind) -> Self {
        let now = Utc::now();
        Self {
            v: SCHEMA_VERSION,
            id: uuid::Uuid::new_v4(),
            org_id: org,
            node_id: node,
            issued_at: now,
            expires_at: now + chrono::Duration::seconds(ttl_secs.clamp(1, MAX_COMMAND_TTL_SECS)),
            command,
        }
    }
}

/// `ritma.<org>.<tenant>.node.<node>.cmd.<command>`: a [`Command`] and the
/// org control key's signature over exactly its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedCommand {
    pub v: u16,
    /// The [`Command`] as JSON text, exactly the bytes signed.
    #[schemars(schema_with = "command_text_schema")]
    pub command: String,
    /// The org control key that signed (`V...`), the one the node pinned.
    pub signed_by: String,
    /// Base64url ed25519 signature of `"ritma command v1\n" + command`.
    pub signature: String,
}

/// A string whose content is a [`Command`] in JSON.
fn command_text_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let inner = generator.subschema_for::<Command>();
    schemars::json_schema!({
        "type": "string",
        "description": "The command as JSON text, exactly the bytes signed.",
        "contentMediaType": "application/json",
        "contentSchema": inner,
    })
}

/// Why a node refused a command (the `code` and `error` of its reply).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandRefusal {
    #[error("unreadable command: {0}")]
    Unreadable(String),
    #[error("unsigned command: every command must be signed by the org's control key")]
    Unsigned,
    #[error("command signature refused: {0}")]
    Signature(#[from] TrustError),
    #[error("command is for node {node} of org {org}, not this node")]
    OtherNode { org: String, node: String },
    #[error("command sent on the subject of {subject}, but it is a {command} command")]
    WrongSubject { subject: String, command: String },
    #[error("command expired at {0}")]
    Expired(DateTime<Utc>),
    #[error("command issued at {0}, ahead of this node's clock")]
    FromTheFuture(DateTime<Utc>),
    #[error("command claims a lifetime of {0} s, more than {MAX_COMMAND_TTL_SECS} s")]
    TooLongLived(i64),
    #[error("command {0} was already received: replays are refused")]
    Replayed(uuid::Uuid),
    #[error("too many recent commands remembered; retry later")]
    Busy,
}

impl CommandRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unreadable(_) => "unreadable",
            Self::Unsigned => "unsigned",
            Self::Signature(_) => "bad_signature",
            Self::OtherNode { .. } => "other_node",
            Self::WrongSubject { .. } => "wrong_subject",
            Self::Expired(_) => "expired",
            Self::FromTheFuture(_) => "not_yet_valid",
            Self::TooLongLived(_) => "too_long_lived",
            Self::Replayed(_) => "replayed",
            Self::Busy => "busy",
        }
    }
}

impl SignedCommand {
    pub fn sign(command: &Command, key: &KeyPair) -> Result<Self, TrustError> {
        let text = serde_json::to_string(command).map_err(|e| TrustError::Sign(e.to_string()))?;
        Ok(Self {
            v: SCHEMA_VERSION,
            signature: trust::sign(key, &trust::command_statement(&text))?,
            command: text,
            signed_by: key.public_key(),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Accept `body` only when it is signed by `pinned`, for `node` of `org`,
    /// and current at `now`. The caller still refuses an id it has seen.
    pub fn open(
        body: &[u8],
        pinned: &str,
        org: &OrgId,
        node: &NodeId,
        now: DateTime<Utc>,
    ) -> Result<Command, CommandRefusal> {
        let signed: SignedCommand = serde_json::from_slice(body).map_err(|e| {
            if serde_json::from_slice::<Command>(body).is_ok() {
                CommandRefusal::Unsigned
            } else {
                CommandRefusal::Unreadable(e.to_string())
            }
        })?;
        if signed.signature.is_empty() {
            return Err(CommandRefusal::Unsigned);
        }
        trust::verify(
            pinned,
            &signed.signed_by,
            &trust::command_statement(&signed.command),
            &signed.signature,
        )?;
        let cmd: Command = serde_json::from_str(&signed.command)
            .map_err(|e| CommandRefusal::Unreadable(e.to_string()))?;
        if cmd.v != SCHEMA_VERSION {
            return Err(CommandRefusal::Unreadable(format!(
                "schema version {} (this node speaks {SCHEMA_VERSION})",
                cmd.v
            )));
        }
        if &cmd.org_id != org || &cmd.node_id != node {
            return Err(CommandRefusal::OtherNode {
                org: cmd.org_id.to_string(),
                node: cmd.node_id.to_string(),
            });
        }
        let lifetime = (cmd.expires_at - cmd.issued_at).num_seconds();
        if lifetime > MAX_COMMAND_TTL_SECS {
            return Err(CommandRefusal::TooLongLived(lifetime));
        }
        if now > cmd.expires_at {
            return Err(CommandRefusal::Expired(cmd.expires_at));
        }
        if cmd.issued_at > now + chrono::Duration::seconds(COMMAND_CLOCK_SKEW_SECS) {
            return Err(CommandRefusal::FromTheFuture(cmd.issued_at));
        }
        Ok(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (OrgId, NodeId, NodeId) {
        (
            OrgId::new("acme").unwrap(),
            NodeId::new("web-1").unwrap(),
            NodeId::new("web-2").unwrap(),
        )
    }

    fn refresh(org: &OrgId, node: &NodeId, ttl: i64) -> Command {
        Command::new(
            org.clone(),
            node.clone(),
            ttl,
            CommandKind::RefreshCredentials,
        )
    }

    #[test]
    fn a_signed_command_opens_only_for_its_node_while_current() {
        let (org, n1, n2) = ids();
        let key = trust::control_key_new();
        let pinned = key.public_key();
        let body = SignedCommand::sign(&refresh(&org, &n1, 30), &key)
            .unwrap()
            .encode();
        let now = Utc::now();
        let cmd = SignedCommand::open(&body, &pinned, &org, &n1, now).unwrap();
        assert_eq!(cmd.command, CommandKind::RefreshCredentials);
        assert_eq!(
            SignedCommand::open(&body, &pinned, &org, &n2, now)
                .unwrap_err()
                .code(),
            "other_node"
        );
        let other_org = OrgId::new("other").unwrap();
        assert_eq!(
            SignedCommand::open(&body, &pinned, &other_org, &n1, now)
                .unwrap_err()
                .code(),
            "other_node"
        );
        let later = now + chrono::Duration::seconds(31);
        assert_eq!(
            SignedCommand::open(&body, &pinned, &org, &n1, later)
                .unwrap_err()
                .code(),
            "expired"
        );
        let earlier = now - chrono::Duration::seconds(COMMAND_CLOCK_SKEW_SECS + 5);
        assert_eq!(
            SignedCommand::open(&body, &pinned, &org, &n1, earlier)
                .unwrap_err()
                .code(),
            "not_yet_valid"
        );
    }

    #[test]
    fn unsigned_forged_and_tampered_commands_are_refused() {
        let (org, n1, _) = ids();
        let key = trust::control_key_new();
        let pinned = key.public_key();
        let now = Utc::now();
        let plain = serde_json::to_vec(&refresh(&org, &n1, 30)).unwrap();
        assert_eq!(
            SignedCommand::open(&plain, &pinned, &org, &n1, now).unwrap_err(),
            CommandRefusal::Unsigned
        );
        assert_eq!(
            SignedCommand::open(b"{", &pinned, &org, &n1, now)
                .unwrap_err()
                .code(),
            "unreadable"
        );
        // Signed by a key the node did not pin.
        let rogue = trust::control_key_new();
        let forged = SignedCommand::sign(&refresh(&org, &n1, 30), &rogue).unwrap();
        assert_eq!(
            SignedCommand::open(&forged.encode(), &pinned, &org, &n1, now)
                .unwrap_err()
                .code(),
            "bad_signature"
        );
        // The rogue key claims to be the pinned one.
        let claimed = SignedCommand {
            signed_by: pinned.clone(),
            ..forged
        };
        assert_eq!(
            SignedCommand::open(&claimed.encode(), &pinned, &org, &n1, now)
                .unwrap_err()
                .code(),
            "bad_signature"
        );
        // A genuine command moved to another node by editing its text.
        let genuine = SignedCommand::sign(&refresh(&org, &n1, 30), &key).unwrap();
        let edited = SignedCommand {
            command: genuine.command.replace("web-1", "web-2"),
            ..genuine
        };
        let n2 = NodeId::new("web-2").unwrap();
        assert_eq!(
            SignedCommand::open(&edited.encode(), &pinned, &org, &n2, now)
                .unwrap_err()
                .code(),
            "bad_signature"
        );
        // A long-lived command, even properly signed.
        let mut long = refresh(&org, &n1, 30);
        long.expires_at = long.issued_at + chrono::Duration::seconds(MAX_COMMAND_TTL_SECS + 1);
        let long = SignedCommand::sign(&long, &key).unwrap().encode();
        assert_eq!(
            SignedCommand::open(&long, &pinned, &org, &n1, now)
                .unwrap_err()
                .code(),
            "too_long_lived"
        );
    }
}
