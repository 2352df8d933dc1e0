//! The controller's commands on this node's command subjects. A command is
//! acted on only when it is signed by the pinned control key, names this
//! node, is current, and was not received before; anything else gets a
//! refusal (the reply, when the sender asked for one, and a log line).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use ritma_protocol::{Command, CommandKind, CommandRefusal, NodeId, OrgId, SignedCommand};

use crate::compliance::ComplianceIndex;
use crate::recorder::Recorder;
use crate::trust::PinnedKey;

/// Commands remembered at once; each is forgotten once expired (at most
/// ten minutes), so only a flood of validly signed commands reaches this.
const MAX_REMEMBERED: usize = 4096;

/// The ids of commands already acted on, until they expire; kept in the
/// state folder so a restart does not reopen the replay window.
pub struct ReplayGuard {
    seen: Mutex<HashMap<uuid::Uuid, DateTime<Utc>>>,
    path: PathBuf,
}

impl ReplayGuard {
    pub fn open(path: PathBuf) -> Self {
        let now = Utc::now();
        let seen: HashMap<uuid::Uuid, DateTime<Utc>> = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self {
            seen: Mutex::new(seen.into_iter().filter(|(_, exp)| *exp >= now).collect()),
            path,
        }
    }

    /// Remember `cmd`, refusing it if it was seen.
    pub fn admit(&self, cmd: &Command, now: DateTime<Utc>) -> Result<(), CommandRefusal> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|_, exp| *exp >= now);
        if seen.contains_key(&cmd.id) {
            return Err(CommandRefusal::Replayed(cmd.id));
        }
        if seen.len() >= MAX_REMEMBERED {
            return Err(CommandRefusal::Busy);
        }
        seen.insert(cmd.id, cmd.expires_at);
        let text = serde_json::to_string(&*seen).unwrap_or_default();
        if let Err(e) = ritma_bus::creds::write_private(&self.path, &text) {
            tracing::warn!(error = %e, "could not save the seen command ids");
        }
        Ok(())
    }
}

/// Everything a node checks before acting on a command body that arrived
/// on `subject`.
pub fn command_accept(
    body: &[u8],
    subject: &str,
    pinned: &str,
    org: &OrgId,
    node: &NodeId,
    replay: &ReplayGuard,
    now: DateTime<Utc>,
) -> Result<Command, CommandRefusal> {
    let cmd = SignedCommand::open(body, pinned, org, node, now)?;
    let token = cmd.command.token();
    if subject.rsplit('.').next() != Some(token) {
        return Err(CommandRefusal::WrongSubject {
            subject: subject.to_owned(),
            command: token.to_owned(),
        });
    }
    replay.admit(&cmd, now)?;
    Ok(cmd)
}

/// Answers the controller's commands on this node's command subjects.
pub struct CommandHandler {
    /// The bus client in use (replaced when the bus moves).
    pub bus: tokio::sync::watch::Receiver<async_nats::Client>,
    /// This node's command subjects.
    pub subject: String,
    pub refresh_now: Arc<tokio::sync::Notify>,
    pub policy_now: Arc<tokio::sync::Notify>,
    pub recorder: Arc<Recorder>,
    pub compliance: Arc<ComplianceIndex>,
    pub org: OrgId,
    pub node: NodeId,
    pub pinned: Arc<PinnedKey>,
    pub replay: ReplayGuard,
    /// For the diagnostic bundle.
    pub config: Arc<crate::config::NodeConfig>,
}

