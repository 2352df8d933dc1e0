//! People's access: OIDC against a real provider, the role matrix over every
//! endpoint, the development header stub, and the audit trail.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use ritma_tests::oidc::{AUDIENCE, OidcProvider};
use ritma_tests::*;
use serde_json::{Value, json};

fn accounts() -> Value {
    json!({
        "olivia": { "email": "olivia@acme.test", "ritma_roles": { "acme": ["org_owner"] } },
        "adam":   { "email": "adam@acme.test",   "ritma_roles": { "acme": ["org_admin"] } },
        "nora":   { "email": "nora@acme.test",   "ritma_roles": ["acme:node_admin"] },
        "victor": { "email": "victor@acme.test", "ritma_roles": { "acme": ["viewer"] } },
        "sam":    { "email": "sam@vendor.test",  "ritma_roles": { "acme": ["support"] } },
        "gina":   { "email": "gina@globex.test", "ritma_roles": { "globex": ["org_owner"] } },
    })
}

async fn stack_with(provider: &OidcProvider) -> TestStack {
    let issuer = provider.issuer.clone();
    TestStack::start_with(move |c| {
        c.oidc_issuer = Some(issuer.clone());
        c.oidc_audience = Some(AUDIENCE.into());
    })
    .await
    .unwrap()
}

