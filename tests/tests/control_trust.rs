//! Nodes authenticate the control plane (issue 24), on real NATS, Postgres
//! and daemons: commands signed by the org's control key for one node, with
//! an expiry and an id (captured ones replayed elsewhere, later or twice are
//! refused, unsigned and forged ones too); policies signed at creation and
//! when served (rows edited in PostgreSQL are applied by no node, and the
//! refusal shows through the API and on the bus); the control key rotated
//! under the old key's signature, followed by nodes without enrolling again.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use ritma_protocol::{Command, CommandKind, NodeId, OrgId, SignedCommand};
use ritma_tests::{BusUser, DaemonHandle, MASTER_KEY, TestStack, integrator_including};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// A user inside the org's account with the controller's permissions there
/// (publish commands, read replies on its inbox): what a stolen controller
/// credential, or someone on the bus path, can send to nodes.
async fn org_bus_user(stack: &TestStack, org: &str) -> BusUser {
    let record = ritma_db::orgs::org_get(&stack.pool, org)
        .await
        .unwrap()
        .unwrap();
    let master = ritma_controller::crypto::MasterKey::from_hex(MASTER_KEY).unwrap();
    let seed = master
        .decrypt(
            &record.nats_signing_seed_enc,
            &format!("ritma:org:{org}:signing"),
        )
        .unwrap();
    let signing = nkeys::KeyPair::from_seed(std::str::from_utf8(&seed).unwrap()).unwrap();
    let user = nkeys::KeyPair::new_user();
    let org_id = OrgId::new(org).unwrap();
    let jwt = ritma_bus::accounts::user_jwt(
        &signing,
        &ritma_bus::accounts::UserSpec {
            name: "on-the-path",
            user_public_key: &user.public_key(),
            account_public_key: &record.nats_account_public_key,
            permissions: &ritma_bus::accounts::UserPermissions::controller_in_org(&org_id),
            expires_at: None,
        },
    )
    .unwrap();
    BusUser::connect(&stack.nats.url, &jwt, user, Some("_INBOX_ritma_controller"))
        .await
        .unwrap()
}

async fn daemon(stack: &TestStack, token: &str, id: &str, sync_secs: u32) -> DaemonHandle {
    stack
        .spawn_daemon_with(Some(token), stack.dir.path().join(id), 1, 60, |a| {
            a.node_id = Some(id.into());
            a.policy_sync_secs = Some(sync_secs);
        })
        .await
        .unwrap()
}

async fn online(stack: &TestStack, node: &str) {
    stack
        .eventually(&format!("{node} online"), WAIT, || async {
            (stack.node_status(node).await.as_deref() == Some("online")).then_some(())
        })
        .await;
}

async fn node_view(stack: &TestStack, node: &str) -> Value {
    stack
        .api(Method::GET, &format!("/api/orgs/acme/nodes/{node}"), None)
        .await
        .1
}

/// Send `body` to `node`'s `command` subject and return the node's answer.
async fn ask(bus: &BusUser, node: &str, command: &str, body: Vec<u8>) -> Value {
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        bus.client.request(
            format!("ritma.acme.prod.node.{node}.cmd.{command}"),
            body.into(),
        ),
    )
    .await
    .expect("the node answers in time")
    .expect("the node answers");
    serde_json::from_slice(&reply.payload).unwrap()
}

fn refused(answer: &Value, code: &str) {
    assert_eq!(answer["status"], "refused", "{answer}");
    assert_eq!(answer["code"], code, "{answer}");
    assert!(
        !answer["error"].as_str().unwrap_or("").is_empty(),
        "{answer}"
    );
}

