//! Enrollment tokens and the register endpoint: every refusal is a clear
//! JSON 4xx, and a refused enrollment creates nothing.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use reqwest::Method;
use ritma_tests::*;
use serde_json::json;

async fn nodes(stack: &TestStack) -> i64 {
    stack.count("SELECT count(*) FROM nodes").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_refused_when_expired_used_up_or_revoked() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;

    let used = stack.create_token("acme", "prod", 1).await;
    let (status, _, _) = stack.enroll_raw(&used, "first").await;
    assert_eq!(status, 200);
    let (status, body, _) = stack.enroll_raw(&used, "second").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("token_used_up")),
        "{body}"
    );

    let expired = stack.create_token("acme", "prod", 5).await;
    sqlx::query(
        "UPDATE enrollment_tokens SET expires_at = now() - interval '1 second' WHERE uses = 0",
    )
    .execute(&stack.pool)
    .await
    .unwrap();
    let (status, body, _) = stack.enroll_raw(&expired, "third").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("token_expired")),
        "{body}"
    );

    let revoked = stack.create_token("acme", "prod", 5).await;
    let (_, list) = stack
        .api(Method::GET, "/api/orgs/acme/enrollment-tokens", None)
        .await;
    let items = list.as_array().unwrap();
    assert!(
        items.iter().all(|t| t.get("token").is_none()),
        "secrets are never listed"
    );
    let active = items.iter().find(|t| t["state"] == "active").unwrap();
    let (status, _) = stack
        .api(
            Method::DELETE,
            &format!(
                "/api/orgs/acme/enrollment-tokens/{}",
                active["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body, _) = stack.enroll_raw(&revoked, "fourth").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("token_revoked")),
        "{body}"
    );

    let (status, body, _) = stack.enroll_raw("ritma_et_not-a-real-token", "fifth").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token")),
        "{body}"
    );
    assert_eq!(nodes(&stack).await, 1, "refused enrollments create nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolling_is_idempotent_per_key_and_ids_are_not_stolen() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 5).await;
    let key = nkeys::KeyPair::new_user();
    let register = |node_id: &str, public_key: String| {
        let body = json!({ "token": token, "public_key": public_key, "hostname": "h", "agent_version": "1", "node_id": node_id });
        let http = stack.http.clone();
        let url = format!("{}/api/nodes/register", stack.api_url());
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let (s1, a) = register("web-1", key.public_key()).await;
    let (s2, b) = register("web-1", key.public_key()).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(a["node_id"], b["node_id"]);
    let uses: i32 = sqlx::query_scalar("SELECT uses FROM enrollment_tokens")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(uses, 1, "re-enrolling the same key uses no token");

    let (status, body) = register("web-1", nkeys::KeyPair::new_user().public_key()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    assert_eq!(nodes(&stack).await, 1);

    // The JWT is scoped to this node only and expires.
    let claims = ritma_bus::jwt::decode_verified(a["jwt"].as_str().unwrap()).unwrap();
    assert_eq!(claims.sub, key.public_key());
    assert!(claims.exp.unwrap() > chrono::Utc::now().timestamp());
    let allow = claims.nats["pub"]["allow"].as_array().unwrap();
    assert!(
        allow.iter().all(|s| s
            .as_str()
            .unwrap()
            .starts_with("ritma.acme.prod.node.web-1.")),
        "{allow:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_clear_errors() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 5).await;
    let url = format!("{}/api/nodes/register", stack.api_url());
    let cases = [
        (
            json!({ "token": token, "public_key": "not-a-key", "hostname": "h", "agent_version": "1" }),
            400,
            "invalid_request",
        ),
        (
            json!({ "token": token, "public_key": nkeys::KeyPair::new_account().public_key(), "hostname": "h", "agent_version": "1" }),
            400,
            "invalid_request",
        ),
        (
            json!({ "token": token, "hostname": "h", "agent_version": "1" }),
            400,
            "invalid_request",
        ),
        (
            json!({ "token": token, "public_key": nkeys::KeyPair::new_user().public_key(), "hostname": "h", "agent_version": "1", "node_id": "Bad.Id" }),
            400,
            "invalid_request",
        ),
        (
            json!({ "token": token, "public_key": nkeys::KeyPair::new_user().public_key(), "hostname": "h", "agent_version": "1", "extra": 1 }),
            400,
            "invalid_request",
        ),
        (
            json!({ "token": token, "public_key": nkeys::KeyPair::new_user().public_key(), "hostname": "x".repeat(300), "agent_version": "1" }),
            400,
            "invalid_request",
        ),
    ];
    for (body, status, code) in cases {
        let r = stack.http.post(&url).json(&body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{body}");
        let err: serde_json::Value = r.json().await.unwrap();
        assert_eq!(err["error"], code);
        assert!(!err["message"].as_str().unwrap().is_empty());
    }
    let huge = "x".repeat(200_000);
    // A client of its own: the server answers 413 without reading the body and
    // closes the connection, which a pooled client could pick for the next request.
    let once = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let r = once
        .post(&url)
        .header("content-type", "application/json")
        .body(format!("{{\"token\":\"{huge}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let r = stack
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(nodes(&stack).await, 0, "nothing half-created");
    let uses: i64 = stack
        .count("SELECT COALESCE(sum(uses), 0) FROM enrollment_tokens")
        .await;
    assert_eq!(uses, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_keeps_its_identity() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 1).await;
    let dir = stack.dir.path().join("node-state");
    let first = stack
        .spawn_daemon(Some(&token), dir.clone(), 1, 60)
        .await
        .unwrap();
    let id = first.node_id.clone();
    first.stop().await.unwrap();
    // No token the second time: it must not enroll again (the token is used up anyway).
    let second = stack.spawn_daemon(None, dir.clone(), 1, 60).await.unwrap();
    assert_eq!(second.node_id, id);
    stack
        .eventually(
            "online after restart",
            std::time::Duration::from_secs(10),
            || async { (stack.node_status(&id).await.as_deref() == Some("online")).then_some(()) },
        )
        .await;
    second.stop().await.unwrap();
    assert_eq!(nodes(&stack).await, 1);
    use std::os::unix::fs::PermissionsExt;
    for f in ["identity.json", "node.nk"] {
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    // A key file others can read is refused at start.
    std::fs::set_permissions(dir.join("node.nk"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = stack
        .spawn_daemon(None, dir, 1, 60)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("0600"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_dir_others_can_write_is_refused_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 1).await;
    let dir = stack.dir.path().join("open-state");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = stack
        .spawn_daemon(Some(&token), dir.clone(), 1, 60)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("777"), "{err}");
    assert_eq!(nodes(&stack).await, 0, "it did not enroll");
    assert!(!dir.join("node.nk").exists(), "no key written there");
    // Fixed permissions: it starts.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let daemon = stack.spawn_daemon(Some(&token), dir, 1, 60).await.unwrap();
    daemon.stop().await.unwrap();
    assert_eq!(nodes(&stack).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekeying_moves_the_node_to_a_new_key_and_revokes_the_old_one() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 1).await;
    let dir = stack.dir.path().join("rekeyed");
    let first = stack
        .spawn_daemon(Some(&token), dir.clone(), 1, 60)
        .await
        .unwrap();
    let id = first.node_id.clone();
    first.stop().await.unwrap();
    let old_seed = std::fs::read_to_string(dir.join("node.nk")).unwrap();
    let old_jwt = std::fs::read_to_string(dir.join("credentials.jwt")).unwrap();

    let args = ritma_node::Args {
        state_dir: Some(dir.clone()),
        controller_url: Some(stack.api_url()),
        ..Default::default()
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut daemon =
        ritma_node::Daemon::build(ritma_node::NodeConfig::resolve(args).unwrap(), &shutdown)
            .await
            .unwrap();
    daemon.rekey().await.unwrap();
    let new_seed = std::fs::read_to_string(dir.join("node.nk")).unwrap();
    assert_ne!(old_seed, new_seed);
    let new_public = nkeys::KeyPair::from_seed(new_seed.trim())
        .unwrap()
        .public_key();
    let stored: String = sqlx::query_scalar("SELECT public_key FROM nodes WHERE id = $1")
        .bind(&id)
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(stored, new_public);

    // The old key is revoked at the broker.
    let old = BusUser::connect(
        &stack.nats.url,
        old_jwt.trim(),
        nkeys::KeyPair::from_seed(old_seed.trim()).unwrap(),
        None,
    )
    .await;
    assert!(old.is_err(), "the old key must not connect any more");
    // The node carries on with its new key, same id.
    let again = stack.spawn_daemon(None, dir, 1, 60).await.unwrap();
    assert_eq!(again.node_id, id);
    let since: chrono::DateTime<chrono::Utc> = chrono::Utc::now();
    stack
        .eventually(
            "heartbeats with the new key",
            std::time::Duration::from_secs(15),
            || async {
                let seen: Option<chrono::DateTime<chrono::Utc>> =
                    sqlx::query_scalar("SELECT last_seen_at FROM node_liveness WHERE node_id = $1")
                        .bind(&id)
                        .fetch_one(&stack.pool)
                        .await
                        .ok()
                        .flatten();
                seen.filter(|s| *s > since)
            },
        )
        .await;
    again.stop().await.unwrap();
    let audited = stack
        .count("SELECT count(*) FROM audit_log WHERE action = 'node.rekey'")
        .await;
    assert_eq!(audited, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_requests_with_extreme_timestamps_are_refused_as_stale() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 1).await;
    let (status, body, _) = stack.enroll_raw(&token, "edge-1").await;
    assert_eq!(status, 200, "{body}");
    let new_key = nkeys::KeyPair::new_user().public_key();
    for timestamp in [i64::MIN, i64::MAX] {
        for (path, body) in [
            (
                "credentials",
                serde_json::json!({ "timestamp": timestamp, "signature": "AAAA" }),
            ),
            (
                "rekey",
                serde_json::json!({
                    "timestamp": timestamp, "signature": "AAAA", "new_public_key": new_key,
                }),
            ),
        ] {
            let resp = stack
                .http
                .post(format!("{}/api/nodes/edge-1/{path}", stack.api_url()))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let answer: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(status, 401, "{path} at {timestamp}: {answer}");
            assert_eq!(answer["error"], "stale_request", "{path} at {timestamp}");
        }
    }
}

/// Enrollments no longer hold the token row for their whole transaction, so
/// concurrency is where a token could give more than its uses or a retrying
/// node could get two nodes: neither may happen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enrollments_never_exceed_a_tokens_uses_nor_duplicate_a_key() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 5).await;
    let attempts = (0..20).map(|i| {
        let (stack, token) = (&stack, &token);
        async move { stack.enroll_raw(token, &format!("race-{i}")).await }
    });
    let results = futures::future::join_all(attempts).await;
    let ok = results
        .iter()
        .filter(|(status, _, _)| *status == 200)
        .count();
    let used_up = results
        .iter()
        .filter(|(status, body, _)| *status == 401 && body["error"] == "token_used_up")
        .count();
    assert_eq!((ok, used_up), (5, 15), "{results:?}");
    assert_eq!(nodes(&stack).await, 5);
    let audited = stack
        .count("SELECT count(*) FROM audit_log WHERE action = 'node.enroll'")
        .await;
    assert_eq!(
        audited, 5,
        "one audit entry per enrolled node, none for refusals"
    );
    let uses = stack.count("SELECT sum(uses) FROM enrollment_tokens").await;
    assert_eq!(uses, 5);

    // One node retrying its request at once: one node, one use.
    let token = stack.create_token("acme", "prod", 5).await;
    let key = nkeys::KeyPair::new_user();
    let body = json!({ "token": token, "public_key": key.public_key(), "hostname": "retry", "agent_version": "1" });
    let url = format!("{}/api/nodes/register", stack.api_url());
    let retries = (0..6).map(|_| {
        let request = stack.http.post(&url).json(&body);
        async move {
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    });
    let replies = futures::future::join_all(retries).await;
    assert!(replies.iter().all(|(s, _)| *s == 200), "{replies:?}");
    assert!(
        replies
            .iter()
            .all(|(_, b)| b["node_id"] == replies[0].1["node_id"]),
        "{replies:?}"
    );
    assert_eq!(nodes(&stack).await, 6);
    let uses = stack.count("SELECT sum(uses) FROM enrollment_tokens").await;
    assert_eq!(uses, 6);
}

/// A restarted stack comes back on new ports (`ritma up` does): the daemon's
/// configured NATS URLs win over the ones kept from its enrollment, so it
/// comes back online without enrolling again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_nats_urls_win_over_the_ones_kept_from_enrollment() {
    let wait = std::time::Duration::from_secs(15);
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 1).await;
    let dir = stack.dir.path().join("moved");
    let first = stack
        .spawn_daemon_with(Some(&token), dir.clone(), 1, 60, |a| {
            a.node_id = Some("moved-1".into())
        })
        .await
        .unwrap();
    let status_is = |want: &'static str| {
        let stack = &stack;
        move || async move {
            (stack.node_status("moved-1").await.as_deref() == Some(want)).then_some(())
        }
    };
    stack.eventually("online", wait, status_is("online")).await;
    first.stop().await.unwrap();
    stack
        .eventually("offline", wait, status_is("offline"))
        .await;

    // The bus "moved": the identity names an address where nothing listens.
    let path = dir.join("identity.json");
    let mut identity: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let urls: Vec<String> = serde_json::from_value(identity["nats_urls"].clone()).unwrap();
    identity["nats_urls"] = json!(["nats://127.0.0.1:1"]);
    std::fs::write(&path, identity.to_string()).unwrap();

    let second = stack
        .spawn_daemon_with(None, dir, 1, 60, |a| a.nats_urls = urls)
        .await
        .unwrap();
    stack
        .eventually("online from the configured URLs", wait, status_is("online"))
        .await;
    second.stop().await.unwrap();
}