async fn call(
    stack: &TestStack,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = stack
        .http
        .request(method, format!("{}{path}", stack.api_url()))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_sign_in_with_a_real_provider_and_get_their_roles() {
    let provider = OidcProvider::start(accounts(), "key-1").await.unwrap();
    let stack = stack_with(&provider).await;
    stack.create_org("acme").await;
    stack.create_org("globex").await;

    let olivia = provider.sign_in("olivia").await.unwrap();
    let (status, me) = call(&stack, &olivia, Method::GET, "/api/me", None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["subject"], "olivia");
    assert_eq!(me["email"], "olivia@acme.test");
    assert_eq!(
        me["orgs"],
        json!([{ "id": "acme", "roles": ["org_owner"] }])
    );
    let (_, orgs) = call(&stack, &olivia, Method::GET, "/api/orgs", None).await;
    assert_eq!(orgs.as_array().unwrap().len(), 1, "only her orgs: {orgs}");

    // Garbage, a token for another audience's shape, and no token at all.
    for bad in ["not-a-jwt", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."] {
        let (status, _) = call(&stack, bad, Method::GET, "/api/me", None).await;
        assert_eq!(status, 401);
    }
    let (status, _) = call(&stack, &format!("{olivia}x"), Method::GET, "/api/me", None).await;
    assert_eq!(status, 401, "a tampered signature is refused");

    // The provider rotates its signing key: new tokens work at once, old ones stop.
    let provider = provider.rotate_key("key-2").await.unwrap();
    // The API refetches keys for an unknown key id at most every 10 s (so
    // random key ids cannot make it hammer the provider).
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let fresh = provider.sign_in("olivia").await.unwrap();
    let (status, _) = call(&stack, &fresh, Method::GET, "/api/me", None).await;
    assert_eq!(status, 200, "token signed with the rotated key");
    let (status, _) = call(&stack, &olivia, Method::GET, "/api/me", None).await;
    assert_eq!(status, 401, "the retired key no longer verifies");
}

/// What each role may do, per endpoint: allowed, 403, or (outsiders) 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_matrix_over_every_endpoint() {
    let provider = OidcProvider::start(accounts(), "key-1").await.unwrap();
    let stack = stack_with(&provider).await;
    stack.create_org("acme").await;
    stack.create_org("globex").await;
    let token = stack.create_token("acme", "prod", 10).await;
    let (_, _, _) = stack.enroll_raw(&token, "n1").await;
    let (_, tokens) = stack
        .api(Method::GET, "/api/orgs/acme/enrollment-tokens", None)
        .await;
    let token_id = tokens[0]["id"].as_str().unwrap().to_owned();
    let integrator = nkeys::KeyPair::new_user().public_key();
    let (s, _) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/integrator-credentials",
            Some(json!({ "public_key": integrator })),
        )
        .await;
    assert_eq!(s, 201);

    use ritma_controller::auth::Action::{self, *};
    let endpoints: Vec<(Method, String, Option<Value>, Option<Action>)> = vec![
        (
            Method::GET,
            "/api/orgs/acme/nodes".into(),
            None,
            Some(ReadFleet),
        ),
        (
            Method::GET,
            "/api/orgs/acme/nodes/summary".into(),
            None,
            Some(ReadFleet),
        ),
        (
            Method::GET,
            "/api/orgs/acme/nodes/n1".into(),
            None,
            Some(ReadFleet),
        ),
        (
            Method::GET,
            "/api/orgs/acme/enrollment-tokens".into(),
            None,
            Some(ReadFleet),
        ),
        (
            Method::GET,
            "/api/orgs/acme/integrator-credentials".into(),
            None,
            Some(ReadFleet),
        ),
        (
            Method::GET,
            "/api/orgs/acme/audit".into(),
            None,
            Some(ReadAudit),
        ),
        (
            Method::GET,
            "/api/orgs/acme/roles".into(),
            None,
            Some(ReadAudit),
        ),
        (
            Method::POST,
            "/api/orgs/acme/enrollment-tokens".into(),
            Some(json!({ "tenant_id": "prod" })),
            Some(ManageTokens),
        ),
        (
            Method::DELETE,
            format!("/api/orgs/acme/enrollment-tokens/{token_id}"),
            None,
            Some(ManageTokens),
        ),
        (
            Method::POST,
            "/api/orgs/acme/integrator-credentials".into(),
            Some(json!({ "public_key": nkeys::KeyPair::new_user().public_key() })),
            Some(ManageIntegrators),
        ),
        (
            Method::DELETE,
            format!("/api/orgs/acme/integrator-credentials/{integrator}"),
            None,
            Some(ManageIntegrators),
        ),
        (
            Method::POST,
            "/api/orgs/acme/roles".into(),
            Some(json!({ "subject": "zed", "role": "viewer" })),
            Some(ManageRoles),
        ),
        (
            Method::DELETE,
            "/api/orgs/acme/roles/zed/viewer".into(),
            None,
            Some(ManageRoles),
        ),
        (
            Method::POST,
            "/api/orgs/acme/nodes/n1/decommission".into(),
            None,
            Some(ManageNodes),
        ),
        // Console-wide: only the operator.
        (
            Method::POST,
            "/api/orgs".into(),
            Some(json!({ "id": "initech" })),
            None,
        ),
    ];
    let people = [
        ("olivia", Some(ritma_controller::auth::Role::OrgOwner)),
        ("adam", Some(ritma_controller::auth::Role::OrgAdmin)),
        ("nora", Some(ritma_controller::auth::Role::NodeAdmin)),
        ("victor", Some(ritma_controller::auth::Role::Viewer)),
        ("sam", Some(ritma_controller::auth::Role::Support)),
        ("gina", None),
    ];
    let mut checked = 0;
    for (person, role) in people {
        let token = provider.sign_in(person).await.unwrap();
        for (method, path, body, action) in &endpoints {
            // Role deletions need the grant to exist first.
            if path.ends_with("/roles/zed/viewer") {
                stack
                    .api(
                        Method::POST,
                        "/api/orgs/acme/roles",
                        Some(json!({ "subject": "zed", "role": "viewer" })),
                    )
                    .await;
            }
            let (status, reply) = call(&stack, &token, method.clone(), path, body.clone()).await;
            let expected: &[u16] = match (role, action) {
                (None, Some(_)) => &[404],
                (_, None) => &[403],
                (Some(r), Some(a)) if r.allows(*a) => &[200, 201, 204],
                (Some(_), Some(_)) => &[403],
            };
            assert!(
                expected.contains(&status),
                "{person} ({role:?}) {method} {path}: got {status} {reply}, expected {expected:?}"
            );
            if status == 404 {
                assert!(
                    !reply.to_string().contains("n1\""),
                    "a 404 reveals nothing: {reply}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, endpoints.len() * people.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_stub_exists_only_in_development() {
    let stack = TestStack::start_with(|c| c.dev_header_auth = true)
        .await
        .unwrap();
    stack.create_org("acme").await;
    let r = stack
        .http
        .get(format!("{}/api/orgs/acme/nodes", stack.api_url()))
        .header("x-user-id", "dev")
        .header("x-org-id", "acme")
        .header("x-roles", "viewer")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = stack
        .http
        .post(format!(
            "{}/api/orgs/acme/enrollment-tokens",
            stack.api_url()
        ))
        .header("x-user-id", "dev")
        .header("x-org-id", "acme")
        .header("x-roles", "viewer")
        .json(&json!({ "tenant_id": "prod" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    let mut config = stack.config();
    config.dev_header_auth = true;
    config.environment = "production".into();
    let err = ritma_controller::Controller::build(config)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("production"), "{err}");
    // Without the stub, the headers mean nothing.
    let plain = TestStack::start().await.unwrap();
    plain.create_org("acme").await;
    let r = plain
        .http
        .get(format!("{}/api/orgs/acme/nodes", plain.api_url()))
        .header("x-user-id", "dev")
        .header("x-org-id", "acme")
        .header("x-roles", "org_owner")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutation_is_audited_chained_published_and_verifiable() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let watcher = integrator_including(&stack, "acme", None, &["audit"]).await;
    let mut audit_feed = watcher.client.subscribe("ritma.acme.audit").await.unwrap();
    watcher.client.flush().await.unwrap();

    let token = stack.create_token("acme", "prod", 2).await;
    let (status, _, _) = stack.enroll_raw(&token, "n1").await;
    assert_eq!(status, 200);
    stack
        .api(Method::POST, "/api/orgs/acme/nodes/n1/decommission", None)
        .await;
    stack
        .api(
            Method::POST,
            "/api/orgs/acme/roles",
            Some(json!({ "subject": "sam", "role": "support", "expires_at": chrono::Utc::now() + chrono::Duration::days(2) })),
        )
        .await;

    let (_, entries) = stack.api(Method::GET, "/api/orgs/acme/audit", None).await;
    let actions: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in [
        "org.create",
        "integrator.create",
        "enrollment_token.create",
        "node.enroll",
        "node.decommission",
        "role.grant",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let decommission = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "node.decommission")
        .unwrap();
    assert_eq!(decommission["actor"], "operator");
    assert_eq!(decommission["before"]["status"], "unseen");
    assert_eq!(decommission["after"]["status"], "decommissioned");
    assert!(
        decommission["source"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1")
    );

    // Published on the org's audit subject, in order, chained. Entries made
    // before the subscription (org and integrator creation) may have been
    // sent before it existed (the publisher sends at commit); every entry
    // from the first change after it must arrive.
    let first_after = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "enrollment_token.create")
        .filter_map(|e| e["id"].as_i64())
        .min()
        .unwrap();
    let expected = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["id"].as_i64() >= Some(first_after))
        .count();
    let mut published = Vec::new();
    while published.len() < expected {
        let msg = tokio::time::timeout(Duration::from_secs(10), audit_feed.next())
            .await
            .unwrap()
            .unwrap();
        let event = serde_json::from_slice::<Value>(&msg.payload).unwrap();
        if event["id"].as_i64() >= Some(first_after) {
            published.push(event);
        }
    }
    // One org here, so consecutive entries are chained on the bus too.
    for pair in published.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"], "{pair:?}");
    }

    let clean = ritma_db::audit::audit_verify(&stack.pool).await.unwrap();
    assert!(clean.breaks.is_empty(), "{:?}", clean.breaks);
    assert!(clean.entries >= 6);

    // The table refuses edits...
    let edit = sqlx::query(
        "UPDATE audit_log SET actor = 'someone else' WHERE action = 'node.decommission'",
    )
    .execute(&stack.pool)
    .await;
    assert!(edit.is_err(), "audit_log is append-only");
    // ...and one made behind its back is caught by verification.
    let edited_id: i64 =
        sqlx::query_scalar("SELECT id FROM audit_log WHERE action = 'node.decommission'")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    let mut conn = stack.pool.acquire().await.unwrap();
    sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET actor = 'someone else' WHERE id = $1")
        .bind(edited_id)
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update")
        .execute(&mut *conn)
        .await
        .unwrap();
    let report = ritma_db::audit::audit_verify(&stack.pool).await.unwrap();
    assert_eq!(
        report.breaks.first().map(|b| b.id),
        Some(edited_id),
        "{:?}",
        report.breaks
    );

    // A deleted entry breaks the chain at the next one.
    let victim: i64 = sqlx::query_scalar("SELECT id FROM audit_log WHERE action = 'node.enroll'")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_outbox WHERE audit_id = $1")
        .bind(victim)
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_log WHERE id = $1")
        .bind(victim)
        .execute(&mut *conn)
        .await
        .unwrap();
    let report = ritma_db::audit::audit_verify(&stack.pool).await.unwrap();
    assert!(
        report
            .breaks
            .iter()
            .any(|b| b.id > victim && b.problem.contains("previous hash")),
        "{:?}",
        report.breaks
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_integrator_is_cut_off() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let key = nkeys::KeyPair::new_user();
    let public = key.public_key();
    let (_, body) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/integrator-credentials",
            Some(json!({ "public_key": public, "ttl_secs": 3600 })),
        )
        .await;
    let mut reader = BusUser::connect(&stack.nats.url, body["jwt"].as_str().unwrap(), key, None)
        .await
        .unwrap();
    let (_, list) = stack
        .api(Method::GET, "/api/orgs/acme/integrator-credentials", None)
        .await;
    assert_eq!(list[0]["public_key"], public);
    let (status, _) = stack
        .api(
            Method::DELETE,
            &format!("/api/orgs/acme/integrator-credentials/{public}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    reader.expect_error("revoked", Duration::from_secs(5)).await;
}
