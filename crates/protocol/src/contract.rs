//! The published contract: JSON Schema per message and an AsyncAPI document
//! for the subjects, generated from the types and subject builders here and
//! committed under `crates/protocol/contract/`. A test fails when the
//! committed files drift from the code (`RITMA_BLESS=1 cargo test -p
//! ritma-protocol` rewrites them after an intended change).

use serde_json::{Value, json};

use crate::SCHEMA_VERSION;
use crate::messages::json_schemas;

/// One documented channel: its address template and the schema it carries.
pub struct Channel {
    pub name: &'static str,
    pub address: &'static str,
    pub schema: &'static str,
    pub direction: &'static str,
    pub description: &'static str,
}

pub const CHANNELS: &[Channel] = &[
    Channel {
        name: "nodeHeartbeat",
        address: "ritma.{org}.{tenant}.node.{node}.heartbeat",
        schema: "heartbeat",
        direction: "node to bus (JetStream)",
        description: "Periodic heartbeat: health, versions, SLO counters, host facts, key in use, spool state.",
    },
    Channel {
        name: "nodeSlo",
        address: "ritma.{org}.{tenant}.node.{node}.slo",
        schema: "slo",
        direction: "node to bus (JetStream)",
        description: "SLO summary of one period: counts by component, operation and outcome.",
    },
    Channel {
        name: "nodeUsage",
        address: "ritma.{org}.{tenant}.node.{node}.usage",
        schema: "usage",
        direction: "node to bus (JetStream)",
        description: "Usage of one period: Decisions, DigFiles, StorageBytes, SnapshotExports.",
    },
    Channel {
        name: "nodeEvents",
        address: "ritma.{org}.{tenant}.node.{node}.events",
        schema: "events",
        direction: "node to bus (JetStream)",
        description: "Enforcement summary of one period: allow/deny/throttle/isolate counts, no payloads.",
    },
    Channel {
        name: "nodeCommand",
        address: "ritma.{org}.{tenant}.node.{node}.cmd.{command}",
        schema: "command",
        direction: "controller to node",
        description: "A command for one node: policy_changed, connector_dry_run, refresh_credentials, diagnose. Signed by the org's control key, bound to the node, with an expiry and a unique id; the node refuses anything else and answers a request with `{\"status\":\"refused\",\"code\":...,\"error\":...}`. Integrators read it only with `include: commands`.",
    },
    Channel {
        name: "nodeDryRunReply",
        address: "ritma.{org}.{tenant}.node.{node}.cmd.connector_dry_run",
        schema: "dry_run_report",
        direction: "node to controller (the reply to a connector_dry_run request)",
        description: "The findings of a connector dry run; nothing is changed on the node.",
    },
    Channel {
        name: "nodeDiagnoseReply",
        address: "ritma.{org}.{tenant}.node.{node}.cmd.diagnose",
        schema: "diagnostic_bundle",
        direction: "node to controller (the reply to a diagnose request)",
        description: "The node's diagnostic bundle: versions, configuration and identity without secrets, credential expiry, spool state, recent warnings and errors (redacted).",
    },
    Channel {
        name: "nodeState",
        address: "ritma.{org}.{tenant}.state.node.{node}",
        schema: "state_change",
        direction: "controller to everyone",
        description: "A node's state change, published after the controller committed it.",
    },
    Channel {
        name: "orgAudit",
        address: "ritma.{org}.audit",
        schema: "audit",
        direction: "controller to everyone",
        description: "Every committed audit entry of the org (who, what, when, from where, before/after), hash-chained. Integrators read it only with `include: audit` (org-scoped credentials only).",
    },
    Channel {
        name: "orgAlerts",
        address: "ritma.{org}.alerts",
        schema: "alert",
        direction: "controller to everyone",
        description: "Every firing, repeated and resolved alert of the org's alert rules (node offline, degraded, flapping, policy drift, key warning, new node, control-plane lag). Integrators read it only with `include: alerts` (org-scoped credentials only).",
    },
    Channel {
        name: "orgJobs",
        address: "ritma.{org}.jobs",
        schema: "bulk_job_progress",
        direction: "controller to the console",
        description: "Progress of the org's bulk jobs (assign a rulepack, add or remove labels, decommission): counts per job, at most a few per second while it runs, and its final state.",
    },
    Channel {
        name: "orgActivity",
        address: "ritma.{org}.activity",
        schema: "rollups_updated",
        direction: "controller to the console",
        description: "A cue that the org's hourly rollups (usage, enforcement events) grew, at most one every few seconds per org: dashboards re-read the activity and usage APIs on it instead of polling.",
    },
];

