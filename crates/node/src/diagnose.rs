//! `ritma-node diagnose`: a JSON bundle for support — versions, the
//! configuration without secrets, identity, credential expiry, spool state
//! and recent errors from the daemon's log. Secrets never enter it: the
//! enrollment token and the key seed are reported as set or not, the bus
//! credential by its expiry only, URLs without user info, and every log
//! line is passed through [`redact`] (which also removes the node's own
//! seed and token should they appear anywhere).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::config::NodeConfig;

/// Log lines kept (the most recent warnings and errors).
const RECENT_LINES: usize = 50;
/// Each kept line is cut to this many bytes.
const LINE_MAX: usize = 1_000;

/// `scheme://user:pass@host/...` → `scheme://host/...`.
fn without_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit('@').next().unwrap_or(authority);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// Replace anything shaped like an NKey seed, a JWT or a bearer token, and
/// each of `known` secrets, with `[redacted]`.
pub fn redact(line: &str, known: &[String]) -> String {
    let mut out = line.to_owned();
    for secret in known.iter().filter(|s| s.len() >= 8) {
        out = out.replace(secret.as_str(), "[redacted]");
    }
    out.split_inclusive(|c: char| c.is_whitespace() || "\"'=,;:".contains(c))
        .map(|word| {
            let core = word.trim_end_matches(|c: char| c.is_whitespace() || "\"'=,;:".contains(c));
            let tail = &word[core.len()..];
            let seed = core.len() >= 50
                && core.starts_with('S')
                && core
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
            let jwt = core.starts_with("eyJ") && core.matches('.').count() == 2;
            let token =
                core.len() >= 20 && (core.starts_with("ritma_") || core.starts_with("rit_"));
            if seed || jwt || token {
                format!("[redacted]{tail}")
            } else {
                word.to_owned()
            }
        })
        .collect()
}

/// A warning or an error (text or JSON log format).
fn is_problem(line: &str) -> bool {
    line.contains("ERROR")
        || line.contains("WARN")
        || line.contains("\"level\":\"error\"")
        || line.contains("\"level\":\"warn\"")
}

/// `line` cut to [`LINE_MAX`] bytes.
fn cut(mut line: String) -> String {
    if line.len() > LINE_MAX {
        let mut end = LINE_MAX;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    line
}

/// Keep the newest [`RECENT_LINES`].
fn keep(kept: &mut VecDeque<String>, line: String) {
    if kept.len() == RECENT_LINES {
        kept.pop_front();
    }
    kept.push_back(line);
}

fn recent_problems(log: &Path, known: &[String]) -> Value {
    let Ok(file) = std::fs::File::open(log) else {
        return json!({ "file": log.display().to_string(), "error": "not readable" });
    };
    let mut kept = VecDeque::with_capacity(RECENT_LINES);
    for line in BufReader::new(file).lines().map_while(Result::ok) {
        if is_problem(&line) {
            keep(&mut kept, redact(&cut(line), known));
        }
    }
    json!({ "file": log.display().to_string(), "lines": Vec::from(kept) })
}

/// The running daemon's recent warnings and errors, fed by [`log_tap`]
/// (unredacted here: redacted when a bundle is made).
static RECENT: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

/// The daemon's log tap (`ritma_runtime::init_logging_with_tap`): keeps the
/// recent problem lines in memory for a bundle asked for over the bus.
pub fn log_tap(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let mut recent = RECENT.lock().unwrap_or_else(|e| e.into_inner());
    for line in text.lines().filter(|l| is_problem(l)) {
        keep(&mut recent, cut(line.to_owned()));
    }
}

/// The secrets a bundle must not contain, whatever their context.
fn known_secrets(config: &NodeConfig) -> Vec<String> {
    std::fs::read_to_string(&config.keystore_path)
        .ok()
        .map(|s| s.trim().to_owned())
        .into_iter()
        .chain(config.enroll_token.clone())
        .chain(std::fs::read_to_string(config.state_dir.join("credentials.jwt")).ok())
        .collect()
}

/// The bundle for `config`; `log` is the daemon's log file, if it has one.
pub fn bundle(config: &NodeConfig, log: Option<&Path>) -> Value {
    let known = known_secrets(config);
    let problems = log.map(|l| recent_problems(l, &known));
    bundle_with(config, problems)
}

/// The bundle of the running daemon (the `diagnose` command): its recent
/// problems come from its own log lines, kept in memory.
pub fn bundle_running(config: &NodeConfig) -> Value {
    let known = known_secrets(config);
    let lines: Vec<String> = RECENT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|l| redact(l, &known))
        .collect();
    bundle_with(
        config,
        Some(json!({ "source": "the running daemon's log", "lines": lines })),
    )
}

