//! Key governance: revoking a key in use, and keys following the
//! `ritma_cloud` registry.

use std::time::Duration;

use reqwest::Method;
use ritma_tests::TestStack;
use ritma_tests::standins::StandIn;
use serde_json::{Value, json};

use crate::helpers::{Feed, WAIT, node_view};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_key_in_use_raises_a_warning_live() {
    let stack = TestStack::start_with(|c| c.dev_header_auth = true)
        .await
        .unwrap();
    stack.create_org("acme").await;
    let (status, key) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/keys",
            Some(json!({ "key_id": "sign-2026", "label": "fleet signing" })),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let (status, _) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/keys",
            Some(json!({ "key_id": "sign-2026" })),
        )
        .await;
    assert_eq!(status, 409);
    let token = stack.create_token("acme", "prod", 1).await;
    let mut feed = Feed::new(&stack, "acme").await;
    let node = stack
        .spawn_daemon_with(Some(&token), stack.dir.path().join("n"), 1, 60, |a| {
            a.node_id = Some("signer".into());
            a.key_id = Some("sign-2026".into());
        })
        .await
        .unwrap();
    let used = stack
        .eventually("key in use", WAIT, || async {
            let (_, keys) = stack.api(Method::GET, "/api/orgs/acme/keys", None).await;
            (keys["items"][0]["nodes_using"] == 1 && !keys["items"][0]["last_used_at"].is_null())
                .then_some(keys)
        })
        .await;
    assert_eq!(used["items"][0]["status"], "active");

    // Viewers may not govern keys; nothing changes.
    let viewer = stack
        .http
        .patch(format!(
            "{}/api/orgs/acme/keys/sign-2026/governance",
            stack.api_url()
        ))
        .header("x-user-id", "vera")
        .header("x-org-id", "acme")
        .header("x-roles", "viewer")
        .json(&json!({ "status": "revoked" }))
        .send()
        .await
        .unwrap();
    assert_eq!(viewer.status().as_u16(), 403);
    // Someone of another org learns nothing: the node and the key are "not found".
    for (method, path) in [
        (Method::GET, "/api/nodes/signer/policies"),
        (Method::GET, "/api/nodes/signer/connectors"),
        (Method::PATCH, "/api/orgs/acme/keys/sign-2026/governance"),
    ] {
        let outsider = stack
            .http
            .request(method, format!("{}{path}", stack.api_url()))
            .header("x-user-id", "mallory")
            .header("x-org-id", "globex")
            .header("x-roles", "org_owner")
            .json(&json!({ "status": "revoked" }))
            .send()
            .await
            .unwrap();
        assert_eq!(outsider.status().as_u16(), 404, "{path}");
    }
    let (status, err) = stack
        .api(
            Method::PATCH,
            "/api/orgs/acme/keys/sign-2026/governance",
            Some(json!({ "status": "lost" })),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(
        node_view(&stack, "acme", "signer").await["key_warning"],
        Value::Null
    );

    let (status, revoked) = stack
        .api(
            Method::PATCH,
            "/api/orgs/acme/keys/sign-2026/governance",
            Some(json!({ "status": "revoked", "reason": "laptop stolen" })),
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    let warning = feed.next("signer", "key_warning").await;
    assert_eq!(warning["key_id"], "sign-2026");
    assert_eq!(warning["key_status"], "revoked");
    assert_eq!(
        node_view(&stack, "acme", "signer").await["key_warning"],
        "revoked"
    );
    let (_, flagged) = stack
        .api(Method::GET, "/api/orgs/acme/nodes?key_warning=true", None)
        .await;
    assert_eq!(flagged["items"][0]["id"], "signer");
    let (_, summary) = stack
        .api(Method::GET, "/api/orgs/acme/keys/summary", None)
        .await;
    assert_eq!(summary["revoked"], 1);
    assert_eq!(summary["nodes_with_warnings"], 1);
    // Heartbeats keep the warning (the node still signs with the key).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        node_view(&stack, "acme", "signer").await["key_warning"],
        "revoked"
    );

    let (status, _) = stack
        .api(
            Method::PATCH,
            "/api/orgs/acme/keys/sign-2026/governance",
            Some(json!({ "status": "active" })),
        )
        .await;
    assert_eq!(status, 200);
    let cleared = feed.next("signer", "key_warning").await;
    assert!(cleared["key_status"].is_null(), "{cleared}");
    assert_eq!(
        stack
            .count("SELECT count(*) FROM audit_log WHERE action = 'key.governance' AND target = 'sign-2026'")
            .await,
        2
    );
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_follow_the_ritma_cloud_registry() {
    let cloud = StandIn::start().await;
    cloud.set(|s| {
        s.keys.insert(
            "cloud-k1".into(),
            json!({ "key_id": "cloud-k1", "org": "acme", "label": "from cloud", "status": "active" }),
        );
    });
    let url = cloud.url.clone();
    let stack = TestStack::start_with(move |c| {
        c.ritma_cloud_url = Some(url.clone());
        c.ritma_cloud_sync_secs = 1;
        c.fleet_reconcile_ms = 200;
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    let keys = stack
        .eventually("registry synced", WAIT, || async {
            let (_, keys) = stack.api(Method::GET, "/api/orgs/acme/keys", None).await;
            (keys["items"][0]["key_id"] == "cloud-k1").then_some(keys)
        })
        .await;
    assert_eq!(keys["items"][0]["source"], "ritma_cloud");
    assert_eq!(keys["cloud"]["configured"], true);

    // Governance goes through the registry, which has the last word.
    let (status, key) = stack
        .api(
            Method::PATCH,
            "/api/orgs/acme/keys/cloud-k1/governance",
            Some(json!({ "status": "compromised", "reason": "leaked in CI logs" })),
        )
        .await;
    assert_eq!(status, 200, "{key}");
    assert_eq!(key["status"], "compromised");
    {
        let s = cloud.state.lock().unwrap();
        let patch = s.seen.patches.last().unwrap();
        assert_eq!(patch["status"], "compromised");
        assert_eq!(patch["reason"], "leaked in CI logs");
        assert_eq!(patch["actor"], "operator");
    }
    // When the registry is down, nothing changes here and the caller is told.
    cloud.set(|s| s.failing = true);
    let (status, err) = stack
        .api(
            Method::PATCH,
            "/api/orgs/acme/keys/cloud-k1/governance",
            Some(json!({ "status": "active" })),
        )
        .await;
    assert_eq!(status, 502, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("ritma_cloud"),
        "{err}"
    );
    let (_, keys) = stack.api(Method::GET, "/api/orgs/acme/keys", None).await;
    assert_eq!(keys["items"][0]["status"], "compromised");
    // A change made in the registry arrives with the next sync.
    cloud.set(|s| {
        s.failing = false;
        s.keys.get_mut("cloud-k1").unwrap()["status"] = json!("revoked");
    });
    stack
        .eventually("registry change synced", WAIT, || async {
            let (_, keys) = stack.api(Method::GET, "/api/orgs/acme/keys", None).await;
            (keys["items"][0]["status"] == "revoked").then_some(())
        })
        .await;
}
