//! What another org or a careless URL could do: internal targets, sealed
//! secrets, other orgs.

use std::time::Duration;

use reqwest::Method;
use ritma_tests::alert_sinks::WebhookReceiver;
use ritma_tests::*;
use serde_json::{Value, json};

use crate::helpers::{allow_loopback, rule, signed_by};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_targets_are_refused_unless_the_operator_allows_them() {
    let stack = TestStack::start_with(|c| c.alerts.eval_ms = 200)
        .await
        .unwrap();
    stack.create_org("acme").await;
    for url in [
        "http://127.0.0.1:9/h",
        "http://localhost:9/h",
        "http://[::1]:9/h",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.8/h",
        "http://[::ffff:127.0.0.1]/h",
        "ftp://example.com/h",
        "https://user:pw@example.com/h",
    ] {
        let (status, body) = stack
            .api(
                Method::POST,
                "/api/orgs/acme/notification-channels",
                Some(json!({ "name": "x", "kind": "webhook", "url": url })),
            )
            .await;
        assert_eq!(status, 400, "{url}: {body}");
    }
    // A name that resolves to loopback passes the literal check at creation
    // but is refused at send time (and after a DNS change, the same).
    let (status, body) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/notification-channels",
            Some(json!({ "name": "sneaky", "kind": "slack", "url": "http://localtest.me:9/h" })),
        )
        .await;
    if status == 201 {
        let id = body["id"].as_str().unwrap();
        let (status, outcome) = stack
            .api(
                Method::POST,
                &format!("/api/orgs/acme/notification-channels/{id}/test"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{outcome}");
        assert_eq!(outcome["state"], "failed", "{outcome}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_sealed_and_other_orgs_reach_nothing() {
    let stack = TestStack::start_with(|c| {
        allow_loopback(c);
        c.dev_header_auth = true;
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    stack.create_org("globex").await;
    let hook = WebhookReceiver::start().await;
    let slack_url = hook.url("services/T000/B000/XOXB-SECRET-PART");
    let (status, slack) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/notification-channels",
            Some(json!({ "name": "slack", "kind": "slack", "url": slack_url })),
        )
        .await;
    assert_eq!(status, 201, "{slack}");
    let (status, generated) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/notification-channels",
            Some(json!({ "name": "made", "kind": "webhook", "url": hook.url("made") })),
        )
        .await;
    assert_eq!(status, 201);
    let made_secret = generated["secret"].as_str().unwrap().to_owned();
    assert!(made_secret.len() >= 16);

    // The list shows neither the URL's path nor a secret.
    let (_, list) = stack
        .api(Method::GET, "/api/orgs/acme/notification-channels", None)
        .await;
    let text = list.to_string();
    assert!(
        !text.contains("XOXB") && !text.contains(&made_secret),
        "{text}"
    );
    // At rest, neither are readable.
    let raw: Vec<Vec<u8>> = sqlx::query_scalar("SELECT secret_enc FROM notification_channels")
        .fetch_all(&stack.pool)
        .await
        .unwrap();
    for blob in raw {
        let s = String::from_utf8_lossy(&blob);
        assert!(!s.contains("XOXB") && !s.contains(&made_secret));
    }
    // A test send reaches the hook, Slack-shaped, and is signed when a webhook.
    let id = slack["id"].as_str().unwrap();
    let (status, outcome) = stack
        .api(
            Method::POST,
            &format!("/api/orgs/acme/notification-channels/{id}/test"),
            None,
        )
        .await;
    assert_eq!(
        (status, outcome["state"].as_str()),
        (200, Some("delivered")),
        "{outcome}"
    );
    let got = hook
        .wait_for("the Slack text", Duration::from_secs(5), |r| {
            r.json()["text"].is_string()
        })
        .await;
    assert!(got.json()["text"].as_str().unwrap().contains("[TEST]"));
    let made = generated["id"].as_str().unwrap();
    stack
        .api(
            Method::POST,
            &format!("/api/orgs/acme/notification-channels/{made}/test"),
            None,
        )
        .await;
    let signed = hook
        .wait_for("the test webhook", Duration::from_secs(5), |r| {
            r.json()["status"] == "test"
        })
        .await;
    assert!(signed_by(&signed, &made_secret));

    // globex's owner: acme's things are not found, and cannot be borrowed.
    let as_globex = |m: Method, path: String| {
        stack
            .http
            .request(m, format!("{}{path}", stack.api_url()))
            .header("x-user-id", "mallory")
            .header("x-org-id", "globex")
            .header("x-roles", "org_owner")
    };
    for (m, path) in [
        (
            Method::GET,
            "/api/orgs/acme/notification-channels".to_owned(),
        ),
        (Method::GET, "/api/orgs/acme/alerts".to_owned()),
        (
            Method::POST,
            format!("/api/orgs/acme/notification-channels/{id}/test"),
        ),
        (
            Method::DELETE,
            format!("/api/orgs/acme/notification-channels/{id}"),
        ),
        (
            Method::GET,
            format!("/api/orgs/acme/notification-channels/{id}/deliveries"),
        ),
    ] {
        let r = as_globex(m, path.clone()).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }
    for path in [
        format!("/api/orgs/globex/notification-channels/{id}/deliveries"),
        format!("/api/orgs/globex/notification-channels/{id}/test"),
    ] {
        let m = if path.ends_with("test") {
            Method::POST
        } else {
            Method::GET
        };
        let r = as_globex(m, path.clone()).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }
    let r = as_globex(Method::POST, "/api/orgs/globex/alert-rules".into())
        .json(&json!({ "name": "borrow", "event": "node_offline", "channels": [id] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "another org's channel");
    // Control-plane rules are for the platform's operators only.
    let r = as_globex(
        Method::POST,
        "/api/orgs/globex/notification-channels".into(),
    )
    .json(&json!({ "name": "g", "kind": "webhook", "url": hook.url("g") }))
    .send()
    .await
    .unwrap();
    let g: Value = r.json().await.unwrap();
    let r = as_globex(Method::POST, "/api/orgs/globex/alert-rules".into())
        .json(&json!({ "name": "lag", "event": "ingest_lag", "threshold": 30, "channels": [g["id"]] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // A viewer may read but not change alerting.
    let r = stack
        .http
        .post(format!("{}/api/orgs/acme/alert-rules", stack.api_url()))
        .header("x-user-id", "vera")
        .header("x-org-id", "acme")
        .header("x-roles", "viewer")
        .json(&json!({ "name": "v", "event": "node_offline", "channels": [id] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // A channel in use cannot be deleted.
    rule(
        &stack,
        "acme",
        json!({ "name": "uses slack", "event": "node_enrolled", "channels": [id] }),
    )
    .await;
    let (status, body) = stack
        .api(
            Method::DELETE,
            &format!("/api/orgs/acme/notification-channels/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["message"].as_str().unwrap().contains("uses slack"));
}
