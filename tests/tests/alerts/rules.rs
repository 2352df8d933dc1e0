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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_rule_tells_about_nodes_already_shown_in_its_status_in_its_org_only() {
    // A rule made while nodes are down or flapping opens an alert for each
    // node the console shows in that status, in the rule's org only: a
    // flapping node (offline underneath) is seeded by the flapping rule,
    // not the offline one.
    let stack = TestStack::start_with(allow_loopback).await.unwrap();
    stack.create_org("acme").await;
    stack.create_org("other").await;
    let hook = WebhookReceiver::start().await;
    let channel = webhook_channel(&stack, "acme", &hook.url("h")).await;
    sqlx::query(
        "INSERT INTO nodes (id, org_id, tenant_id, public_key, hostname, status, flapping_since)
         VALUES ('a-down', 'acme', 'prod', 'UA1', 'h1', 'offline', NULL),
                ('a-flap', 'acme', 'prod', 'UA2', 'h2', 'offline', now()),
                ('a-up', 'acme', 'prod', 'UA3', 'h3', 'online', NULL),
                ('o-flap', 'other', 'prod', 'UO1', 'h4', 'offline', now())",
    )
    .execute(&stack.pool)
    .await
    .unwrap();
    let seeded = |rule_id: String| {
        let pool = stack.pool.clone();
        async move {
            sqlx::query_as::<_, (String, String)>(
                "SELECT node_id, detail FROM alerts WHERE rule_id::text = $1 ORDER BY node_id",
            )
            .bind(rule_id)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    for (event, node, shown) in [
        ("node_flapping", "a-flap", "flapping"),
        ("node_offline", "a-down", "offline"),
    ] {
        let made = rule(
            &stack,
            "acme",
            json!({ "name": event, "event": event, "channels": [channel] }),
        )
        .await;
        let id = made["id"].as_str().unwrap().to_owned();
        assert_eq!(
            seeded(id).await,
            [(
                node.to_owned(),
                format!("already {shown} when the rule was made")
            )],
            "{event}"
        );
    }
}
