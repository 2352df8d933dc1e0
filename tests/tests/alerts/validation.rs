//! Bad input: rules, channels and silences get clear errors.

use reqwest::Method;
use ritma_tests::alert_sinks::WebhookReceiver;
use ritma_tests::*;
use serde_json::json;

use crate::helpers::{allow_loopback, webhook_channel};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_channels_and_silences_get_clear_errors_and_change_nothing() {
    let stack = TestStack::start_with(allow_loopback).await.unwrap();
    stack.create_org("acme").await;
    let hook = WebhookReceiver::start().await;
    let channel = webhook_channel(&stack, "acme", &hook.url("h")).await;
    for (body, needle) in [
        (
            json!({ "name": "a", "event": "node_exploded", "channels": [channel] }),
            "node_offline",
        ),
        (
            json!({ "name": "a", "event": "node_offline", "channels": [] }),
            "channels",
        ),
        (
            json!({ "name": "a", "event": "node_offline", "channels": ["nope"] }),
            "not an id",
        ),
        (
            json!({ "name": "a", "event": "ingest_lag", "channels": [channel] }),
            "threshold",
        ),
        (
            json!({ "name": "a", "event": "node_offline", "channels": [channel], "threshold": 3 }),
            "no threshold",
        ),
        (
            json!({ "name": "a", "event": "node_offline", "channels": [channel], "for_secs": -1 }),
            "for_secs",
        ),
        (
            json!({ "name": "a", "event": "node_offline", "channels": [channel], "repeat_secs": 5 }),
            "repeat_secs",
        ),
        (
            json!({ "name": "", "event": "node_offline", "channels": [channel] }),
            "name",
        ),
        (
            json!({ "name": "a", "event": "node_offline", "channels": [channel], "tenant_id": "Bad Tenant" }),
            "tenant_id",
        ),
    ] {
        let (status, err) = stack
            .api(
                Method::POST,
                "/api/orgs/acme/alert-rules",
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, 400, "{body} -> {err}");
        assert!(
            err["message"].as_str().unwrap().contains(needle),
            "{body} -> {err}"
        );
    }
    for (body, needle) in [
        (json!({ "name": "e", "kind": "pager" }), "kind"),
        (json!({ "name": "e", "kind": "webhook" }), "url"),
        (
            json!({ "name": "e", "kind": "webhook", "url": hook.url("x"), "secret": "short" }),
            "secret",
        ),
        (
            json!({ "name": "e", "kind": "email", "address": "ops@example.com" }),
            "RITMA_SMTP_URL",
        ),
        (json!({ "name": "e", "kind": "email" }), "address"),
    ] {
        let (status, err) = stack
            .api(
                Method::POST,
                "/api/orgs/acme/notification-channels",
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, 400, "{body} -> {err}");
        assert!(
            err["message"].as_str().unwrap().contains(needle),
            "{body} -> {err}"
        );
    }
    for (body, needle) in [
        (json!({ "duration_secs": 60, "comment": "x" }), "matcher"),
        (json!({ "node_id": "n", "comment": "x" }), "duration_secs"),
        (
            json!({ "node_id": "n", "duration_secs": 3600 * 24 * 400, "comment": "x" }),
            "90 days",
        ),
        (
            json!({ "node_id": "n", "duration_secs": 60, "comment": "" }),
            "comment",
        ),
        (
            json!({ "event": "nope", "duration_secs": 60, "comment": "x" }),
            "unknown",
        ),
    ] {
        let (status, err) = stack
            .api(Method::POST, "/api/orgs/acme/silences", Some(body.clone()))
            .await;
        // An absurd duration is capped, not refused: 90 days is the most.
        if needle == "90 days" {
            assert_eq!(status, 201, "{err}");
            continue;
        }
        assert_eq!(status, 400, "{body} -> {err}");
        assert!(
            err["message"].as_str().unwrap().contains(needle),
            "{body} -> {err}"
        );
    }
    // Duplicate names conflict; nothing above was written.
    let (status, _) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/notification-channels",
            Some(json!({ "name": "ops hook", "kind": "webhook", "url": hook.url("y") })),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(stack.count("SELECT count(*) FROM alert_rules").await, 0);
    assert_eq!(
        stack
            .count("SELECT count(*) FROM notification_channels")
            .await,
        1
    );
    // An org cannot fill the tables: channels are bounded.
    let mut last = 0;
    for i in 0..60 {
        let (status, _) = stack
            .api(
                Method::POST,
                "/api/orgs/acme/notification-channels",
                Some(json!({ "name": format!("c{i}"), "kind": "webhook", "url": hook.url("z") })),
            )
            .await;
        last = status;
        if status == 409 {
            break;
        }
    }
    assert_eq!(last, 409);
    assert_eq!(
        stack
            .count("SELECT count(*) FROM notification_channels")
            .await,
        50
    );
}