fn bundle_with(config: &NodeConfig, problems: Option<Value>) -> Value {
    let state = &config.state_dir;
    let seed = std::fs::read_to_string(&config.keystore_path).ok();
    let identity = match crate::identity::identity_load(state) {
        Ok(Some(id)) => json!({
            "node_id": id.node_id.to_string(), "org_id": id.org_id.to_string(),
            "tenant_id": id.tenant_id.to_string(), "public_key": id.public_key,
            "controller_url": without_userinfo(&id.controller_url),
            "nats_urls": id.nats_urls.iter().map(|u| without_userinfo(u)).collect::<Vec<_>>(),
            "heartbeat_secs": id.heartbeat_secs, "enrolled_at": id.enrolled_at,
        }),
        Ok(None) => json!("not enrolled"),
        Err(e) => json!({ "error": e.to_string() }),
    };
    let credential = match std::fs::read_to_string(state.join("credentials.jwt")) {
        Ok(jwt) => match ritma_bus::jwt::decode_verified(jwt.trim()) {
            Ok(claims) => {
                let expires = claims
                    .exp
                    .and_then(|e| DateTime::<Utc>::from_timestamp(e, 0));
                json!({
                    "expires_at": expires,
                    "expired": expires.is_some_and(|e| e <= Utc::now()),
                    "seconds_left": expires.map(|e| (e - Utc::now()).num_seconds()),
                })
            }
            Err(e) => json!({ "error": format!("unreadable: {e}") }),
        },
        Err(_) => json!("none kept"),
    };
    let spool = match crate::spool::Spool::open(&state.join("spool"), config.spool_max_bytes) {
        Ok(s) => json!({
            "depth_messages": s.depth(), "bytes": s.bytes(), "dropped_messages": s.dropped(),
            "max_bytes": config.spool_max_bytes,
        }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    let host = crate::host::host_facts(&crate::host::hostname());
    json!({
        "bundle": ritma_protocol::diagnostics::DIAGNOSTIC_BUNDLE_KIND,
        "v": 1,
        "made_at": Utc::now(),
        "versions": {
            "agent": crate::AGENT_VERSION,
            "os": host.os, "kernel": host.kernel, "arch": host.arch,
        },
        "config": {
            "controller_url": config.controller_url.as_deref().map(without_userinfo),
            "nats_urls": config.nats_urls.iter().map(|u| without_userinfo(u)).collect::<Vec<_>>(),
            "org_id": config.org_id, "tenant_id": config.tenant_id,
            "node_id": config.node_id, "key_id": config.key_id,
            "state_dir": state.display().to_string(),
            "keystore_path": config.keystore_path.display().to_string(),
            "key_seed": if seed.is_some() { "present (not included)" } else { "missing" },
            "enroll_token": if config.enroll_token.is_some() { "set (not included)" } else { "unset" },
            "heartbeat_secs": config.heartbeat_secs, "summary_secs": config.summary_secs,
            "labels": config.labels, "spool_max_bytes": config.spool_max_bytes,
            "policy_sync_secs": config.policy_sync_secs, "policy_hold": config.policy_hold,
            "metrics_listen": config.metrics_listen.map(|a| a.to_string()),
        },
        "identity": identity,
        "credential": credential,
        "spool": spool,
        "recent_problems": problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_from_log_lines() {
        let seed = nkeys::KeyPair::new_user().seed().expect("seed");
        let line = format!(
            "WARN enroll failed token=ritma_enroll_0123456789abcdef seed {seed} jwt eyJhbGc.eyJzdWIi.sig url=nats://u:p@h:4222"
        );
        let out = redact(&line, &["my-own-secret-value".into()]);
        assert!(!out.contains(&seed), "{out}");
        assert!(!out.contains("ritma_enroll_0123456789abcdef"), "{out}");
        assert!(!out.contains("eyJhbGc.eyJzdWIi.sig"), "{out}");
        assert!(out.starts_with("WARN enroll failed token="));
        assert_eq!(
            redact(
                "plain my-own-secret-value here",
                &["my-own-secret-value".into()]
            ),
            "plain [redacted] here"
        );
        assert_eq!(without_userinfo("nats://u:p@h:4222/x"), "nats://h:4222/x");
    }
}
