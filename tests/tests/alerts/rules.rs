//! Rules keep to their tenant, new nodes fire once, and the control plane
//! is watched.

use std::time::Duration;

use reqwest::Method;
use ritma_tests::alert_sinks::WebhookReceiver;
use ritma_tests::*;
use serde_json::json;

use crate::helpers::{allow_loopback, rule, webhook_channel};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_keep_to_their_tenant_new_nodes_fire_once_and_the_control_plane_is_watched() {
    let stack = TestStack::start_with(allow_loopback).await.unwrap();
    stack.create_org("acme").await;
    let hook = WebhookReceiver::start().await;
    let channel = webhook_channel(&stack, "acme", &hook.url("h")).await;
    rule(
        &stack,
        "acme",
        json!({ "name": "new in prod", "event": "node_enrolled", "channels": [channel], "tenant_id": "prod" }),
    )
    .await;
    // An operator's rule on the control plane: any dead letter is a spike.
    rule(
        &stack,
        "acme",
        json!({ "name": "dead letters", "event": "dead_letter_spike", "threshold": 0, "channels": [channel] }),
    )
    .await;
    let staging = stack.create_token("acme", "staging", 1).await;
    let (status, _, _) = stack.enroll_raw(&staging, "stage-1").await;
    assert_eq!(status, 200);
    let (node, _, _) = stack.enroll_connected("acme", "prod", "prod-1").await;
    let fired = hook
        .wait_for("the enrollment alert", Duration::from_secs(10), |r| {
            r.json()["event"] == "node_enrolled"
        })
        .await;
    assert_eq!(fired.json()["node_id"], "prod-1");
    assert_eq!(fired.json()["status"], "firing");

    // A message whose body names another node is a dead letter.
    let js = async_nats::jetstream::new(node.client.clone());
    js.publish(
        "ritma.acme.prod.node.prod-1.heartbeat",
        heartbeat_body("someone-else", 1, 5).into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let spike = hook
        .wait_for("the dead-letter alert", Duration::from_secs(15), |r| {
            r.json()["event"] == "dead_letter_spike"
        })
        .await;
    assert!(spike.json()["node_id"].is_null());
    assert!(
        spike.json()["detail"]
            .as_str()
            .unwrap()
            .contains("dead letters")
    );

    // One-shot: enrolled alerts do not stay open; the staging node never fired.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let enrolled: Vec<_> = hook
        .seen()
        .into_iter()
        .filter(|r| r.json()["event"] == "node_enrolled")
        .collect();
    assert_eq!(enrolled.len(), 1, "{enrolled:?}");
    let (_, open) = stack.api(Method::GET, "/api/orgs/acme/alerts", None).await;
    assert!(
        open["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["event"] != "node_enrolled"),
        "{open}"
    );
}