impl CommandHandler {
    /// Answer commands until the bus client is gone, subscribing again on
    /// each new client (a moved bus).
    pub async fn run(self) {
        let mut bus = self.bus.clone();
        loop {
            let client = bus.borrow_and_update().clone();
            match client.subscribe(self.subject.clone()).await {
                Ok(commands) => {
                    let moved = tokio::select! {
                        _ = self.answer(commands, &client) => false,
                        changed = bus.changed() => changed.is_ok(),
                    };
                    // A subscription that ended with its client: wait for the next one.
                    if !moved && bus.changed().await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not subscribe to commands; waiting for the next bus client");
                    if bus.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    async fn answer(&self, mut commands: async_nats::Subscriber, nats: &async_nats::Client) {
        use futures::StreamExt;
        while let Some(msg) = commands.next().await {
            let accepted = command_accept(
                &msg.payload,
                msg.subject.as_str(),
                &self.pinned.get(),
                &self.org,
                &self.node,
                &self.replay,
                Utc::now(),
            );
            let reply = match accepted {
                Ok(cmd) => {
                    tracing::info!(command = cmd.command.token(), id = %cmd.id, "command received");
                    self.recorder.slo("daemon", "command", "ok");
                    self.handle(cmd.command).await
                }
                Err(refusal) => {
                    tracing::warn!(subject = %msg.subject, code = refusal.code(), error = %refusal, "command refused");
                    self.recorder.slo("daemon", "command", "rejected");
                    // Signed by a key this node does not know: the org may
                    // have rotated; the policy sync fetches the signed
                    // hand-over, and the controller's next command is taken.
                    if matches!(
                        refusal,
                        CommandRefusal::Signature(
                            ritma_protocol::trust::TrustError::UnknownSigner { .. }
                        )
                    ) {
                        self.policy_now.notify_one();
                    }
                    serde_json::json!({
                        "status": "refused", "code": refusal.code(), "error": refusal.to_string(),
                    })
                }
            };
            if let Some(subject) = msg.reply {
                let body = serde_json::to_vec(&reply).unwrap_or_default();
                let _ = nats.publish(subject, body.into()).await;
            }
        }
    }

    async fn handle(&self, command: CommandKind) -> serde_json::Value {
        match command {
            CommandKind::RefreshCredentials => self.refresh_now.notify_one(),
            CommandKind::PolicyChanged { .. } => self.policy_now.notify_one(),
            CommandKind::Diagnose => {
                self.compliance.append(
                    self.node.as_str(),
                    "diagnose",
                    serde_json::json!({ "requested_by": "controller" }),
                );
                return self.diagnose().await;
            }
            CommandKind::ConnectorDryRun {
                connector_id,
                config,
            } => {
                // A dry run changes nothing; its answer is the report itself.
                let report = crate::connectors::dry_run(&connector_id, &config).await;
                self.compliance.append(
                    self.node.as_str(),
                    "connector_dry_run",
                    serde_json::json!({
                        "connector_id": connector_id, "kind": report.kind,
                        "outcome": report.outcome, "findings": report.findings.len(),
                    }),
                );
                return serde_json::to_value(&report).unwrap_or_default();
            }
        }
        serde_json::json!({ "status": "ok" })
    }

    /// The bundle, made off the runtime's thread (it reads the state folder).
    async fn diagnose(&self) -> serde_json::Value {
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || crate::diagnose::bundle_running(&config))
            .await
            .unwrap_or_else(|e| serde_json::json!({ "status": "failed", "error": e.to_string() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ritma_protocol::trust::control_key_new;

    #[test]
    fn a_command_is_taken_once_even_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("commands_seen.json");
        let key = control_key_new();
        let (org, node) = (OrgId::new("acme").unwrap(), NodeId::new("n1").unwrap());
        let cmd = Command::new(
            org.clone(),
            node.clone(),
            30,
            CommandKind::RefreshCredentials,
        );
        let body = SignedCommand::sign(&cmd, &key).unwrap().encode();
        let subject = "ritma.acme.t.node.n1.cmd.refresh_credentials";
        let now = Utc::now();
        let guard = ReplayGuard::open(path.clone());
        let pk = key.public_key();
        assert!(command_accept(&body, subject, &pk, &org, &node, &guard, now).is_ok());
        let again = command_accept(&body, subject, &pk, &org, &node, &guard, now);
        assert_eq!(again.unwrap_err().code(), "replayed");
        let restarted = ReplayGuard::open(path);
        let after_restart = command_accept(&body, subject, &pk, &org, &node, &restarted, now);
        assert_eq!(after_restart.unwrap_err().code(), "replayed");
        // On another command's subject.
        let fresh = Command::new(
            org.clone(),
            node.clone(),
            30,
            CommandKind::RefreshCredentials,
        );
        let body = SignedCommand::sign(&fresh, &key).unwrap().encode();
        let wrong = command_accept(
            &body,
            "ritma.acme.t.node.n1.cmd.policy_changed",
            &pk,
            &org,
            &node,
            &restarted,
            now,
        );
        assert_eq!(wrong.unwrap_err().code(), "wrong_subject");
    }
}
