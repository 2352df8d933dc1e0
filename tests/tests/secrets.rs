//! No secret (seeds, enrollment tokens, JWTs, the master key, the admin
//! token) appears in the logs of a whole flow, even at debug level, nor in
//! any read endpoint's response. Its own test binary: it owns the global
//! log subscriber.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use ritma_tests::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_out_of_logs_and_responses() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug,sqlx=warn,hyper=info,h2=info")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init()
        .unwrap();

    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 1).await;
    let dir = stack.dir.path().join("node");
    let daemon = stack
        .spawn_daemon(Some(&token), dir.clone(), 1, 1)
        .await
        .unwrap();
    let node = daemon.node_id.clone();
    stack
        .wait_status(&node, "online", Duration::from_secs(15))
        .await;
    let integrator_key = nkeys::KeyPair::new_user();
    let (_, creds) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/integrator-credentials",
            Some(serde_json::json!({ "public_key": integrator_key.public_key() })),
        )
        .await;
    // Refused attempts log too: a bad token must not be echoed either.
    let (status, _, _) = stack
        .enroll_raw("ritma_et_this-one-is-wrong-but-secret", "x")
        .await;
    assert_eq!(status, 401);

    // Every read endpoint's body.
    let mut bodies = String::new();
    for path in [
        "/api/orgs".to_string(),
        "/api/orgs/acme/nodes".into(),
        format!("/api/orgs/acme/nodes/{node}"),
        "/api/orgs/acme/enrollment-tokens".into(),
        "/api/orgs/acme/integrator-credentials".into(),
        "/api/orgs/acme/audit".into(),
        "/api/me".into(),
        "/readyz".into(),
    ] {
        let (status, body) = stack.api(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}");
        bodies.push_str(&body.to_string());
    }
    daemon.stop().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let org = ritma_db::orgs::org_get(&stack.pool, "acme")
        .await
        .unwrap()
        .unwrap();
    let master = ritma_controller::crypto::MasterKey::from_hex(MASTER_KEY).unwrap();
    let signing_seed = String::from_utf8(
        master
            .decrypt(&org.nats_signing_seed_enc, "ritma:org:acme:signing")
            .unwrap(),
    )
    .unwrap();
    let account_seed = String::from_utf8(
        master
            .decrypt(&org.nats_account_seed_enc, "ritma:org:acme:account")
            .unwrap(),
    )
    .unwrap();
    let node_seed = std::fs::read_to_string(dir.join("node.nk")).unwrap();
    let node_jwt = std::fs::read_to_string(dir.join("credentials.jwt")).unwrap();
    let secrets = [
        ("admin token", ADMIN_TOKEN.to_string()),
        ("master key", MASTER_KEY.to_string()),
        ("enrollment token", token.clone()),
        (
            "refused enrollment token",
            "this-one-is-wrong-but-secret".to_string(),
        ),
        ("node seed", node_seed.trim().to_string()),
        ("node JWT", node_jwt.trim().to_string()),
        ("integrator JWT", creds["jwt"].as_str().unwrap().to_string()),
        ("integrator seed", integrator_key.seed().unwrap()),
        ("org signing seed", signing_seed),
        ("org account seed", account_seed),
        ("operator seed", stack.keys.operator.seed().unwrap()),
        ("system user seed", stack.keys.system_user.seed().unwrap()),
    ];
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("node enrolled"), "the capture works");
    for (what, secret) in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "{what} appears in the logs"
        );
        assert!(
            !bodies.contains(secret.as_str()),
            "{what} appears in an API response"
        );
    }
    // No JWT or seed of any kind, whatever we did not think of.
    let jwt = logs.lines().find(|l| l.contains("eyJ0eXAiOiJKV1Qi"));
    assert!(jwt.is_none(), "a NATS JWT in the logs: {jwt:?}");
    for prefix in ["SU", "SA", "SO"] {
        let seed = logs.lines().find(|l| seed_like(l, prefix));
        assert!(seed.is_none(), "an nkey seed in the logs: {seed:?}");
    }
}

/// An nkey seed: `S` + type letter + 56 base32 characters.
fn seed_like(line: &str, prefix: &str) -> bool {
    line.match_indices(prefix).any(|(i, _)| {
        let rest: String = line[i..].chars().take(58).collect();
        rest.len() == 58
            && rest
                .chars()
                .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
    })
}
