//! Fleet operations end to end, on real NATS, Postgres and daemons:
//! policies and drift, connector dry runs, key governance (with the
//! `ritma_cloud` stand-in), usage and estimates (with the `billing_daemon`
//! stand-in), and the node config template.

use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use ritma_tests::standins::StandIn;
use ritma_tests::{TestStack, integrator, usage_body};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

async fn node_view(stack: &TestStack, org: &str, node: &str) -> Value {
    stack
        .api(Method::GET, &format!("/api/orgs/{org}/nodes/{node}"), None)
        .await
        .1
}

/// An integrator's view of state changes; changes not asked for yet are kept,
/// so the order two nodes' changes arrive in does not matter.
struct Feed {
    _reader: ritma_tests::BusUser,
    sub: async_nats::Subscriber,
    pending: Vec<Value>,
}

impl Feed {
    async fn new(stack: &TestStack, org: &str) -> Self {
        let reader = integrator(stack, org, None).await;
        let sub = reader
            .client
            .subscribe(format!("ritma.{org}.*.state.>"))
            .await
            .expect("subscribe to state changes");
        Self {
            _reader: reader,
            sub,
            pending: vec![],
        }
    }

    /// The next state change of `kind` about `node`.
    async fn next(&mut self, node: &str, kind: &str) -> Value {
        let wanted = |v: &Value| v["node_id"] == node && v["kind"] == kind;
        if let Some(i) = self.pending.iter().position(wanted) {
            return self.pending.remove(i);
        }
        let sub = &mut self.sub;
        let pending = &mut self.pending;
        tokio::time::timeout(WAIT, async {
            while let Some(msg) = sub.next().await {
                let v: Value = serde_json::from_slice(&msg.payload).expect("state change JSON");
                if wanted(&v) {
                    return v;
                }
                pending.push(v);
            }
            panic!("feed ended")
        })
        .await
        .unwrap_or_else(|_| panic!("no {kind} change for {node}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_change_reaches_the_node_and_a_held_node_drifts() {
    let stack = TestStack::start_with(|c| {
        c.policy_drift_grace_secs = 1;
        c.fleet_reconcile_ms = 200;
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 2).await;
    let mut feed = Feed::new(&stack, "acme").await;

    let index = stack.dir.path().join("compliance.jsonl");
    let follower = stack
        .spawn_daemon_with(Some(&token), stack.dir.path().join("a"), 1, 60, |a| {
            a.node_id = Some("follower".into());
            // Far away: a change must arrive by push, not by the periodic sync.
            a.policy_sync_secs = Some(3600);
            a.compliance_index = Some(index.clone());
        })
        .await
        .unwrap();
    let held = stack
        .spawn_daemon_with(Some(&token), stack.dir.path().join("b"), 1, 60, |a| {
            a.node_id = Some("held".into());
            a.policy_hold = true;
        })
        .await
        .unwrap();

    // Bad input first: refused with a reason, nothing stored.
    for (body, needle) in [
        (json!({ "name": "Bad Name", "rules": {} }), "name"),
        (json!({ "name": "base", "rules": "allow" }), "rules"),
    ] {
        let (status, err) = stack
            .api(Method::POST, "/api/orgs/acme/rulepacks", Some(body))
            .await;
        assert_eq!(status, 400, "{err}");
        assert!(err["message"].as_str().unwrap().contains(needle), "{err}");
    }
    let (status, err) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/policy-assignments",
            Some(json!({ "scope_kind": "org", "rulepack": "missing", "mode": "enforce" })),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(stack.count("SELECT count(*) FROM rulepacks").await, 0);

    let (status, pack) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/rulepacks",
            Some(json!({ "name": "baseline", "frameworks": ["cis"], "rules": { "deny": ["ptrace"] } })),
        )
        .await;
    assert_eq!(status, 201, "{pack}");
    assert_eq!(pack["version"], "baseline@1");
    let (status, assignment) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/policy-assignments",
            Some(json!({ "scope_kind": "org", "rulepack": "baseline", "mode": "enforce" })),
        )
        .await;
    assert_eq!(status, 201, "{assignment}");
    assert_eq!(assignment["nodes"], 2);

    // The follower applies it (pushed) and the inventory shows it, live.
    let applied = feed.next("follower", "policy_applied").await;
    assert_eq!(applied["applied"], "baseline@1");
    let view = node_view(&stack, "acme", "follower").await;
    assert_eq!(view["policy_version"], "baseline@1");
    assert_eq!(view["policy_assigned"], "baseline@1");
    assert_eq!(view["policy_mode"], "enforce");

    // The held node never applies it: drifted after the grace period.
    let drift = feed.next("held", "policy_drift").await;
    assert_eq!(drift["drifted"], true);
    assert_eq!(drift["assigned"], "baseline@1");
    let (_, drifted) = stack
        .api(Method::GET, "/api/orgs/acme/nodes?drifted=true", None)
        .await;
    let ids: Vec<&str> = drifted["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["held"]);
    let (_, summary) = stack
        .api(Method::GET, "/api/orgs/acme/nodes/summary", None)
        .await;
    assert_eq!(summary["drifted"], 1);
    let (_, held_policy) = stack
        .api(Method::GET, "/api/nodes/held/policies", None)
        .await;
    assert_eq!(held_policy["assigned"]["version"], "baseline@1");
    assert_eq!(held_policy["assigned"]["scope_kind"], "org");
    assert_eq!(held_policy["drifted"], true);
    assert!(held_policy["applied"].is_null());

    // A new revision is pushed too.
    let (status, pack) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/rulepacks",
            Some(json!({ "name": "baseline", "frameworks": ["cis"], "rules": { "deny": ["ptrace", "kexec"] } })),
        )
        .await;
    assert_eq!(status, 201, "{pack}");
    assert_eq!(pack["version"], "baseline@2");
    let applied = feed.next("follower", "policy_applied").await;
    assert_eq!(applied["applied"], "baseline@2");
    // The same content again makes no new revision.
    let (status, same) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/rulepacks",
            Some(json!({ "name": "baseline", "frameworks": ["cis"], "rules": { "deny": ["ptrace", "kexec"] } })),
        )
        .await;
    assert_eq!((status, same["revision"].clone()), (200, json!(2)));

    // The daemon kept the bundle privately, and its compliance index says so.
    let cached = stack.dir.path().join("a/policy.json");
    let bundle: ritma_protocol::PolicyBundle =
        serde_json::from_slice(&std::fs::read(&cached).unwrap()).unwrap();
    bundle.verify().unwrap();
    assert_eq!(bundle.version, "baseline@2");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&cached).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let lines = std::fs::read_to_string(&index).unwrap();
    assert_eq!(lines.matches("\"policy_applied\"").count(), 2, "{lines}");