fn rejected_commands(d: &DaemonHandle) -> u64 {
    d.recorder
        .totals()
        .iter()
        .filter(|(k, _)| k.contains("command") && k.contains("rejected"))
        .map(|(_, v)| *v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_replayed_expired_unsigned_and_forged_commands_are_refused() {
    let stack = TestStack::start_with(|c| c.command_ttl_secs = 3)
        .await
        .unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 2).await;
    let a = daemon(&stack, &token, "node-a", 3600).await;
    let b = daemon(&stack, &token, "node-b", 3600).await;
    online(&stack, "node-a").await;
    online(&stack, "node-b").await;

    // Capture what the controller sends node-a (an integrator allowed to
    // read commands sees exactly the bytes).
    let reader = integrator_including(&stack, "acme", None, &["commands"]).await;
    let mut captured = reader
        .client
        .subscribe("ritma.acme.*.node.node-a.cmd.>")
        .await
        .unwrap();
    reader.client.flush().await.unwrap();
    let (status, pack) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/rulepacks",
            Some(json!({ "name": "base", "rules": { "deny": ["ptrace"] } })),
        )
        .await;
    assert_eq!(status, 201, "{pack}");
    let (status, body) = stack
        .api(
            Method::POST,
            "/api/nodes/node-a/policies",
            Some(json!({ "rulepack": "base", "mode": "enforce" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let msg = tokio::time::timeout(WAIT, captured.next())
        .await
        .expect("the controller sends node-a a command")
        .unwrap();
    assert!(msg.subject.ends_with(".cmd.policy_changed"));
    let original = msg.payload.to_vec();
    // The genuine command is signed, for node-a, short-lived; node-a acts on it.
    let signed: SignedCommand = serde_json::from_slice(&original).unwrap();
    let cmd: Command = serde_json::from_str(&signed.command).unwrap();
    assert_eq!(cmd.node_id.as_str(), "node-a");
    assert!((cmd.expires_at - cmd.issued_at).num_seconds() <= 3);
    stack
        .eventually("node-a applies base@1", WAIT, || async {
            (node_view(&stack, "node-a").await["policy_version"] == "base@1").then_some(())
        })
        .await;

    let path = org_bus_user(&stack, "acme").await;
    // Replayed to another node: refused, nothing done.
    refused(
        &ask(&path, "node-b", "policy_changed", original.clone()).await,
        "other_node",
    );
    // Replayed to its own node: already taken.
    refused(
        &ask(&path, "node-a", "policy_changed", original.clone()).await,
        "replayed",
    );
    // Unsigned (the old, plain shape), and forged with a key node-a did not pin.
    let org = OrgId::new("acme").unwrap();
    let plain = Command::new(
        org.clone(),
        NodeId::new("node-a").unwrap(),
        30,
        CommandKind::RefreshCredentials,
    );
    let unsigned = serde_json::to_vec(&plain).unwrap();
    refused(
        &ask(&path, "node-a", "refresh_credentials", unsigned).await,
        "unsigned",
    );
    let rogue = ritma_protocol::trust::control_key_new();
    let mut forged = SignedCommand::sign(&plain, &rogue).unwrap();
    refused(
        &ask(&path, "node-a", "refresh_credentials", forged.encode()).await,
        "bad_signature",
    );
    // Even claiming to be the pinned key.
    forged.signed_by = signed.signed_by.clone();
    refused(
        &ask(&path, "node-a", "refresh_credentials", forged.encode()).await,
        "bad_signature",
    );
    // After its expiry the capture is refused as expired.
    tokio::time::sleep(Duration::from_secs(4)).await;
    refused(
        &ask(&path, "node-a", "policy_changed", original).await,
        "expired",
    );

    assert_eq!(rejected_commands(&a), 5, "{:?}", a.recorder.totals());
    assert_eq!(rejected_commands(&b), 1, "{:?}", b.recorder.totals());
    // Both nodes carry on.
    online(&stack, "node-a").await;
    online(&stack, "node-b").await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rulepack_edited_in_the_database_is_applied_by_no_node() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 2).await;
    let reader = integrator_including(&stack, "acme", None, &[]).await;
    let mut states = reader
        .client
        .subscribe("ritma.acme.*.state.>")
        .await
        .unwrap();
    reader.client.flush().await.unwrap();

    let (status, pack) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/rulepacks",
            Some(json!({ "name": "base", "frameworks": ["cis"], "rules": { "deny": ["ptrace"] } })),
        )
        .await;
    assert_eq!(status, 201, "{pack}");
    assert!(
        pack["signed_by"].as_str().unwrap().starts_with('V'),
        "{pack}"
    );
    let (status, body) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/policy-assignments",
            Some(json!({ "scope_kind": "org", "rulepack": "base", "mode": "enforce" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let nodes = [
        daemon(&stack, &token, "node-a", 5).await,
        daemon(&stack, &token, "node-b", 5).await,
    ];
    for n in ["node-a", "node-b"] {
        stack
            .eventually(&format!("{n} applies base@1"), WAIT, || async {
                (node_view(&stack, n).await["policy_version"] == "base@1").then_some(())
            })
            .await;
    }

    // Someone with write access to PostgreSQL rewrites the revision, hash
    // included (so the hash check alone would pass).
    let evil = r#"{"allow":["everything"]}"#;
    sqlx::query("UPDATE rulepacks SET content = $1, sha256 = $2 WHERE name = 'base'")
        .bind(evil)
        .bind(ritma_protocol::policy::content_sha256(evil))
        .execute(&stack.pool)
        .await
        .unwrap();
    for n in ["node-a", "node-b"] {
        let view = stack
            .eventually(&format!("{n} reports the refusal"), WAIT, || async {
                let v = node_view(&stack, n).await;
                v["policy_rejected"].is_string().then_some(v)
            })
            .await;
        let reason = view["policy_rejected"].as_str().unwrap();
        assert!(reason.contains("rulepack revision signature"), "{reason}");
        assert_eq!(view["policy_version"], "base@1", "{view}");
        // The node still runs the content the org signed.
        let cached = std::fs::read_to_string(stack.dir.path().join(n).join("policy.json")).unwrap();
        assert!(
            cached.contains("ptrace") && !cached.contains("everything"),
            "{cached}"
        );
    }
    // The refusal is a state change on the bus too.
    let mut seen = std::collections::BTreeSet::new();
    tokio::time::timeout(WAIT, async {
        while let Some(msg) = states.next().await {
            let v: Value = serde_json::from_slice(&msg.payload).unwrap();
            if v["kind"] == "policy_rejected" {
                seen.insert(v["node_id"].as_str().unwrap().to_owned());
                if seen.len() == 2 {
                    return;
                }
            }
        }
    })
    .await
    .expect("a policy_rejected state change for each node");

    // A forged next revision, with the signature of another revision copied
    // in, pointed at by editing the assignment columns: refused as well.
    sqlx::query(
        "INSERT INTO rulepacks (org_id, name, revision, content, sha256, created_by, signed_by, signature)
         SELECT org_id, name, 2, $1, $2, 'db', signed_by, signature FROM rulepacks WHERE name = 'base'",
    )
    .bind(evil)
    .bind(ritma_protocol::policy::content_sha256(evil))
    .execute(&stack.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE nodes SET policy_assigned = 'base@2'")
        .execute(&stack.pool)
        .await
        .unwrap();
    stack
        .eventually("node-a refuses base@2", WAIT, || async {
            let v = node_view(&stack, "node-a").await;
            v["policy_rejected"]
                .as_str()
                .is_some_and(|r| r.contains("base@2"))
                .then_some(())
        })
        .await;
    assert_eq!(
        node_view(&stack, "node-a").await["policy_version"],
        "base@1"
    );

    // Publishing through the API signs a new revision: nodes take it and
    // the refusal clears.
    sqlx::query("DELETE FROM rulepacks WHERE revision = 2")
        .execute(&stack.pool)
        .await
        .unwrap();
    let (status, pack) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/rulepacks",
            Some(json!({ "name": "base", "frameworks": ["cis"], "rules": { "deny": ["ptrace", "kexec"] } })),
        )
        .await;
    assert_eq!(status, 201, "{pack}");
    let version = pack["version"].as_str().unwrap().to_owned();
    for n in ["node-a", "node-b"] {
        stack
            .eventually(&format!("{n} applies {version}"), WAIT, || async {
                let v = node_view(&stack, n).await;
                (v["policy_version"] == version.as_str() && v["policy_rejected"].is_null())
                    .then_some(())
            })
            .await;
    }
    for n in nodes {
        n.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_follow_a_rotated_control_key_without_enrolling_again() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    stack.create_org("globex").await;
    let token = stack.create_token("acme", "prod", 1).await;
    let a = daemon(&stack, &token, "node-a", 3600).await;
    online(&stack, "node-a").await;
    let identity = |dir: &str| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(stack.dir.path().join(dir).join("identity.json")).unwrap(),
        )
        .unwrap()
    };
    let (_, key) = stack
        .api(Method::GET, "/api/orgs/acme/control-key", None)
        .await;
    let first = key["public_key"].as_str().unwrap().to_owned();
    assert_eq!(identity("node-a")["control_key"], first.as_str());
    // Each org has its own key.
    let (_, other) = stack
        .api(Method::GET, "/api/orgs/globex/control-key", None)
        .await;
    assert_ne!(other["public_key"], first.as_str());

    let (status, pack) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/rulepacks",
            Some(json!({ "name": "base", "rules": { "deny": ["ptrace"] } })),
        )
        .await;
    assert_eq!(status, 201, "{pack}");
    let (status, rotated) = stack
        .api(Method::POST, "/api/orgs/acme/control-key/rotate", None)
        .await;
    assert_eq!(status, 200, "{rotated}");
    let second = rotated["public_key"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(rotated["revisions_signed_again"], 1, "{rotated}");
    let (_, key) = stack
        .api(Method::GET, "/api/orgs/acme/control-key", None)
        .await;
    assert_eq!(key["rotations"][0]["previous"], first.as_str(), "{key}");
    assert_eq!(
        stack
            .count("SELECT count(*) FROM audit_log WHERE action = 'control_key.rotate'")
            .await,
        1
    );
    // An org that does not exist has no key to rotate.
    let (status, _) = stack
        .api(Method::POST, "/api/orgs/nope/control-key/rotate", None)
        .await;
    assert_eq!(status, 404);

    // The next command is signed by the new key: the node fetches the signed
    // hand-over, pins the new key and applies the policy it signs.
    let (status, body) = stack
        .api(
            Method::POST,
            "/api/nodes/node-a/policies",
            Some(json!({ "rulepack": "base", "mode": "enforce" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    stack
        .eventually("node-a applies base@1 under the new key", WAIT, || async {
            (node_view(&stack, "node-a").await["policy_version"] == "base@1").then_some(())
        })
        .await;
    assert_eq!(identity("node-a")["control_key"], second.as_str());
    // The pin survives a restart, and commands under the new key are taken.
    a.stop().await.unwrap();
    let a = daemon(&stack, &token, "node-a", 3600).await;
    online(&stack, "node-a").await;
    let (status, _) = stack
        .api(
            Method::POST,
            "/api/nodes/node-a/policies",
            Some(json!({ "rulepack": "base", "mode": "observe" })),
        )
        .await;
    assert_eq!(status, 201);
    stack
        .eventually(
            "node-a takes the change signed by the new key",
            WAIT,
            || async {
                let applied: Option<String> =
                    sqlx::query_scalar("SELECT policy_mode FROM nodes WHERE id = 'node-a'")
                        .fetch_one(&stack.pool)
                        .await
                        .ok()?;
                let log =
                    std::fs::read_to_string(stack.dir.path().join("node-a").join("policy.json"))
                        .ok()?;
                (applied.as_deref() == Some("observe") && log.contains("\"observe\"")).then_some(())
            },
        )
        .await;
    assert_eq!(rejected_commands(&a), 0);
    a.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_enrolled_before_control_keys_pins_its_org_key_at_start() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 1).await;
    let a = daemon(&stack, &token, "node-a", 3600).await;
    online(&stack, "node-a").await;
    a.stop().await.unwrap();
    // An identity.json as written before control keys existed.
    let path = stack.dir.path().join("node-a").join("identity.json");
    let mut identity: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    identity.as_object_mut().unwrap().remove("control_key");
    std::fs::write(&path, serde_json::to_string(&identity).unwrap()).unwrap();

    let a = daemon(&stack, &token, "node-a", 3600).await;
    let (_, key) = stack
        .api(Method::GET, "/api/orgs/acme/control-key", None)
        .await;
    let pinned: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(pinned["control_key"], key["public_key"]);
    let (status, _) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/rulepacks",
            Some(json!({ "name": "base", "rules": { "deny": ["ptrace"] } })),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = stack
        .api(
            Method::POST,
            "/api/nodes/node-a/policies",
            Some(json!({ "rulepack": "base", "mode": "enforce" })),
        )
        .await;
    assert_eq!(status, 201);
    stack
        .eventually("node-a applies base@1", WAIT, || async {
            (node_view(&stack, "node-a").await["policy_version"] == "base@1").then_some(())
        })
        .await;
    a.stop().await.unwrap();
}
