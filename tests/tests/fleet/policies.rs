//! Policies: a change reaches the node, and a held node drifts.

use reqwest::Method;
use ritma_tests::TestStack;
use serde_json::json;

use crate::helpers::{Feed, node_view};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_change_reaches_the_node_and_a_held_node_drifts() {
    let stack = TestStack::start_with(|c| {
        c.policy_drift_grace_secs = 1;
        c.fleet_reconcile_ms = 200;
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 2).await;
    let mut feed = Feed::new(&stack, "acme").await;

    let index = stack.dir.path().join("compliance.jsonl");
    let follower = stack
        .spawn_daemon_with(Some(&token), stack.dir.path().join("a"), 1, 60, |a| {
            a.node_id = Some("follower".into());
            // Far away: a change must arrive by push, not by the periodic sync.
            a.policy_sync_secs = Some(3600);
            a.compliance_index = Some(index.clone());
        })
        .await
        .unwrap();
    let held = stack
        .spawn_daemon_with(Some(&token), stack.dir.path().join("b"), 1, 60, |a| {
            a.node_id = Some("held".into());
            a.policy_hold = true;
        })
        .await
        .unwrap();

    // Bad input first: refused with a reason, nothing stored.
    for (body, needle) in [
        (json!({ "name": "Bad Name", "rules": {} }), "name"),
        (json!({ "name": "base", "rules": "allow" }), "rules"),
    ] {
        let (status, err) = stack
            .api(Method::POST, "/api/orgs/acme/rulepacks", Some(body))
            .await;
        assert_eq!(status, 400, "{err}");
        assert!(err["message"].as_str().unwrap().contains(needle), "{err}");
    }
    let (status, err) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/policy-assignments",
            Some(json!({ "scope_kind": "org", "rulepack": "missing", "mode": "enforce" })),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(stack.count("SELECT count(*) FROM rulepacks").await, 0);

    let (status, pack) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/rulepacks",
            Some(json!({ "name": "baseline", "frameworks": ["cis"], "rules": { "deny": ["ptrace"] } })),
        )
        .await;
    assert_eq!(status, 201, "{pack}");
    assert_eq!(pack["version"], "baseline@1");
    let (status, assignment) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/policy-assignments",
            Some(json!({ "scope_kind": "org", "rulepack": "baseline", "mode": "enforce" })),
        )
        .await;
    assert_eq!(status, 201, "{assignment}");
    assert_eq!(assignment["nodes"], 2);

    // The follower applies it (pushed) and the inventory shows it, live.
    let applied = feed.next("follower", "policy_applied").await;
    assert_eq!(applied["applied"], "baseline@1");
    let view = node_view(&stack, "acme", "follower").await;
    assert_eq!(view["policy_version"], "baseline@1");
    assert_eq!(view["policy_assigned"], "baseline@1");
    assert_eq!(view["policy_mode"], "enforce");

    // The held node never applies it: drifted after the grace period.
    let drift = feed.next("held", "policy_drift").await;
    assert_eq!(drift["drifted"], true);
    assert_eq!(drift["assigned"], "baseline@1");
    let (_, drifted) = stack
        .api(Method::GET, "/api/orgs/acme/nodes?drifted=true", None)
        .await;
    let ids: Vec<&str> = drifted["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["held"]);
    let (_, summary) = stack
        .api(Method::GET, "/api/orgs/acme/nodes/summary", None)
        .await;
    assert_eq!(summary["drifted"], 1);
    let (_, held_policy) = stack
        .api(Method::GET, "/api/nodes/held/policies", None)
        .await;
    assert_eq!(held_policy["assigned"]["version"], "baseline@1");
    assert_eq!(held_policy["assigned"]["scope_kind"], "org");
    assert_eq!(held_policy["drifted"], true);
    assert!(held_policy["applied"].is_null());

    // A new revision is pushed too.
    let (status, pack) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/rulepacks",
            Some(json!({ "name": "baseline", "frameworks": ["cis"], "rules": { "deny": ["ptrace", "kexec"] } })),
        )
        .await;
    assert_eq!(status, 201, "{pack}");
    assert_eq!(pack["version"], "baseline@2");
    let applied = feed.next("follower", "policy_applied").await;
    assert_eq!(applied["applied"], "baseline@2");
    // The same content again makes no new revision.
    let (status, same) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/rulepacks",
            Some(json!({ "name": "baseline", "frameworks": ["cis"], "rules": { "deny": ["ptrace", "kexec"] } })),
        )
        .await;
    assert_eq!((status, same["revision"].clone()), (200, json!(2)));

    // The daemon kept the bundle privately, and its compliance index says so.
    let cached = stack.dir.path().join("a/policy.json");
    let bundle: ritma_protocol::PolicyBundle =
        serde_json::from_slice(&std::fs::read(&cached).unwrap()).unwrap();
    bundle.verify().unwrap();
    assert_eq!(bundle.version, "baseline@2");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&cached).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let lines = std::fs::read_to_string(&index).unwrap();
    assert_eq!(lines.matches("\"policy_applied\"").count(), 2, "{lines}");

    // Removing the assignment brings the held node back in step.
    let id = assignment["id"].as_str().unwrap();
    let (status, _) = stack
        .api(
            Method::DELETE,
            &format!("/api/orgs/acme/policy-assignments/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let back = feed.next("held", "policy_drift").await;
    assert_eq!(back["drifted"], false);
    let applied = feed.next("follower", "policy_applied").await;
    assert!(applied["applied"].is_null(), "{applied}");
    assert!(
        stack
            .count("SELECT count(*) FROM audit_log WHERE action IN ('rulepack.create','policy.assign','policy.unassign')")
            .await
            >= 4
    );
    follower.stop().await.unwrap();
    held.stop().await.unwrap();
}