    // Removing the assignment brings the held node back in step.
    let id = assignment["id"].as_str().unwrap();
    let (status, _) = stack
        .api(
            Method::DELETE,
            &format!("/api/orgs/acme/policy-assignments/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let back = feed.next("held", "policy_drift").await;
    assert_eq!(back["drifted"], false);
    let applied = feed.next("follower", "policy_applied").await;
    assert!(applied["applied"].is_null(), "{applied}");
    assert!(
        stack
            .count("SELECT count(*) FROM audit_log WHERE action IN ('rulepack.create','policy.assign','policy.unassign')")
            .await
            >= 4
    );
    follower.stop().await.unwrap();
    held.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_dry_runs_return_real_findings_from_the_node() {
    let stack = TestStack::start_with(|c| c.dry_run_timeout_secs = 3)
        .await
        .unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 1).await;
    let index = stack.dir.path().join("compliance.jsonl");
    let node = stack
        .spawn_daemon_with(Some(&token), stack.dir.path().join("n"), 1, 1, |a| {
            a.node_id = Some("web-1".into());
            a.compliance_index = Some(index.clone());
        })
        .await
        .unwrap();
    stack.wait_status("web-1", "online", WAIT).await;

    let writable = stack.dir.path().join("data");
    std::fs::create_dir_all(&writable).unwrap();
    let put = |cid: &'static str, body: Value| {
        let stack = &stack;
        async move {
            stack
                .api(
                    Method::PUT,
                    &format!("/api/nodes/web-1/connectors/{cid}"),
                    Some(body),
                )
                .await
        }
    };
    let (status, created) = put("posture", json!({ "kind": "host", "allowed_ports": [22] })).await;
    assert_eq!(status, 201, "{created}");
    let (status, _) = put(
        "evidence",
        json!({ "kind": "storage", "paths": [
            { "path": writable.to_str().unwrap(), "writable": true },
            { "path": "/nonexistent/ritma-evidence", "writable": false },
        ] }),
    )
    .await;
    assert_eq!(status, 201);
    // Secrets are never stored: an inline one is refused, with the reason.
    let (status, err) = put(
        "cluster",
        json!({ "kind": "k8s", "api_server": "https://k8s.internal:6443", "namespace": "ritma",
                "token_ref": "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0" }),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("token_ref"),
        "{err}"
    );
    assert!(
        !err.to_string().contains("c2VjcmV0"),
        "the secret is not echoed: {err}"
    );
    let (status, _) = put(
        "cloud",
        json!({ "kind": "aws", "region": "eu-west-1", "account_id": "123456789012",
                "credentials_ref": "env:RITMA_TEST_UNSET_AWS" }),
    )
    .await;
    assert_eq!(status, 201);

    let dry_run = |cid: &'static str| {
        let stack = &stack;
        async move {
            stack
                .api(
                    Method::POST,
                    &format!("/api/nodes/web-1/connectors/{cid}/dry-run"),
                    None,
                )
                .await
        }
    };
    let (status, host) = dry_run("posture").await;
    assert_eq!(status, 200, "{host}");
    let checks: Vec<&str> = host["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    assert!(checks.contains(&"host.file.mode:/etc/passwd"), "{checks:?}");
    assert!(
        checks.contains(&"host.sysctl:kernel.randomize_va_space"),
        "{checks:?}"
    );
    assert!(
        checks.iter().any(|c| c.starts_with("host.port.listening")),
        "{checks:?}"
    );

    let (status, storage) = dry_run("evidence").await;
    assert_eq!(status, 200, "{storage}");
    assert_eq!(storage["outcome"], "fail", "{storage}");
    let status_of = |check: String| {
        storage["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == check.as_str())
            .map(|f| f["status"].clone())
    };
    assert_eq!(
        status_of(format!("storage.path.writable:{}", writable.display())),
        Some(json!("pass"))
    );
    assert_eq!(
        status_of("storage.path.exists:/nonexistent/ritma-evidence".into()),
        Some(json!("fail"))
    );
    let (status, cloud) = dry_run("cloud").await;
    assert_eq!(status, 200, "{cloud}");
    assert_ne!(
        cloud["outcome"], "pass",
        "no secret and no internet here: {cloud}"
    );

    // The cross-node view keeps each connector's last run.
    let (_, all) = stack
        .api(Method::GET, "/api/orgs/acme/connectors", None)
        .await;
    assert_eq!(all["items"].as_array().unwrap().len(), 3, "{all}");
    // The inventory and the node page count them (the refused one is not there).
    let (_, node_view) = stack
        .api(Method::GET, "/api/orgs/acme/nodes/web-1", None)
        .await;
    assert_eq!(node_view["connector_count"], 3, "{node_view}");
    let (_, list) = stack
        .api(Method::GET, "/api/orgs/acme/nodes?q=web-1", None)
        .await;
    assert_eq!(list["items"][0]["connector_count"], 3, "{list}");
    let (_, failing) = stack
        .api(
            Method::GET,
            "/api/orgs/acme/connectors?kind=storage&outcome=fail",
            None,
        )
        .await;
    assert_eq!(failing["items"][0]["id"], "evidence", "{failing}");
    assert_eq!(failing["items"][0]["last_run"]["outcome"], "fail");
    let (status, _) = stack
        .api(Method::GET, "/api/orgs/acme/connectors?kind=ftp", None)
        .await;
    assert_eq!(status, 400);
    assert!(
        std::fs::read_to_string(&index)
            .unwrap()
            .contains("\"connector_dry_run\"")
    );

    // SLO and enforcement rollups from the daemon's own summaries.
    for _ in 0..3 {
        node.recorder.decision(ritma_node::recorder::Decision::Deny);
    }
    let (_, events) = stack
        .eventually("enforcement rollup", WAIT, || async {
            let r = stack
                .api(
                    Method::GET,
                    "/api/orgs/acme/nodes/web-1/events?hours=2",
                    None,
                )
                .await;
            (r.1["totals"]["deny"] == 3).then_some(r)
        })
        .await;
    assert_eq!(events["totals"]["allow"], 0);
    let (_, slo) = stack
        .api(Method::GET, "/api/nodes/web-1/slo-summary", None)
        .await;
    assert!(
        slo["totals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["component"] == "daemon" && t["operation"] == "heartbeat"),
        "{slo}"
    );

    // A stopped node cannot answer: a clear 504, not a hang.
    node.stop().await.unwrap();
    let (status, err) = dry_run("posture").await;
    assert_eq!(status, 504, "{err}");
    assert_eq!(err["error"], "node_unreachable");
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_the_estimate_come_from_what_nodes_reported() {
    let billing = StandIn::start().await;
    billing.set(|s| {
        s.drafts.insert(
            "prod".into(),
            json!({ "currency": "USD", "total": 42.5,
                    "lines": [{ "metric": "decisions", "quantity": 3000, "unit_price": 0.01, "amount": 42.5 }] }),
        );
    });
    let url = billing.url.clone();
    let stack = TestStack::start_with(move |c| c.billing_daemon_url = Some(url.clone()))
        .await
        .unwrap();
    stack.create_org("acme").await;
    let mut published = 0;
    for (tenant, node, reports) in [
        ("prod", "p-1", vec![(1, 1000), (2, 2000)]),
        ("dev", "d-1", vec![(1, 500)]),
    ] {
        let token = stack.create_token("acme", tenant, 1).await;
        let (status, reply, key) = stack.enroll_raw(&token, node).await;
        assert_eq!(status, 200, "{reply}");
        let bus = stack.connect_node(&reply, key).await.unwrap();
        let js = async_nats::jetstream::new(bus.client.clone());
        let subject = format!("ritma.acme.{tenant}.node.{node}.usage");
        for (seq, decisions) in &reports {
            js.publish(subject.clone(), usage_body(node, *seq, *decisions).into())
                .await
                .unwrap()
                .await
                .unwrap();
            published += 1;
        }
        // A redelivered report (same node and seq) must not count twice.
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", "a-different-copy");
        js.publish_with_headers(subject, headers, usage_body(node, 1, 1000).into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    assert_eq!(published, 3);
    let usage = stack
        .eventually("usage rolled up", WAIT, || async {
            let (_, u) = stack
                .api(Method::GET, "/api/orgs/acme/usage/summary", None)
                .await;
            (u["totals"]["decisions"] == 3500).then_some(u)
        })
        .await;
    // Let the duplicate copies reach the database too, then check again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, usage_again) = stack
        .api(Method::GET, "/api/orgs/acme/usage/summary", None)
        .await;
    assert_eq!(usage_again["totals"], usage["totals"]);
    assert_eq!(usage["totals"]["dig_files"], 3);
    assert_eq!(usage["totals"]["storage_bytes"], 30);
    let tenants = usage["tenants"].as_array().unwrap();
    assert_eq!(tenants[0]["tenant_id"], "dev");
    assert_eq!(tenants[0]["decisions"], 500);
    assert_eq!(tenants[1]["tenant_id"], "prod");
    assert_eq!(tenants[1]["decisions"], 3000);
    assert_eq!(usage["daily"][0]["decisions"], 3500);

    let estimate = || async {
        stack
            .api(Method::GET, "/api/orgs/acme/billing/estimate", None)
            .await
    };
    let (status, e) = estimate().await;
    assert_eq!(status, 200, "{e}");
    assert_eq!(e["source"], "mixed");
    assert!(
        e["label"].as_str().unwrap().contains("not an invoice"),
        "{e}"
    );
    let by_tenant = |t: &str| {
        e["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["tenant_id"] == t)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_tenant("prod")["source"], "billing_daemon");
    assert_eq!(by_tenant("prod")["total"], 42.5);
    let dev = by_tenant("dev");
    assert_eq!(dev["source"], "price_table");
    assert!(dev["note"].as_str().unwrap().contains("billing"), "{dev}");
    assert_eq!(dev["lines"][0]["metric"], "decisions");
    assert_eq!(dev["lines"][0]["quantity"], 500);
    let dev_total: f64 = dev["total"].as_f64().unwrap();
    assert!((e["total"].as_f64().unwrap() - (42.5 + dev_total)).abs() < 1e-9);
    // Drafts are cached: a second look does not reach the billing daemon again.
    let (_, again) = estimate().await;
    assert_eq!(again["total"], e["total"]);
    let period = usage["period_idx"].as_i64().unwrap();
    assert_eq!(
        billing.count(&format!(
            "GET /invoice-draft?org_id=acme&tenant_id=prod&period_idx={period}"
        )),
        1
    );
    let (status, err) = stack
        .api(
            Method::GET,
            "/api/orgs/acme/usage/summary?period=2026-13",
            None,
        )
        .await;
    assert_eq!(status, 400, "{err}");
    let (_, empty) = stack
        .api(
            Method::GET,
            "/api/orgs/acme/usage/summary?period=2001-01",
            None,
        )
        .await;
    assert_eq!(empty["totals"]["decisions"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_template_is_what_a_new_node_needs() {
    let stack = TestStack::start_with(|c| {
        c.public_url = Some("https://console.example.com".into());
        c.utld_usage_http_url = Some("http://billing.internal/usage".into());
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    let (status, t) = stack
        .api(
            Method::GET,
            "/api/orgs/acme/nodes/config-template?tenant_id=prod",
            None,
        )
        .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(
        t["env"]["RITMA_NODE_CONTROLLER_URL"],
        "https://console.example.com"
    );
    assert_eq!(t["env"]["RITMA_NODE_TENANT_ID"], "prod");
    assert_eq!(
        t["env"]["UTLD_USAGE_HTTP_URL"],
        "http://billing.internal/usage"
    );
    for key in ["UTLD_SOCKET", "UTLD_TLS_ADDR", "RITMA_ENROLL_TOKEN"] {
        assert!(t["env"][key].is_string(), "{key}: {t}");
    }
    assert!(t["env"].get("RITMA_CLOUD_URL").is_none(), "not configured");
    assert!(
        t["systemd_unit"]
            .as_str()
            .unwrap()
            .contains("ExecStart=/usr/bin/ritma-node")
    );
    assert!(
        t["env_file"]
            .as_str()
            .unwrap()
            .contains("RITMA_NODE_ORG_ID=acme\n")
    );
    let (status, _) = stack
        .api(
            Method::GET,
            "/api/orgs/acme/nodes/config-template?tenant_id=Not%20Valid",
            None,
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = stack
        .api(Method::GET, "/api/orgs/nope/nodes/config-template", None)
        .await;
    assert_eq!(status, 404);
}

/// A node admin (or whoever took over such an account) could make every node
/// of the org open any file as a "secret" and probe any host and port: the
/// org's connector allow-list confines connectors, only org owners change
/// it, and dry runs have a budget per node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_stay_inside_the_org_allow_list_and_dry_runs_have_a_budget() {
    let stack = TestStack::start_with(|c| {
        c.dev_header_auth = true;
        c.dry_run_timeout_secs = 1;
        c.dry_runs_burst = 2;
        c.dry_runs_per_min = 1;
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    stack.create_org("globex").await;
    let token = stack.create_token("acme", "prod", 2).await;
    for id in ["web-1", "web-2"] {
        let (status, body, _) = stack.enroll_raw(&token, id).await;
        assert_eq!(status, 200, "{body}");
    }
    let put = |node: &'static str, cid: &'static str, body: Value| {
        let stack = &stack;
        async move {
            stack
                .api(
                    Method::PUT,
                    &format!("/api/nodes/{node}/connectors/{cid}"),
                    Some(body),
                )
                .await
        }
    };
    let k8s = json!({ "kind": "k8s", "api_server": "https://k8s.internal:6443",
                      "namespace": "ritma", "token_ref": "env:RITMA_K8S_TOKEN" });

    let (status, list) = stack
        .api(Method::GET, "/api/orgs/acme/connector-allow-list", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["endpoints"], json!([]), "{list}");
    // Outside the default list: an endpoint, a file anywhere, another env name.
    let (status, err) = put("web-1", "cluster", k8s.clone()).await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("allow-list"),
        "{err}"
    );
    for secret in [
        "file:/etc/shadow",
        "file:/etc/ritma-node/secrets/../../shadow",
        "env:AWS_SECRET_ACCESS_KEY",
    ] {
        let (status, err) = put(
            "web-1",
            "cloud",
            json!({ "kind": "aws", "region": "eu-west-1", "account_id": "123456789012",
                    "credentials_ref": secret }),
        )
        .await;
        assert_eq!(status, 400, "{secret}: {err}");
    }

    // Only an org owner changes the list; a node admin may not widen it.
    let as_role = |role: &'static str, body: Value| {
        let stack = &stack;
        async move {
            stack
                .http
                .put(format!(
                    "{}/api/orgs/acme/connector-allow-list",
                    stack.api_url()
                ))
                .header("x-user-id", "nadia")
                .header("x-org-id", "acme")
                .header("x-roles", role)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let wide = json!({ "secret_dirs": ["/etc/ritma-node/secrets/"], "env_prefixes": ["RITMA_"],
                       "endpoints": ["k8s.internal:6443"] });
    assert_eq!(as_role("node_admin", wide.clone()).await, 403);
    let (status, err) = stack
        .api(
            Method::PUT,
            "/api/orgs/acme/connector-allow-list",
            Some(json!({ "secret_dirs": ["/"], "env_prefixes": [], "endpoints": [] })),
        )
        .await;
    assert_eq!(status, 400, "a list that allows every file: {err}");
    assert_eq!(as_role("org_owner", wide.clone()).await, 200);
    let (status, created) = put("web-1", "cluster", k8s.clone()).await;
    assert_eq!(status, 201, "{created}");
    let audited = stack
        .count("SELECT count(*) FROM audit_log WHERE action = 'connector.allow_list'")
        .await;
    assert_eq!(audited, 1);
    // Another org's list is its own.
    let (_, other) = stack
        .api(Method::GET, "/api/orgs/globex/connector-allow-list", None)
        .await;
    assert_eq!(other["endpoints"], json!([]), "{other}");

    // Narrowed again: the saved connector may no longer run.
    let (status, _) = stack
        .api(
            Method::PUT,
            "/api/orgs/acme/connector-allow-list",
            Some(json!({ "secret_dirs": [], "env_prefixes": [], "endpoints": [] })),
        )
        .await;
    assert_eq!(status, 200);
    let dry_run = |node: &'static str, cid: &'static str| {
        let stack = &stack;
        async move {
            stack
                .http
                .post(format!(
                    "{}/api/nodes/{node}/connectors/{cid}/dry-run",
                    stack.api_url()
                ))
                .bearer_auth(ritma_tests::ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
        }
    };
    let resp = dry_run("web-1", "cluster").await;
    assert_eq!(resp.status().as_u16(), 400);

    // The budget per node: two at once (the node is not connected: 504),
    // then 429 with Retry-After; the other node keeps its own budget.
    for node in ["web-1", "web-2"] {
        let (status, _) = put(node, "posture", json!({ "kind": "host" })).await;
        assert_eq!(status, 201);
    }
    for _ in 0..2 {
        assert_eq!(dry_run("web-1", "posture").await.status().as_u16(), 504);
    }
    let limited = dry_run("web-1", "posture").await;
    assert_eq!(limited.status().as_u16(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(dry_run("web-2", "posture").await.status().as_u16(), 504);
}