pub fn schema_file_name(stem: &str) -> String {
    format!("{stem}.v{SCHEMA_VERSION}.json")
}

pub fn asyncapi_document() -> Value {
    let mut channels = serde_json::Map::new();
    let mut messages = serde_json::Map::new();
    let mut operations = serde_json::Map::new();
    for ch in CHANNELS {
        let mut params = serde_json::Map::new();
        for p in ["org", "tenant", "node", "command"] {
            if ch.address.contains(&format!("{{{p}}}")) {
                params.insert(
                    p.into(),
                    json!({ "description": format!("{p} id: ^[a-z0-9][a-z0-9-]{{0,62}}$") }),
                );
            }
        }
        channels.insert(
            ch.name.into(),
            json!({
                "address": ch.address,
                "description": format!("{} ({})", ch.description, ch.direction),
                "parameters": params,
                "messages": { ch.schema: { "$ref": format!("#/components/messages/{}", ch.schema) } }
            }),
        );
        messages.insert(
            ch.schema.into(),
            json!({
                "contentType": "application/json",
                "payload": { "$ref": format!("./schemas/{}", schema_file_name(ch.schema)) }
            }),
        );
        let action = if ch.direction.starts_with("node") {
            "send"
        } else {
            "receive"
        };
        operations.insert(
            format!("{}{}", action, &ch.name[..1].to_uppercase()) + &ch.name[1..],
            json!({ "action": action, "channel": { "$ref": format!("#/channels/{}", ch.name) } }),
        );
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Ritma node bus",
            "version": format!("{SCHEMA_VERSION}.0.0"),
            "description": "Subjects and payloads of the Ritma node bus. Every payload carries `v`, the schema version. Integrators subscribe with read-only, org- or tenant-scoped credentials (`ritma creds integrator`): by default node telemetry and state changes; node commands, the audit trail and alerts only when asked for by name (`include`: `commands`, `audit`, `alerts`)."
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": { "messages": messages }
    })
}

/// Every file of the contract with its expected content.
pub fn contract_files() -> Vec<(String, String)> {
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    let mut files: Vec<(String, String)> = json_schemas()
        .into_iter()
        .map(|(stem, schema)| {
            (
                format!("schemas/{}", schema_file_name(stem)),
                pretty(&schema),
            )
        })
        .collect();
    files.push(("asyncapi.json".into(), pretty(&asyncapi_document())));
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{NodeId, OrgId, TenantId};
    use crate::subjects::{NodeSubject, TelemetryKind};
    use std::path::PathBuf;

    #[test]
    fn committed_contract_matches_the_code() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contract");
        let bless = std::env::var("RITMA_BLESS").is_ok_and(|v| v == "1");
        for (path, expected) in contract_files() {
            let file = dir.join(&path);
            if bless {
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(&file, &expected).unwrap();
                continue;
            }
            let actual = std::fs::read_to_string(&file).unwrap_or_else(|e| {
                panic!("{} missing ({e}); run with RITMA_BLESS=1", file.display())
            });
            assert!(
                actual == expected,
                "{} drifted from the types; run `RITMA_BLESS=1 cargo test -p ritma-protocol` and review the diff",
                file.display()
            );
        }
    }

    #[test]
    fn documented_addresses_are_what_the_builders_produce() {
        let scope = NodeSubject::new(
            OrgId::new("o").unwrap(),
            TenantId::new("t").unwrap(),
            NodeId::new("n").unwrap(),
        );
        let fill = |a: &str| {
            a.replace("{org}", "o")
                .replace("{tenant}", "t")
                .replace("{node}", "n")
                .replace("{command}", "policy_changed")
        };
        let built = [
            scope.telemetry(TelemetryKind::Heartbeat),
            scope.telemetry(TelemetryKind::Slo),
            scope.telemetry(TelemetryKind::Usage),
            scope.telemetry(TelemetryKind::Events),
            scope.command("policy_changed"),
            scope.command("connector_dry_run"),
            scope.command("diagnose"),
            scope.state(),
            crate::subjects::audit(&scope.org),
            crate::subjects::alerts(&scope.org),
            crate::subjects::jobs(&scope.org),
            crate::subjects::activity(&scope.org),
        ];
        for (ch, subject) in CHANNELS.iter().zip(built) {
            assert_eq!(fill(ch.address), subject, "channel {}", ch.name);
        }
        let documented: Vec<&str> = CHANNELS.iter().map(|c| c.schema).collect();
        for (stem, _) in json_schemas() {
            assert!(documented.contains(&stem), "schema {stem} has no channel");
        }
    }
}
