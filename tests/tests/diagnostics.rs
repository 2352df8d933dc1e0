//! `ritma doctor` against a real stack (all well, then NATS stopped), and
//! `ritma-node diagnose`'s bundle of a real enrolled daemon: useful, and
//! without a single secret.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::time::Duration;

use ritma_tests::*;
use serde_json::Value;

/// Run `ritma doctor --json` against the stack; exit code and findings.
fn doctor(stack: &TestStack) -> (i32, Vec<Value>) {
    let out = std::process::Command::new(ritma_binary())
        .args(["doctor", "--json", "--data-dir"])
        .arg(stack.dir.path().join("no-stack-file"))
        .arg("--nats-monitor-url")
        .arg(format!("http://127.0.0.1:{}", stack.nats.monitor_port))
        .arg("--database-url")
        .arg(&stack.database_url)
        .arg("--api-url")
        .arg(stack.api_url())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let json = &text[..text.rfind(']').map_or(0, |i| i + 1)];
    let findings: Vec<Value> = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), findings)
}

fn level_of<'a>(findings: &'a [Value], check: &str) -> &'a str {
    findings
        .iter()
        .find(|f| f["check"] == check)
        .and_then(|f| f["level"].as_str())
        .unwrap_or_else(|| panic!("no {check} finding in {findings:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_a_healthy_stack_and_fails_a_stopped_nats() {
    let mut stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let (code, findings) = doctor(&stack);
    assert_eq!(code, 0, "{findings:#?}");
    for check in [
        "NATS reachable",
        "NATS version",
        "JetStream",
        "telemetry stream",
        "ingest consumer",
        "PostgreSQL reachable",
        "migrations",
        "node credentials",
        "controller ready",
        "clock skew: NATS",
        "clock skew: PostgreSQL",
    ] {
        assert_eq!(level_of(&findings, check), "ok", "{check}: {findings:#?}");
    }

    stack.nats.stop();
    let (code, findings) = doctor(&stack);
    assert_eq!(code, 1, "{findings:#?}");
    assert_eq!(level_of(&findings, "NATS reachable"), "fail");
    let nats = findings
        .iter()
        .find(|f| f["check"] == "NATS reachable")
        .unwrap();
    assert!(
        nats["todo"].as_str().unwrap().contains("start nats-server"),
        "{nats}"
    );
    // What does not depend on NATS is still checked.
    assert_eq!(level_of(&findings, "PostgreSQL reachable"), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_bundle_describes_the_node_and_holds_no_secret() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 1).await;
    let state_dir = stack.dir.path().join("node-d");
    let daemon = stack
        .spawn_daemon(Some(&token), state_dir.clone(), 1, 1)
        .await
        .unwrap();
    let node = daemon.node_id.clone();
    stack
        .wait_status(&node, "online", Duration::from_secs(15))
        .await;
    daemon.stop().await.unwrap();

    let seed = std::fs::read_to_string(state_dir.join("node.nk")).unwrap();
    let jwt = std::fs::read_to_string(state_dir.join("credentials.jwt")).unwrap();
    // A daemon log with the secrets in it, as a careless line might have them.
    let log = stack.dir.path().join("node.log");
    std::fs::write(
        &log,
        format!(
            "2026-12-06T00:00:00Z  INFO started\n\
             2026-12-06T00:00:01Z  WARN enrollment retry token={token}\n\
             2026-12-06T00:00:02Z ERROR key {} rejected; jwt {}\n",
            seed.trim(),
            jwt.trim()
        ),
    )
    .unwrap();
    let config = ritma_node::NodeConfig::resolve(ritma_node::Args {
        controller_url: Some(format!(
            "http://user:hunter2-password@{}",
            &stack.api_url()[7..]
        )),
        enroll_token: Some(token.clone()),
        state_dir: Some(state_dir.clone()),
        ..Default::default()
    })
    .unwrap();
    let bundle = ritma_node::diagnose::bundle(&config, Some(&log));
    let text = serde_json::to_string(&bundle).unwrap();
    for secret in [seed.trim(), jwt.trim(), token.as_str(), "hunter2-password"] {
        assert!(!text.contains(secret), "the bundle holds a secret: {text}");
    }
    // Useful: who the node is, its credential, spool and the problem lines.
    assert_eq!(bundle["identity"]["node_id"], node.as_str());
    assert_eq!(bundle["identity"]["org_id"], "acme");
    assert_eq!(bundle["config"]["key_seed"], "present (not included)");
    assert_eq!(bundle["config"]["enroll_token"], "set (not included)");
    assert!(bundle["credential"]["seconds_left"].as_i64().unwrap() > 0);
    assert_eq!(bundle["spool"]["depth_messages"], 0, "{bundle}");
    assert!(bundle["versions"]["agent"].is_string());
    let lines = bundle["recent_problems"]["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| l.as_str().unwrap().contains("[redacted]"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_local_metrics_only_when_asked() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let port = ritma_devstack::ports::free_port().unwrap();
    let token = stack.create_token("acme", "prod", 1).await;
    let daemon = stack
        .spawn_daemon_with(Some(&token), stack.dir.path().join("node-m"), 1, 1, |a| {
            a.metrics_listen = Some(([127, 0, 0, 1], port).into())
        })
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let text = stack
        .eventually(
            "messages sent and sampled",
            Duration::from_secs(15),
            || async {
                let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
                text.lines()
                    .any(|l| {
                        l.strip_prefix("ritma_node_messages_sent_total ")
                            .and_then(|v| v.parse::<f64>().ok())
                            .is_some_and(|v| v >= 1.0)
                    })
                    .then_some(text)
            },
        )
        .await;
    assert!(text.contains("ritma_node_bus_connected 1"), "{text}");
    assert!(text.contains("ritma_node_spool_depth_messages "), "{text}");
    let expiry: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("ritma_node_credential_expiry_timestamp_seconds "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(expiry > chrono::Utc::now().timestamp(), "{text}");
    // Nothing names the node, its org or tenant.
    assert!(!text.contains(&daemon.node_id) && !text.contains("acme"));
    daemon.stop().await.unwrap();

    // Off by default: a daemon without the setting listens on nothing new.
    let args = ritma_node::Args::default();
    assert!(args.metrics_listen.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_answers_a_diagnose_request_over_the_bus_without_secrets() {
    let stack = TestStack::start_with(|c| {
        c.dry_run_timeout_secs = 2;
        c.dry_runs_burst = 3;
        c.dry_runs_per_min = 1;
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    stack.create_org("other").await;
    let token = stack.create_token("acme", "prod", 1).await;
    let state_dir = stack.dir.path().join("node-r");
    let daemon = stack
        .spawn_daemon(Some(&token), state_dir.clone(), 1, 60)
        .await
        .unwrap();
    let node = daemon.node_id.clone();
    stack
        .wait_status(&node, "online", Duration::from_secs(15))
        .await;
    let seed = std::fs::read_to_string(state_dir.join("node.nk")).unwrap();
    // A careless warning in the daemon's own log, as its log tap keeps it.
    ritma_node::diagnose::log_tap(
        format!(
            "2026-12-06T00:00:01Z  WARN sender: publish failed; key {} token={token}\n",
            seed.trim()
        )
        .as_bytes(),
    );

    let path = format!("/api/orgs/acme/nodes/{node}/diagnose");
    let (status, bundle) = stack.api(reqwest::Method::POST, &path, None).await;
    assert_eq!(status, 200, "{bundle}");
    assert_eq!(bundle["bundle"], "ritma-node diagnose");
    assert_eq!(bundle["identity"]["node_id"], node.as_str());
    assert_eq!(bundle["identity"]["org_id"], "acme");
    assert_eq!(bundle["config"]["key_seed"], "present (not included)");
    assert!(bundle["credential"]["seconds_left"].as_i64().unwrap() > 0);
    let text = bundle.to_string();
    assert!(
        !text.contains(seed.trim()) && !text.contains(&token),
        "no secret: {text}"
    );
    let lines = bundle["recent_problems"]["lines"].as_array().unwrap();
    assert!(
        lines.iter().any(|l| {
            let l = l.as_str().unwrap_or_default();
            l.contains("publish failed") && l.contains("[redacted]")
        }),
        "the warning, redacted: {lines:?}"
    );
    assert_eq!(
        stack
            .count("SELECT count(*) FROM audit_log WHERE action = 'node.diagnose'")
            .await,
        1,
        "the request is audited"
    );

    // Another org's path reaches nothing; a malformed id is refused.
    let (status, _) = stack
        .api(
            reqwest::Method::POST,
            &format!("/api/orgs/other/nodes/{node}/diagnose"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = stack
        .api(
            reqwest::Method::POST,
            "/api/orgs/acme/nodes/..%2F..%2Fetc/diagnose",
            None,
        )
        .await;
    assert!(status == 400 || status == 404, "{status}");

    // A stopped node: a clear answer within the timeout, not a hang.
    daemon.stop().await.unwrap();
    let (status, err) = stack.api(reqwest::Method::POST, &path, None).await;
    assert_eq!(status, 504, "{err}");
    assert_eq!(err["error"], "node_unreachable", "{err}");
    // The budget per node holds (3 at once, then one a minute).
    let (status, err) = stack.api(reqwest::Method::POST, &path, None).await;
    assert_eq!(status, 504, "{err}");
    let (status, err) = stack.api(reqwest::Method::POST, &path, None).await;
    assert_eq!(status, 429, "{err}");
}
