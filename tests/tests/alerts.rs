//! Alerting end to end: a real daemon goes offline and comes back, a real
//! HTTP receiver gets signed webhooks, a real SMTP server gets e-mail over
//! STARTTLS, integrators read `ritma.<org>.alerts`; deliveries are retried
//! and survive a controller restart; silences hold notifications back; and
//! what another org, a careless URL or bad input could do is refused.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::time::Duration;

use futures::StreamExt;
use hmac::{Hmac, Mac};
use reqwest::Method;
use ritma_tests::alert_sinks::{SmtpServer, WebhookReceiver, free_port, test_certificates};
use ritma_tests::*;
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "whsec-test-0123456789abcdef";
const METRICS_TOKEN: &str = "alerts-metrics-token-0123456789";

fn allow_loopback(c: &mut ritma_controller::config::Config) {
    c.alerts.allowed_networks = vec!["127.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()];
    c.alerts.retry_base_ms = 200;
    c.alerts.eval_ms = 200;
    c.metrics_token = Some(METRICS_TOKEN.into());
}

async fn webhook_channel(stack: &TestStack, org: &str, url: &str) -> String {
    let (status, body) = stack
        .api(
            Method::POST,
            &format!("/api/orgs/{org}/notification-channels"),
            Some(json!({ "name": "ops hook", "kind": "webhook", "url": url, "secret": SECRET })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn rule(stack: &TestStack, org: &str, body: Value) -> Value {
    let (status, rule) = stack
        .api(
            Method::POST,
            &format!("/api/orgs/{org}/alert-rules"),
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    rule
}

fn signed_by(r: &alert_sinks::Received, secret: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&r.body);
    r.header("x-ritma-signature") == format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn deliveries(stack: &TestStack, org: &str, channel: &str) -> Vec<Value> {
    let (status, body) = stack
        .api(
            Method::GET,
            &format!("/api/orgs/{org}/notification-channels/{channel}/deliveries"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

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
                .find(|d| d["state"] == "pending" && d["attempts"].as_i64() >= Some(1))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_goes_over_starttls_and_a_relay_without_it_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_certificates(certs.path());
    let Some(tls_relay) = SmtpServer::start(certs.path(), &cert, &key, true).await else {
        eprintln!(
            "RITMA_PYTHON is not set: run tests/run.sh (it installs aiosmtpd) to include this test"
        );
        return;
    };
    let plain_relay = SmtpServer::start(certs.path(), &cert, &key, false)
        .await
        .unwrap();
    let relay_url = format!("smtp://localhost:{}", tls_relay.port);
    let ca_file = ca.clone();
    let stack = TestStack::start_with(move |c| {
        allow_loopback(c);
        c.alerts.smtp_url = Some(relay_url.clone());
        c.alerts.smtp_ca_file = Some(ca_file.clone());
        c.alerts.smtp_from = "alerts@ritma.test".into();
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    let (status, channel) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/notification-channels",
            Some(json!({ "name": "oncall mail", "kind": "email", "address": "oncall@acme.test" })),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    assert_eq!(channel["target"], "oncall@acme.test");
    let id = channel["id"].as_str().unwrap();
    let (status, outcome) = stack
        .api(
            Method::POST,
            &format!("/api/orgs/acme/notification-channels/{id}/test"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(outcome["state"], "delivered", "{outcome}");
    let mail = tls_relay.mail();
    assert!(mail.contains("RCPT oncall@acme.test"), "{mail}");
    assert!(mail.contains("TLS yes"), "sent in the clear: {mail}");
    assert!(mail.contains("[TEST]"), "{mail}");

    // The same controller pointed at a relay that offers no STARTTLS
    // refuses to send rather than fall back to plaintext.
    let mut stack = stack;
    stack.controller.take().unwrap().stop().await;
    let plain_url = format!("smtp://localhost:{}", plain_relay.port);
    let ca_file = ca.clone();
    stack.controller = Some(
        stack
            .start_controller(&move |c: &mut ritma_controller::config::Config| {
                allow_loopback(c);
                c.alerts.smtp_url = Some(plain_url.clone());
                c.alerts.smtp_ca_file = Some(ca_file.clone());
            })
            .await
            .unwrap(),
    );
    let (_, outcome) = stack
        .api(
            Method::POST,
            &format!("/api/orgs/acme/notification-channels/{id}/test"),
            None,
        )
        .await;
    assert_eq!(outcome["state"], "failed", "{outcome}");
    assert!(plain_relay.mail().is_empty(), "mail went out without TLS");
}

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
