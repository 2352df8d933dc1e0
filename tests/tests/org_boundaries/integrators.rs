//! Integrator credentials: keys of one org, reissues, and what they may read.

use std::time::Duration;

use futures::StreamExt;
use ritma_tests::*;
use serde_json::{Value, json};

use crate::helpers::integrator_with;

/// `org`'s listed integrator credential for `public_key`.
async fn integrator_entry(stack: &TestStack, org: &str, public_key: &str) -> Value {
    let (_, list) = stack
        .api(
            reqwest::Method::GET,
            &format!("/api/orgs/{org}/integrator-credentials"),
            None,
        )
        .await;
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["public_key"] == public_key)
        .unwrap()
        .clone()
}

/// No error from the server within `wait` (e.g. no permissions violation).
async fn quiet(user: &mut BusUser, wait: Duration) -> Vec<String> {
    let mut seen = Vec::new();
    let until = tokio::time::Instant::now() + wait;
    while let Ok(Some(e)) = tokio::time::timeout_at(until, user.errors.recv()).await {
        seen.push(e);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrator_keys_belong_to_one_org_and_reissue_resets_the_entry() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("demo").await;
    stack.create_org("acme2").await;
    let key = nkeys::KeyPair::new_user();
    let pk = key.public_key();
    let (status, body) = integrator_with(&stack, "demo", json!({ "public_key": pk })).await;
    assert_eq!(status, 201, "{body}");

    // Another org issuing for the same key: refused, and demo's entry is untouched.
    let (status, body) = integrator_with(&stack, "acme2", json!({ "public_key": pk })).await;
    assert_eq!(status, 409, "{body}");
    let entry = integrator_entry(&stack, "demo", &pk).await;
    assert!(
        entry["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s.as_str().unwrap().starts_with("ritma.demo.")),
        "{entry}"
    );
    let (_, other) = stack
        .api(
            reqwest::Method::GET,
            "/api/orgs/acme2/integrator-credentials",
            None,
        )
        .await;
    assert_eq!(other.as_array().unwrap().len(), 0, "{other}");

    // A node's key is not an integrator's either.
    let token = stack.create_token("demo", "prod", 1).await;
    let (status, _, node_key) = stack.enroll_raw(&token, "n-1").await;
    assert_eq!(status, 200);
    let (status, body) = integrator_with(
        &stack,
        "demo",
        json!({ "public_key": node_key.public_key() }),
    )
    .await;
    assert_eq!(status, 409, "{body}");

    // Nor can a node enroll with an integrator's key.
    let token = stack.create_token("demo", "prod", 1).await;
    let resp = stack
        .http
        .post(format!("{}/api/nodes/register", stack.api_url()))
        .json(&json!({
            "token": token, "public_key": pk, "hostname": "n-2",
            "agent_version": "test", "node_id": "n-2",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 409);

    // Revoke, then issue again in the same org: a fresh entry, usable at once.
    let (status, _) = stack
        .api(
            reqwest::Method::DELETE,
            &format!("/api/orgs/demo/integrator-credentials/{pk}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = integrator_with(
        &stack,
        "demo",
        json!({ "public_key": pk, "tenant_id": "prod", "name": "second" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let entry = integrator_entry(&stack, "demo", &pk).await;
    assert!(entry["revoked_at"].is_null(), "{entry}");
    assert_eq!(entry["tenant_id"], "prod", "{entry}");
    assert_eq!(entry["name"], "second", "{entry}");
    assert!(
        entry["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s.as_str().unwrap().starts_with("ritma.demo.prod.")),
        "{entry}"
    );
    let mut again = BusUser::connect(&stack.nats.url, body["jwt"].as_str().unwrap(), key, None)
        .await
        .expect("the re-issued credential connects");
    let _sub = again
        .client
        .subscribe("ritma.demo.prod.state.>")
        .await
        .unwrap();
    let errors = quiet(&mut again, Duration::from_millis(800)).await;
    assert!(errors.is_empty(), "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrators_read_commands_and_audit_only_when_asked_for() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let (node, _, _) = stack.enroll_connected("acme", "prod", "node-a").await;

    // Default scope: telemetry and state changes.
    let key = nkeys::KeyPair::new_user();
    let (status, body) =
        integrator_with(&stack, "acme", json!({ "public_key": key.public_key() })).await;
    assert_eq!(status, 201, "{body}");
    let granted: Vec<String> = serde_json::from_value(body["subscribe"].clone()).unwrap();
    assert!(
        granted
            .iter()
            .all(|s| !s.contains(".cmd") && !s.ends_with(".audit")),
        "{granted:?}"
    );
    let mut plain = BusUser::connect(&stack.nats.url, body["jwt"].as_str().unwrap(), key, None)
        .await
        .unwrap();
    let mut heartbeats = plain
        .client
        .subscribe("ritma.acme.*.node.*.heartbeat")
        .await
        .unwrap();
    let _states = plain
        .client
        .subscribe("ritma.acme.*.state.>")
        .await
        .unwrap();
    plain.client.flush().await.unwrap();
    assert!(
        quiet(&mut plain, Duration::from_millis(500))
            .await
            .is_empty()
    );
    for subject in ["ritma.acme.prod.node.node-a.cmd.>", "ritma.acme.audit"] {
        let _spy = plain.client.subscribe(subject).await.unwrap();
        let err = plain
            .expect_error(
                "permissions violation for subscription",
                Duration::from_secs(5),
            )
            .await;
        assert!(err.contains(&subject.to_lowercase()), "{err}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    async_nats::jetstream::new(node.client.clone())
        .publish(
            "ritma.acme.prod.node.node-a.heartbeat",
            heartbeat_body("node-a", 1, 10).into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), heartbeats.next()).await;
    assert!(
        matches!(got, Ok(Some(_))),
        "telemetry is in the default scope"
    );

    // Asked for by name: commands and the audit trail.
    let key = nkeys::KeyPair::new_user();
    let (status, body) = integrator_with(
        &stack,
        "acme",
        json!({ "public_key": key.public_key(), "include": ["commands", "audit"] }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let mut ops = BusUser::connect(&stack.nats.url, body["jwt"].as_str().unwrap(), key, None)
        .await
        .unwrap();
    let _cmds = ops
        .client
        .subscribe("ritma.acme.prod.node.node-a.cmd.>")
        .await
        .unwrap();
    let mut audit = ops.client.subscribe("ritma.acme.audit").await.unwrap();
    ops.client.flush().await.unwrap();
    let errors = quiet(&mut ops, Duration::from_millis(800)).await;
    assert!(errors.is_empty(), "{errors:?}");
    stack.create_token("acme", "prod", 1).await; // an audited change
    let got = tokio::time::timeout(Duration::from_secs(5), audit.next()).await;
    assert!(matches!(got, Ok(Some(_))), "the audit trail when asked for");

    // Refused: an unknown extra, the org-wide audit for a tenant-scoped
    // integrator, and narrowing that would widen the grant.
    for (body, what) in [
        (json!({ "include": ["everything"] }), "unknown include"),
        (
            json!({ "tenant_id": "prod", "include": ["audit"] }),
            "tenant-scoped audit",
        ),
        (json!({ "subjects": ["ritma.acme.>"] }), "wider subjects"),
        (
            json!({ "subjects": ["ritma.acme.prod.node.node-a.cmd.>"] }),
            "commands without include",
        ),
    ] {
        let mut body = body;
        body["public_key"] = json!(nkeys::KeyPair::new_user().public_key());
        let (status, reply) = integrator_with(&stack, "acme", body).await;
        assert_eq!(status, 400, "{what}: {reply}");
    }
}
