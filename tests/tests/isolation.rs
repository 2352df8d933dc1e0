//! The broker enforces every scope: nodes publish only their own telemetry
//! and read only their own commands; integrators only read their org; a
//! decommissioned node is cut off and cannot come back.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::time::Duration;

use futures::StreamExt;
use ritma_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_are_confined_to_their_own_subjects() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    stack.create_org("globex").await;
    let (mut a, _, _) = stack.enroll_connected("acme", "prod", "node-a").await;
    let (b, _, _) = stack.enroll_connected("acme", "prod", "node-b").await;
    let js = async_nats::jetstream::new(a.client.clone());

    // Its own subject: acked by the central stream.
    js.publish(
        "ritma.acme.prod.node.node-a.heartbeat",
        heartbeat_body("node-a", 1, 10).into(),
    )
    .await
    .unwrap()
    .await
    .expect("own subject is acked");

    // Another node's subject, another tenant's, another org's, and the JetStream API.
    for subject in [
        "ritma.acme.prod.node.node-b.heartbeat",
        "ritma.acme.dev.node.node-a.heartbeat",
        "ritma.globex.prod.node.node-a.heartbeat",
        "ritma.acme.prod.node.node-a.cmd.policy_changed",
        "$JS.API.STREAM.LIST",
    ] {
        a.client.publish(subject, "{}".into()).await.unwrap();
        let err = a
            .expect_error("permissions violation", Duration::from_secs(5))
            .await;
        assert!(
            err.contains(&subject.to_lowercase()),
            "{err} should name {subject}"
        );
    }

    // Reading another node's commands is refused by the broker...
    let mut spy = a
        .client
        .subscribe("ritma.acme.prod.node.node-b.cmd.>")
        .await
        .unwrap();
    a.expect_error(
        "permissions violation for subscription",
        Duration::from_secs(5),
    )
    .await;
    // ...and so is reading other inboxes.
    let _inbox_spy = a.client.subscribe("_INBOX_node-b.>").await.unwrap();
    a.expect_error(
        "permissions violation for subscription",
        Duration::from_secs(5),
    )
    .await;
    // The real node-b does get its own commands.
    let mut own = b
        .client
        .subscribe("ritma.acme.prod.node.node-b.cmd.>")
        .await
        .unwrap();
    b.client.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Commands are published by the controller inside the org account; emulate
    // with a user of that account minted by the test (same permissions).
    let org = ritma_db::orgs::org_get(&stack.pool, "acme")
        .await
        .unwrap()
        .unwrap();
    let master = ritma_controller::crypto::MasterKey::from_hex(MASTER_KEY).unwrap();
    let seed = master
        .decrypt(&org.nats_signing_seed_enc, "ritma:org:acme:signing")
        .unwrap();
    let signing = nkeys::KeyPair::from_seed(std::str::from_utf8(&seed).unwrap()).unwrap();
    let user = nkeys::KeyPair::new_user();
    let org_id = ritma_protocol::OrgId::new("acme").unwrap();
    let jwt = ritma_bus::accounts::user_jwt(
        &signing,
        &ritma_bus::accounts::UserSpec {
            name: "cmd",
            user_public_key: &user.public_key(),
            account_public_key: &org.nats_account_public_key,
            permissions: &ritma_bus::accounts::UserPermissions::controller_in_org(&org_id),
            expires_at: None,
        },
    )
    .unwrap();
    let controller_in_org = BusUser::connect(&stack.nats.url, &jwt, user, None)
        .await
        .unwrap();
    controller_in_org
        .client
        .publish(
            "ritma.acme.prod.node.node-b.cmd.refresh_credentials",
            "{}".into(),
        )
        .await
        .unwrap();
    controller_in_org.client.flush().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), own.next()).await;
    assert!(matches!(got, Ok(Some(_))), "node-b receives its command");
    let leaked = tokio::time::timeout(Duration::from_millis(500), spy.next()).await;
    assert!(
        !matches!(leaked, Ok(Some(_))),
        "node-a must not read node-b's commands"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrators_read_only_their_org_and_cannot_publish() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    stack.create_org("globex").await;
    let (acme_node, _, _) = stack.enroll_connected("acme", "prod", "acme-1").await;
    let (globex_node, _, _) = stack.enroll_connected("globex", "prod", "globex-1").await;

    let mut acme_reader = integrator(&stack, "acme", None).await;
    // Telemetry of every tenant (the default grant; `ritma.acme.>` would be
    // wider than it).
    let mut all = acme_reader
        .client
        .subscribe("ritma.acme.*.node.*.heartbeat")
        .await
        .unwrap();
    acme_reader.client.flush().await.unwrap();
    let tenant_reader = integrator(&stack, "acme", Some("dev")).await;
    let mut dev_only = tenant_reader
        .client
        .subscribe("ritma.acme.dev.node.*.heartbeat")
        .await
        .unwrap();
    tenant_reader.client.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    for (node, subject, id) in [
        (
            &acme_node,
            "ritma.acme.prod.node.acme-1.heartbeat",
            "acme-1",
        ),
        (
            &globex_node,
            "ritma.globex.prod.node.globex-1.heartbeat",
            "globex-1",
        ),
    ] {
        async_nats::jetstream::new(node.client.clone())
            .publish(subject, heartbeat_body(id, 1, 10).into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // Collect what the acme integrator sees for a while: acme telemetry,
    // never globex.
    let mut seen = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(msg)) = tokio::time::timeout_at(until, all.next()).await {
        seen.push(msg.subject.to_string());
    }
    assert!(
        seen.contains(&"ritma.acme.prod.node.acme-1.heartbeat".to_string()),
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|s| s.starts_with("ritma.acme.")),
        "leak across orgs: {seen:?}"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), dev_only.next())
            .await
            .is_err(),
        "a tenant-scoped integrator sees no other tenant"
    );

    // Reading outside the org is refused, and so is any publish.
    let _sneak = acme_reader
        .client
        .subscribe("ritma.globex.>")
        .await
        .unwrap();
    acme_reader
        .expect_error(
            "permissions violation for subscription",
            Duration::from_secs(5),
        )
        .await;
    acme_reader
        .client
        .publish(
            "ritma.acme.prod.node.acme-1.heartbeat",
            heartbeat_body("acme-1", 2, 10).into(),
        )
        .await
        .unwrap();
    acme_reader
        .expect_error("permissions violation for publish", Duration::from_secs(5))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decommissioned_node_is_cut_off_at_the_broker() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let (mut node, reply, key) = stack.enroll_connected("acme", "prod", "gone-1").await;
    let js = async_nats::jetstream::new(node.client.clone());
    js.publish(
        "ritma.acme.prod.node.gone-1.heartbeat",
        heartbeat_body("gone-1", 1, 10).into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();

    let (status, body) = stack
        .api(
            reqwest::Method::POST,
            "/api/orgs/acme/nodes/gone-1/decommission",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "decommissioned");

    // The broker closes the connection at once...
    node.expect_error("revoked", Duration::from_secs(5)).await;
    // ...and the same credential cannot come back.
    let again = BusUser::connect(
        &stack.nats.url,
        reply["jwt"].as_str().unwrap(),
        nkeys::KeyPair::from_seed(&key.seed().unwrap()).unwrap(),
        reply["inbox_prefix"].as_str(),
    )
    .await;
    assert!(again.is_err(), "a revoked credential must not connect");
    // Nor can the node get a fresh credential, though it proves its key.
    let ts = chrono::Utc::now().timestamp();
    let node_id = ritma_protocol::NodeId::new("gone-1").unwrap();
    let sig = key
        .sign(ritma_protocol::enrollment::credentials_challenge(&node_id, ts).as_bytes())
        .unwrap();
    let resp = stack
        .http
        .post(format!("{}/api/nodes/gone-1/credentials", stack.api_url()))
        .json(&serde_json::json!({ "timestamp": ts, "signature": data_encoding::BASE64URL_NOPAD.encode(&sig) }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "node_decommissioned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cannot_impersonate_another() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let (_a, a_reply, _a_key) = stack.enroll_connected("acme", "prod", "node-a").await;
    let (_b, _b_reply, b_key) = stack.enroll_connected("acme", "prod", "node-b").await;
    // node-b presents node-a's JWT, signing the nonce with its own key: refused.
    let stolen = BusUser::connect(
        &stack.nats.url,
        a_reply["jwt"].as_str().unwrap(),
        nkeys::KeyPair::from_seed(&b_key.seed().unwrap()).unwrap(),
        a_reply["inbox_prefix"].as_str(),
    )
    .await;
    assert!(
        stolen.is_err(),
        "another node's JWT with one's own key must not connect"
    );
    // And a fresh key with node-a's JWT: refused too.
    let forged = BusUser::connect(
        &stack.nats.url,
        a_reply["jwt"].as_str().unwrap(),
        nkeys::KeyPair::new_user(),
        None,
    )
    .await;
    assert!(forged.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_brute_force_is_rate_limited() {
    let stack = TestStack::start_with(|c| {
        c.enroll_failures_burst = 5;
        c.enroll_failures_per_min = 1;
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    let good = stack.create_token("acme", "prod", 10).await;
    // A legitimate enrollment costs nothing.
    let (status, _, _) = stack.enroll_raw(&good, "legit-1").await;
    assert_eq!(status, 200);
    for i in 0..5 {
        let (status, body, _) = stack
            .enroll_raw(&format!("ritma_et_guess{i:04}"), "x-1")
            .await;
        assert_eq!(status, 401, "{body}");
    }
    let resp = stack
        .http
        .post(format!("{}/api/nodes/register", stack.api_url()))
        .json(&serde_json::json!({
            "token": good, "public_key": nkeys::KeyPair::new_user().public_key(),
            "hostname": "h", "agent_version": "t", "node_id": "legit-2",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        429,
        "locked out, even with a good token"
    );
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    // The credential refresh shares the source's budget.
    let resp = stack
        .http
        .post(format!("{}/api/nodes/legit-1/credentials", stack.api_url()))
        .json(&serde_json::json!({ "timestamp": 0, "signature": "AAAA" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    // The admin API is not affected.
    let (status, _) = stack.api(reqwest::Method::GET, "/api/orgs", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        stack.count("SELECT count(*) FROM nodes").await,
        1,
        "nothing enrolled while locked out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_requests_are_rate_limited_per_credential_and_per_address() {
    let stack = TestStack::start_with(|c| {
        c.api_rate_per_credential = 1;
        c.api_burst_per_credential = 5;
        c.api_rate_per_address = 1;
        c.api_burst_per_address = 12;
        c.dev_header_auth = true;
    })
    .await
    .unwrap();
    let get = |who: &'static str| {
        let http = stack.http.clone();
        let url = format!("{}/api/me", stack.api_url());
        async move {
            let req = http.get(url);
            let req = if who == "admin" {
                req.bearer_auth(ritma_tests::ADMIN_TOKEN)
            } else {
                req.header("x-user-id", who)
                    .header("x-org-id", "acme")
                    .header("x-roles", "viewer")
            };
            req.send().await.unwrap()
        }
    };
    for i in 0..5 {
        assert_eq!(get("admin").await.status().as_u16(), 200, "request {i}");
    }
    let refused = get("admin").await;
    assert_eq!(refused.status().as_u16(), 429, "the token's burst is spent");
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    assert!(body["message"].as_str().unwrap().contains("credential"));
    // Another credential from the same address still has its own budget ...
    for i in 0..5 {
        assert_eq!(get("alice").await.status().as_u16(), 200, "alice {i}");
    }
    // ... until the address's budget (12, of which 11 are spent, refilling at
    // 1/s) runs out too: well before bob's own 5.
    let mut refused = None;
    for _ in 0..4 {
        let resp = get("bob").await;
        if resp.status().as_u16() == 429 {
            refused = Some(resp);
            break;
        }
    }
    let refused = refused.expect("the address's budget runs out");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("address"),
        "{body}"
    );
    // Health and readiness are never limited (load balancers poll them).
    let health = stack
        .http
        .get(format!("{}/healthz", stack.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    // Budgets refill: after the advertised wait the token works again.
    tokio::time::sleep(Duration::from_secs(retry.max(1) + 1)).await;
    assert_eq!(get("admin").await.status().as_u16(), 200);
}

/// A node's signed credential refresh, as the daemon sends it.
async fn refresh(stack: &TestStack, node: &str, key: &nkeys::KeyPair, forge: bool) -> u16 {
    use data_encoding::BASE64URL_NOPAD;
    let id = ritma_protocol::NodeId::new(node.to_owned()).unwrap();
    let ts = chrono::Utc::now().timestamp();
    let signer = if forge {
        nkeys::KeyPair::new_user()
    } else {
        nkeys::KeyPair::from_seed(&key.seed().unwrap()).unwrap()
    };
    let challenge = ritma_protocol::enrollment::credentials_challenge(&id, ts);
    let signature = BASE64URL_NOPAD.encode(&signer.sign(challenge.as_bytes()).unwrap());
    stack
        .http
        .post(format!("{}/api/nodes/{node}/credentials", stack.api_url()))
        .json(&serde_json::json!({ "timestamp": ts, "signature": signature }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// 1,000 nodes reach the controller from one address (a proxy or NAT the
/// controller does not trust); one of them keeps sending bad signatures.
/// Its refusals are charged to it, so the other 1,000 keep refreshing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_node_behind_a_shared_address_does_not_lock_out_the_fleet() {
    const FLEET: usize = 1000;
    let stack = TestStack::start_with(|c| {
        c.enroll_failures_burst = 5;
        c.enroll_failures_per_min = 1;
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", FLEET as i32 + 1).await;
    let ids: Vec<String> = (0..=FLEET).map(|i| format!("fleet-{i:04}")).collect();
    let keys: Vec<nkeys::KeyPair> = futures::stream::iter(ids.iter())
        .map(|id| {
            let (stack, token) = (&stack, &token);
            async move {
                let (status, body, key) = stack.enroll_raw(token, id).await;
                assert_eq!(status, 200, "{id}: {body}");
                key
            }
        })
        .buffered(16)
        .collect()
        .await;
    let (bad_id, bad_key) = (&ids[FLEET], &keys[FLEET]);

    let mut bad = Vec::new();
    for _ in 0..20 {
        bad.push(refresh(&stack, bad_id, bad_key, true).await);
    }
    assert!(bad[..5].iter().all(|s| *s == 401), "{bad:?}");
    assert!(
        bad[5..].iter().all(|s| *s == 429),
        "the bad node is slowed: {bad:?}"
    );

    let statuses: Vec<u16> = futures::stream::iter(ids[..FLEET].iter().zip(&keys))
        .map(|(id, key)| refresh(&stack, id, key, false))
        .buffered(16)
        .collect()
        .await;
    let refused: Vec<_> = statuses
        .iter()
        .zip(&ids)
        .filter(|(s, _)| **s != 200)
        .collect();
    assert!(refused.is_empty(), "the fleet kept refreshing: {refused:?}");
    // The bad node itself is still refused, even with its own good key now:
    // its bucket is empty until it refills.
    assert_eq!(refresh(&stack, bad_id, bad_key, false).await, 429);

    // Guessing tokens still spends the address's budget (nothing to key by).
    for i in 0..5 {
        let (status, _, _) = stack
            .enroll_raw(&format!("ritma_et_guess{i:04}"), "x-1")
            .await;
        assert_eq!(status, 401);
    }
    assert_eq!(refresh(&stack, &ids[0], &keys[0], false).await, 429);
}
