//! Every org first-class (issue 18): limits the broker enforces per user,
//! revocations that stay bounded, node signatures that cannot be replayed
//! across protocols, and keys, caches and ids that never cross orgs.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::time::Duration;

use futures::StreamExt;
use ritma_tests::*;
use serde_json::{Value, json};

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

/// Messages of `node` on the central stream (any kind), by payload size.
async fn stored_sizes(stack: &TestStack, node: &str) -> Vec<usize> {
    let bus = stack.controller_bus().await.unwrap();
    let mut stream = async_nats::jetstream::new(bus)
        .get_stream(ritma_bus::streams::TELEMETRY_STREAM)
        .await
        .unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let mut out = Vec::new();
    if state.messages == 0 {
        return out;
    }
    for s in state.first_sequence..=state.last_sequence {
        let Ok(msg) = stream.get_raw_message(s).await else {
            continue;
        };
        if msg.subject.contains(&format!(".node.{node}.")) {
            out.push(msg.payload.len());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_refuses_oversized_messages_from_a_nodes_own_credentials() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let (mut node, reply, key) = stack.enroll_connected("acme", "prod", "big-1").await;

    // The JWT itself carries the limits.
    let claims = ritma_bus::jwt::decode_verified(reply["jwt"].as_str().unwrap()).unwrap();
    let payload = claims.nats["payload"].as_i64().unwrap();
    assert!(
        payload >= ritma_protocol::MAX_MESSAGE_BYTES as i64,
        "{claims:?}"
    );
    assert!(payload < 256 * 1024, "{claims:?}");
    let subs = claims.nats["subs"].as_i64().unwrap();
    assert!((2..=32).contains(&subs), "{claims:?}");

    let subject = "ritma.acme.prod.node.big-1.events";
    let js = async_nats::jetstream::new(node.client.clone());
    // 256 KiB: refused by the broker, which closes the connection.
    let big = vec![b' '; 256 * 1024];
    let sent = js.publish(subject, big.into()).await;
    if let Ok(ack) = sent {
        assert!(
            tokio::time::timeout(Duration::from_secs(5), ack)
                .await
                .map(|a| a.is_err())
                .unwrap_or(true),
            "an oversized message must not be acked"
        );
    }
    node.expect_error("maximum payload", Duration::from_secs(5))
        .await;
    assert!(
        stored_sizes(&stack, "big-1")
            .await
            .iter()
            .all(|s| *s < 256 * 1024),
        "nothing oversized is stored"
    );

    // A normal message from the same credentials still goes through.
    let again = stack.connect_node(&reply, key).await.unwrap();
    async_nats::jetstream::new(again.client.clone())
        .publish(
            "ritma.acme.prod.node.big-1.heartbeat",
            heartbeat_body("big-1", 1, 10).into(),
        )
        .await
        .unwrap()
        .await
        .expect("a normal message is acked");
    assert_eq!(stored_sizes(&stack, "big-1").await.len(), 1);

    // Subscriptions are bounded too: a node cannot hold hundreds of them.
    let mut many = Vec::new();
    for i in 0..40 {
        if let Ok(s) = again
            .client
            .subscribe(format!("ritma.acme.prod.node.big-1.cmd.x{i}"))
            .await
        {
            many.push(s);
        }
    }
    let mut again = again;
    again
        .expect_error("maximum subscriptions", Duration::from_secs(5))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrator_credentials_carry_payload_and_subscription_limits() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let key = nkeys::KeyPair::new_user();
    let (status, body) = stack
        .api(
            reqwest::Method::POST,
            "/api/orgs/acme/integrator-credentials",
            Some(json!({ "public_key": key.public_key() })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let claims = ritma_bus::jwt::decode_verified(body["jwt"].as_str().unwrap()).unwrap();
    assert!(claims.nats["payload"].as_i64().unwrap() > 0, "{claims:?}");
    assert!(claims.nats["subs"].as_i64().unwrap() > 0, "{claims:?}");
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

async fn integrator_with(stack: &TestStack, org: &str, body: Value) -> (u16, Value) {
    stack
        .api(
            reqwest::Method::POST,
            &format!("/api/orgs/{org}/integrator-credentials"),
            Some(body),
        )
        .await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_drafts_are_asked_for_and_cached_per_org() {
    let billing = standins::StandIn::start().await;
    billing.set(|s| {
        s.drafts.insert(
            "acme/prod".into(),
            json!({ "currency": "USD", "total": 10.0, "lines": [] }),
        );
        s.drafts.insert(
            "globex/prod".into(),
            json!({ "currency": "USD", "total": 20.0, "lines": [] }),
        );
    });
    let url = billing.url.clone();
    let stack = TestStack::start_with(move |c| c.billing_daemon_url = Some(url.clone()))
        .await
        .unwrap();
    for org in ["acme", "globex"] {
        stack.create_org(org).await;
        let node = format!("{org}-1");
        let (bus, _, _) = stack.enroll_connected(org, "prod", &node).await;
        async_nats::jetstream::new(bus.client.clone())
            .publish(
                format!("ritma.{org}.prod.node.{node}.usage"),
                usage_body(&node, 1, 100).into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut totals = Vec::new();
    for org in ["acme", "globex", "acme", "globex"] {
        let estimate = stack
            .eventually("usage rolled up", Duration::from_secs(20), || async {
                let (_, e) = stack
                    .api(
                        reqwest::Method::GET,
                        &format!("/api/orgs/{org}/billing/estimate"),
                        None,
                    )
                    .await;
                (e["tenants"].as_array().is_some_and(|t| !t.is_empty())).then_some(e)
            })
            .await;
        let prod = estimate["tenants"][0].clone();
        assert_eq!(prod["tenant_id"], "prod");
        assert_eq!(prod["source"], "billing_daemon", "{estimate}");
        totals.push(prod["total"].as_f64().unwrap());
    }
    assert_eq!(totals, [10.0, 20.0, 10.0, 20.0]);
    let requests = billing.state.lock().unwrap().seen.requests.clone();
    for org in ["acme", "globex"] {
        let asked: Vec<&String> = requests
            .iter()
            .filter(|r| r.contains(&format!("org_id={org}&tenant_id=prod")))
            .collect();
        assert_eq!(
            asked.len(),
            1,
            "one request per org, then cached: {requests:?}"
        );
    }
}

/// A request with the path exactly as given (no client-side normalisation
/// of `..` or `%2e`): the status code.
async fn raw_status(api_url: &str, method: &str, path: &str, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = api_url.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_key_ids_are_per_org_and_path_tricks_are_refused() {
    let cloud = standins::StandIn::start().await;
    cloud.set(|s| {
        for org in ["acme", "globex"] {
            s.keys.insert(
                format!("{org}/shared"),
                json!({ "key_id": "shared", "org": org, "label": org, "status": "active" }),
            );
        }
        s.keys.insert(
            "acme/evil".into(),
            json!({ "key_id": "../evil", "org": "acme", "status": "active" }),
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
    stack.create_org("globex").await;
    for org in ["acme", "globex"] {
        stack
            .eventually("registry synced", Duration::from_secs(20), || async {
                let (_, keys) = stack
                    .api(reqwest::Method::GET, &format!("/api/orgs/{org}/keys"), None)
                    .await;
                let items = keys["items"].as_array().cloned().unwrap_or_default();
                (items.len() == 1 && items[0]["key_id"] == "shared").then_some(())
            })
            .await;
    }
    // The same id in two orgs: each org governs its own.
    let (status, key) = stack
        .api(
            reqwest::Method::PATCH,
            "/api/orgs/acme/keys/shared/governance",
            Some(json!({ "status": "revoked" })),
        )
        .await;
    assert_eq!(status, 200, "{key}");
    assert_eq!(key["status"], "revoked");
    assert_eq!(key["org_id"], "acme");
    assert_eq!(cloud.count("PATCH /orgs/acme/keys/shared/governance"), 1);
    let (_, globex) = stack
        .api(reqwest::Method::GET, "/api/orgs/globex/keys", None)
        .await;
    assert_eq!(globex["items"][0]["status"], "active", "{globex}");
    // Registering the same id in two orgs is fine too.
    for org in ["acme", "globex"] {
        let (status, body) = stack
            .api(
                reqwest::Method::POST,
                &format!("/api/orgs/{org}/keys"),
                Some(json!({ "key_id": "local-1" })),
            )
            .await;
        assert_eq!(status, 201, "{org}: {body}");
    }

    // Path tricks never reach the registry: 400.
    let before = cloud.state.lock().unwrap().seen.patches.len();
    for trick in [
        "..",
        "%2e%2e",
        ".%2e",
        "..%2fevil",
        "a%2fb",
        "a%2Fb",
        "%2fetc%2fpasswd",
        "a%5cb",
        "a%252fb",
        ".hidden",
        "a%20b",
    ] {
        let status = raw_status(
            &stack.api_url(),
            "PATCH",
            &format!("/api/orgs/acme/keys/{trick}/governance"),
            r#"{"status":"revoked"}"#,
        )
        .await;
        assert_eq!(status, 400, "{trick}");
    }
    for bad in ["..", "../x", "a/b", "%2e%2e", ".x"] {
        let (status, body) = stack
            .api(
                reqwest::Method::POST,
                "/api/orgs/acme/keys",
                Some(json!({ "key_id": bad })),
            )
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    assert_eq!(cloud.state.lock().unwrap().seen.patches.len(), before);
    // An id from the registry with a path trick is not taken in.
    let (_, keys) = stack
        .api(reqwest::Method::GET, "/api/orgs/acme/keys", None)
        .await;
    assert!(
        keys["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["key_id"] != "../evil"),
        "{keys}"
    );
}

/// The org's account JWT as the broker holds it (the full resolver's file).
fn account_jwt_on_disk(stack: &TestStack, account: &str) -> String {
    let dir = stack.dir.path().join("nats").join("resolver");
    let mut found = None;
    let mut stack_dirs = vec![dir];
    while let Some(d) = stack_dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack_dirs.push(p);
            } else if p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(account)
            {
                found = Some(std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    found.unwrap_or_else(|| panic!("no resolver file for {account}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_revocations_keep_the_account_jwt_small_and_the_controller_starts() {
    let mut stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let org = ritma_db::orgs::org_get(&stack.pool, "acme")
        .await
        .unwrap()
        .unwrap();
    // 20,000 revocations: 19,900 whose credentials have all expired, 100
    // still live. Fake keys of the real length (56 characters).
    sqlx::query(
        "INSERT INTO org_revocations (org_id, public_key, revoked_at, keep_until)
         SELECT 'acme', 'U' || upper(substr(md5(i::text) || md5((i + 7)::text), 1, 55)),
                now() - interval '2 days',
                CASE WHEN i <= 19900 THEN now() - interval '1 day' ELSE now() + interval '1 hour' END
         FROM generate_series(1, 20000) AS i",
    )
    .execute(&stack.pool)
    .await
    .unwrap();
    // Another org beyond the bound (12,000 live revocations): its account
    // cannot be pushed, but that keeps neither the controller nor acme down.
    stack.create_org("huge").await;
    sqlx::query(
        "INSERT INTO org_revocations (org_id, public_key, revoked_at, keep_until)
         SELECT 'huge', 'U' || upper(substr(md5(i::text) || md5((i + 3)::text), 1, 55)),
                now() - interval '1 minute', now() + interval '1 hour'
         FROM generate_series(1, 12000) AS i",
    )
    .execute(&stack.pool)
    .await
    .unwrap();

    // The controller restarts: it pushes every account at start.
    stack.controller.take().unwrap().stop().await;
    stack.controller = Some(
        stack
            .start_controller(&|_| {})
            .await
            .expect("the controller starts with 20,000 revocations on record"),
    );
    let jwt = account_jwt_on_disk(&stack, &org.nats_account_public_key);
    let claims = ritma_bus::jwt::decode_verified(&jwt).unwrap();
    let revoked = claims.nats["revocations"].as_object().unwrap();
    assert_eq!(revoked.len(), 100, "only the live ones are pushed");
    assert!(jwt.len() < 1024 * 1024, "{} bytes", jwt.len());
    // A revocation in the org beyond the bound is refused loudly.
    let pk = nkeys::KeyPair::new_user().public_key();
    let (status, body) = integrator_with(&stack, "huge", json!({ "public_key": pk })).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = stack
        .api(
            reqwest::Method::DELETE,
            &format!("/api/orgs/huge/integrator-credentials/{pk}"),
            None,
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("max_payload"),
        "{body}"
    );

    // A fresh revocation is still enforced by the broker, and kept as long
    // as the node's credential could be used.
    let (mut node, reply, key) = stack.enroll_connected("acme", "prod", "cut-1").await;
    let (status, body) = stack
        .api(
            reqwest::Method::POST,
            "/api/orgs/acme/nodes/cut-1/decommission",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    node.expect_error("revoked", Duration::from_secs(5)).await;
    let keep_until: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "SELECT keep_until FROM org_revocations WHERE org_id = 'acme' AND public_key = $1",
    )
    .bind(key.public_key())
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    let jwt_expiry: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(reply["jwt_expires_at"].clone()).unwrap();
    assert!(
        (keep_until - jwt_expiry).num_seconds().abs() <= 2,
        "{keep_until} vs {jwt_expiry}"
    );
    let jwt = account_jwt_on_disk(&stack, &org.nats_account_public_key);
    let claims = ritma_bus::jwt::decode_verified(&jwt).unwrap();
    assert!(
        claims.nats["revocations"]
            .as_object()
            .unwrap()
            .contains_key(&key.public_key())
    );
}

/// Re-key `node` from `current` to a fresh key through the API.
async fn rekey(
    stack: &TestStack,
    node: &str,
    current: &nkeys::KeyPair,
) -> (u16, Value, nkeys::KeyPair, Option<String>) {
    let next = nkeys::KeyPair::new_user();
    let ts = chrono::Utc::now().timestamp();
    let node_id = ritma_protocol::NodeId::new(node).unwrap();
    let sig = current
        .sign(
            ritma_protocol::enrollment::rekey_challenge(&node_id, &next.public_key(), ts)
                .as_bytes(),
        )
        .unwrap();
    let resp = stack
        .http
        .post(format!("{}/api/nodes/{node}/rekey", stack.api_url()))
        .json(&json!({
            "new_public_key": next.public_key(), "timestamp": ts,
            "signature": data_encoding::BASE64URL_NOPAD.encode(&sig),
        }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        resp.json().await.unwrap_or(Value::Null),
        next,
        retry,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekeys_are_rate_limited_per_node() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let (_a, _, a1) = stack.enroll_connected("acme", "prod", "rk-a").await;
    let (_b, _, b1) = stack.enroll_connected("acme", "prod", "rk-b").await;
    let (status, body, a2, _) = rekey(&stack, "rk-a", &a1).await;
    assert_eq!(status, 200, "{body}");
    // Again at once, with the new key: refused, with a clear error.
    let (status, body, _, retry) = rekey(&stack, "rk-a", &a2).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "rekey_too_soon", "{body}");
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!(retry > 0 && retry <= 3600, "{retry}");
    let current: String = sqlx::query_scalar("SELECT public_key FROM nodes WHERE id = 'rk-a'")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(current, a2.public_key(), "nothing changed");
    // Per node: another node re-keys freely.
    let (status, body, _, _) = rekey(&stack, "rk-b", &b1).await;
    assert_eq!(status, 200, "{body}");
}

/// Connect the daemon's way (`ritma_bus::connect`) to a fake server that
/// sends `nonce`; returns the outcome and the lines the client sent.
async fn fake_server_connect(
    nonce: &str,
    jwt: &str,
    key: &nkeys::KeyPair,
) -> (Result<async_nats::Client, ritma_bus::BusError>, Vec<String>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake_url = format!("nats://{}", listener.local_addr().unwrap());
    let info = json!({
        "server_id": "FAKE", "server_name": "fake", "version": "2.9.10", "proto": 1,
        "host": "127.0.0.1", "port": 4222, "headers": true, "max_payload": 1048576,
        "auth_required": true, "nonce": nonce,
    });
    let seen = tokio::spawn(async move {
        let mut lines = Vec::new();
        if let Ok((conn, _)) = listener.accept().await {
            let (read, mut write) = conn.into_split();
            let _ = write.write_all(format!("INFO {info}\r\n").as_bytes()).await;
            let mut read = tokio::io::BufReader::new(read);
            let until = tokio::time::Instant::now() + Duration::from_secs(3);
            loop {
                let mut line = String::new();
                match tokio::time::timeout_at(until, read.read_line(&mut line)).await {
                    Ok(Ok(n)) if n > 0 => {
                        if line.starts_with("PING") {
                            let _ = write.write_all(b"PONG\r\n").await;
                        }
                        lines.push(line);
                    }
                    _ => break,
                }
            }
        }
        lines
    });
    let connected = ritma_bus::connect::connect(ritma_bus::connect::ConnectSpec {
        urls: vec![fake_url],
        name: "node".into(),
        jwt: ritma_bus::connect::SharedJwt::new(jwt.to_owned()),
        key: std::sync::Arc::new(nkeys::KeyPair::from_seed(&key.seed().unwrap()).unwrap()),
        inbox_prefix: None,
        retry_initial: false,
    })
    .await;
    (connected, seen.await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_signatures_over_requests_and_over_nats_nonces_never_stand_in_for_each_other() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let (_node, reply, key) = stack.enroll_connected("acme", "prod", "sig-1").await;
    let node_id = ritma_protocol::NodeId::new("sig-1").unwrap();
    let attacker = nkeys::KeyPair::new_user();
    let ts = chrono::Utc::now().timestamp();

    // 1. A server (or whoever poses as one) sends a re-key request as its
    //    "nonce": the daemon's bus connection refuses to sign it. (The same
    //    fake server with a NATS-shaped nonce does get a signed CONNECT, so
    //    the refusal is the nonce check, nothing else.)
    let challenge =
        ritma_protocol::enrollment::rekey_challenge(&node_id, &attacker.public_key(), ts);
    let jwt = reply["jwt"].as_str().unwrap().to_owned();
    let (connected, lines) = fake_server_connect(&challenge, &jwt, &key).await;
    assert!(connected.is_err(), "no connection on a forged nonce");
    assert!(
        lines.iter().all(|l| !l.contains("\"sig\"")),
        "nothing was signed: {lines:?}"
    );
    let (_, lines) = fake_server_connect("kZ3oN1_-abcDEF0", &jwt, &key).await;
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("CONNECT") && l.contains("\"sig\"")),
        "a NATS-shaped nonce is signed: {lines:?}"
    );
    // ...and the controller refuses a re-key signed over the old,
    // undelimited request text, as an old daemon would have signed it as a nonce.
    let legacy = format!("ritma-rekey:{node_id}:{}:{ts}", attacker.public_key());
    for signed in [legacy.as_str(), "kZ3oN1_-abcDEF0"] {
        let sig = key.sign(signed.as_bytes()).unwrap();
        let resp = stack
            .http
            .post(format!("{}/api/nodes/sig-1/rekey", stack.api_url()))
            .json(&json!({
                "new_public_key": attacker.public_key(), "timestamp": ts,
                "signature": data_encoding::BASE64URL_NOPAD.encode(&sig),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{signed}");
    }

    // 2. A request's signature is no answer to the broker's nonce: the node's
    //    own JWT with a captured request signature does not connect.
    let request_sig = key
        .sign(ritma_protocol::enrollment::credentials_challenge(&node_id, ts).as_bytes())
        .unwrap();
    let replayed = async_nats::ConnectOptions::with_jwt(
        reply["jwt"].as_str().unwrap().to_owned(),
        move |_nonce| {
            let sig = request_sig.clone();
            async move { Ok(sig) }
        },
    )
    .max_reconnects(Some(1))
    .connection_timeout(Duration::from_secs(2))
    .connect(&stack.nats.url)
    .await;
    assert!(
        replayed.is_err(),
        "a request signature must not authenticate"
    );
    // The node's own key does connect to the real server (its nonce is NATS-shaped).
    let real = ritma_bus::connect::connect(ritma_bus::connect::ConnectSpec {
        urls: vec![stack.nats.url.clone()],
        name: "node".into(),
        jwt: ritma_bus::connect::SharedJwt::new(reply["jwt"].as_str().unwrap().to_owned()),
        key: std::sync::Arc::new(key),
        inbox_prefix: reply["inbox_prefix"].as_str().map(str::to_owned),
        retry_initial: false,
    })
    .await;
    assert!(real.is_ok(), "{:?}", real.err());
}
