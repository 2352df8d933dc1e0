//! Connector dry runs: real findings from the node, the org's allow-list
//! and the dry-run budget.

use reqwest::Method;
use ritma_tests::TestStack;
use serde_json::{Value, json};

use crate::helpers::WAIT;

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
