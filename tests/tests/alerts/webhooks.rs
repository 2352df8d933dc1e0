//! Signed webhooks: an offline node fires one and its return resolves it;
//! a failing receiver gets retries, and a restarted controller still delivers.

use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use ritma_tests::alert_sinks::{WebhookReceiver, free_port};
use ritma_tests::*;
use serde_json::{Value, json};

use crate::helpers::{
    METRICS_TOKEN, SECRET, allow_loopback, deliveries, rule, signed_by, webhook_channel,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_node_fires_a_signed_webhook_and_its_return_resolves_it() {
    let stack = TestStack::start_with(allow_loopback).await.unwrap();
    stack.create_org("acme").await;
    let hook = WebhookReceiver::start().await;
    let channel = webhook_channel(&stack, "acme", &hook.url("hooks/ritma")).await;
    rule(
        &stack,
        "acme",
        json!({ "name": "node down", "event": "node_offline", "channels": [channel], "tenant_id": "prod" }),
    )
    .await;
    let watcher = integrator_including(&stack, "acme", None, &["alerts"]).await;
    let mut alerts = watcher.client.subscribe("ritma.acme.alerts").await.unwrap();
    watcher.client.flush().await.unwrap();

    let token = stack.create_token("acme", "prod", 1).await;
    let dir = stack.dir.path().join("web-1");
    let node = stack
        .spawn_daemon(Some(&token), dir.clone(), 1, 60)
        .await
        .unwrap();
    let id = node.node_id.clone();
    stack
        .wait_status(&id, "online", Duration::from_secs(15))
        .await;
    node.stop().await.unwrap();

    let fired = hook
        .wait_for("the firing webhook", Duration::from_secs(15), |r| {
            r.json()["status"] == "firing"
        })
        .await;
    assert!(
        signed_by(&fired, SECRET),
        "bad signature: {}",
        fired.header("x-ritma-signature")
    );
    assert!(!signed_by(&fired, "another secret"));
    let body = fired.json();
    assert_eq!(body["org_id"], "acme");
    assert_eq!(body["tenant_id"], "prod");
    assert_eq!(body["node_id"], id.as_str());
    assert_eq!(body["event"], "node_offline");
    assert!(
        body["at"].as_str().is_some() && body["sent_at"].as_str().is_some(),
        "{body}"
    );
    assert!(body["delivery_id"].as_i64().is_some(), "{body}");
    let stamp: i64 = fired.header("x-ritma-timestamp").parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - stamp).abs() < 60);

    // The same alert on the bus, for integrators.
    let msg = tokio::time::timeout(Duration::from_secs(10), alerts.next())
        .await
        .unwrap()
        .unwrap();
    let on_bus: Value = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(on_bus["status"], "firing");
    assert_eq!(on_bus["alert_id"], body["alert_id"]);

    let (_, firing) = stack.api(Method::GET, "/api/orgs/acme/alerts", None).await;
    assert_eq!(firing["items"][0]["state"], "firing", "{firing}");

    // It comes back: resolved, once.
    let node = stack.spawn_daemon(None, dir, 1, 60).await.unwrap();
    let resolved = hook
        .wait_for("the resolved webhook", Duration::from_secs(20), |r| {
            r.json()["status"] == "resolved"
        })
        .await;
    assert!(signed_by(&resolved, SECRET));
    assert_eq!(resolved.json()["alert_id"], body["alert_id"]);
    let (_, open) = stack.api(Method::GET, "/api/orgs/acme/alerts", None).await;
    assert_eq!(open["items"].as_array().unwrap().len(), 0, "{open}");
    let log = deliveries(&stack, "acme", &channel).await;
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(
        log.iter()
            .all(|d| d["state"] == "delivered" && d["response_status"] == 200)
    );
    // Every change was audited.
    let audited = stack
        .count("SELECT count(*) FROM audit_log WHERE action IN ('alert.channel.create', 'alert.rule.create')")
        .await;
    assert_eq!(audited, 2);
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_retries_and_a_restarted_controller_still_delivers() {
    let mut stack = TestStack::start_with(allow_loopback).await.unwrap();
    stack.create_org("acme").await;
    // Down at first: nothing listens on the port.
    let port = free_port();
    let channel = webhook_channel(&stack, "acme", &format!("http://127.0.0.1:{port}/h")).await;
    let token = stack.create_token("acme", "prod", 1).await;
    let node = stack
        .spawn_daemon(Some(&token), stack.dir.path().join("n"), 1, 60)
        .await
        .unwrap();
    let id = node.node_id.clone();
    stack
        .wait_status(&id, "online", Duration::from_secs(15))
        .await;
    node.stop().await.unwrap();
    stack
        .wait_status(&id, "offline", Duration::from_secs(15))
        .await;
    // A rule made while the node is down still tells about it.
    rule(
        &stack,
        "acme",
        json!({ "name": "down", "event": "node_offline", "channels": [channel] }),
    )
    .await;
    let failed_once = stack
        .eventually("a failed attempt", Duration::from_secs(15), || async {
            deliveries(&stack, "acme", &channel)
                .await
                .into_iter()
                // `attempts` counts an attempt when it is claimed, the
                // error lands when it has failed: wait for both.
                .find(|d| {
                    d["state"] == "pending"
                        && d["attempts"].as_i64() >= Some(1)
                        && d["last_error"].is_string()
                })
        })
        .await;
    assert!(
        failed_once["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("127.0.0.1"),
        "{failed_once}"
    );
    assert!(failed_once["next_attempt_at"].as_str().is_some());

    // The controller dies; the receiver comes up, answering 500 twice first.
    stack.controller.take().unwrap().kill().await;
    let hook = WebhookReceiver::start_on(format!("127.0.0.1:{port}").parse().unwrap()).await;
    hook.fail_next(2);
    stack.controller = Some(stack.start_controller(&allow_loopback).await.unwrap());
    let delivered = stack
        .eventually(
            "delivery after the restart",
            Duration::from_secs(30),
            || async {
                deliveries(&stack, "acme", &channel)
                    .await
                    .into_iter()
                    .find(|d| d["state"] == "delivered")
            },
        )
        .await;
    assert!(delivered["attempts"].as_i64().unwrap() >= 4, "{delivered}");
    let got = hook.seen();
    assert!(got.len() >= 3, "two 500s, then the delivery");
    // At least once: every attempt carried the same alert, each signed.
    assert!(
        got.iter()
            .all(|r| signed_by(r, SECRET) && r.json()["node_id"] == id.as_str())
    );
    assert_eq!(deliveries(&stack, "acme", &channel).await.len(), 1);
    // The restarted controller counted its attempts, and its outbox drains.
    let url = format!("{}/metrics", stack.api_url());
    let series = |outcome: &str| format!("ritma_alert_deliveries_total{{outcome=\"{outcome}\"}}");
    stack
        .eventually(
            "the backlog sampled empty",
            Duration::from_secs(15),
            || async {
                let (_, text) = prom::scrape(&url, Some(METRICS_TOKEN)).await;
                (prom::series_value(
                    &text,
                    "ritma_outbox_backlog_rows{outbox=\"alert_deliveries\"}",
                ) == Some(0.0))
                .then_some(text)
            },
        )
        .await;
    let (_, text) = prom::scrape(&url, Some(METRICS_TOKEN)).await;
    assert!(
        prom::series_value(&text, &series("retry")) >= Some(2.0),
        "two 500s counted as retries: {text}"
    );
    assert_eq!(prom::series_value(&text, &series("delivered")), Some(1.0));
}
