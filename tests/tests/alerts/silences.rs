//! Silences hold notifications back.

use std::time::Duration;

use reqwest::Method;
use ritma_tests::alert_sinks::WebhookReceiver;
use ritma_tests::*;
use serde_json::{Value, json};

use crate::helpers::{allow_loopback, rule, webhook_channel};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_holds_notifications_back_until_it_ends_and_for_waits() {
    let stack = TestStack::start_with(allow_loopback).await.unwrap();
    stack.create_org("acme").await;
    let hook = WebhookReceiver::start().await;
    let channel = webhook_channel(&stack, "acme", &hook.url("h")).await;
    rule(
        &stack,
        "acme",
        json!({ "name": "down 2s", "event": "node_offline", "channels": [channel], "for_secs": 2,
                "labels": { "env": "prod" } }),
    )
    .await;
    let token = stack.create_token("acme", "prod", 2).await;
    let mut nodes = Vec::new();
    for name in ["a", "b"] {
        let node = stack
            .spawn_daemon_with(Some(&token), stack.dir.path().join(name), 1, 60, |a| {
                a.labels = Some("env=prod".into());
            })
            .await
            .unwrap();
        nodes.push(node);
    }
    let ids: Vec<String> = nodes.iter().map(|n| n.node_id.clone()).collect();
    for id in &ids {
        stack
            .wait_status(id, "online", Duration::from_secs(15))
            .await;
    }
    // Maintenance on node a.
    let (status, silence) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/silences",
            Some(json!({ "node_id": ids[0], "duration_secs": 3600, "comment": "kernel upgrade" })),
        )
        .await;
    assert_eq!(status, 201, "{silence}");
    for n in nodes {
        n.stop().await.unwrap();
    }
    // b's alert waits out `for` (pending first), then fires; a's stays quiet.
    let pending = stack
        .eventually("a pending alert", Duration::from_secs(10), || async {
            let (_, a) = stack
                .api(Method::GET, "/api/orgs/acme/alerts?state=pending", None)
                .await;
            (!a["items"].as_array().unwrap().is_empty()).then_some(a)
        })
        .await;
    assert!(hook.seen().is_empty(), "{pending}");
    let fired = hook
        .wait_for("b's alert", Duration::from_secs(15), |r| {
            r.json()["status"] == "firing"
        })
        .await;
    assert_eq!(fired.json()["node_id"], ids[1].as_str());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hook.seen().len(), 1, "the silenced node was notified");
    let (_, listed) = stack
        .api(Method::GET, "/api/orgs/acme/alerts?state=firing", None)
        .await;
    let silenced: Vec<&Value> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["silenced"] == true)
        .collect();
    assert_eq!(silenced.len(), 1, "{listed}");
    assert_eq!(silenced[0]["node_id"], ids[0].as_str());

    // The window ends early: what it held back goes out now.
    let sid = silence["id"].as_str().unwrap();
    let (status, _) = stack
        .api(
            Method::DELETE,
            &format!("/api/orgs/acme/silences/{sid}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let late = hook
        .wait_for(
            "a's alert after the silence",
            Duration::from_secs(10),
            |r| r.json()["node_id"] == ids[0].as_str(),
        )
        .await;
    assert_eq!(late.json()["status"], "firing");
    let (_, listed) = stack
        .api(Method::GET, "/api/orgs/acme/silences", None)
        .await;
    assert_eq!(listed["items"][0]["active"], false, "{listed}");
}
