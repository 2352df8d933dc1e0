//! Bulk jobs: a preview first (count and a sample), then one audited job
//! with a result per node, run in pages by the bulk worker, progress on the
//! bus for the console; and the abuse cases: another org's nodes are never
//! acted on, viewers cannot run jobs, selections are bounded, an org cannot
//! flood jobs, a key makes a request idempotent, a job survives a
//! controller restart, and bad input is a 400 that changes nothing.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::time::Duration;

use futures::StreamExt as _;
use reqwest::Method;
use ritma_tests::bulk::{finished, insert_nodes, post};
use ritma_tests::*;
use serde_json::{Value, json};

const CONSOLE_TOKEN: &str = "test-console-service-token-0123456789";

async fn as_person(
    stack: &TestStack,
    org: &str,
    role: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = stack
        .http
        .request(method, format!("{}{path}", stack.api_url()))
        .header("x-user-id", "someone")
        .header("x-org-id", org)
        .header("x-roles", role);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_matching_nodes_are_labelled_in_pages_with_a_result_each() {
    let stack = TestStack::start_with(|c| c.bulk.page_size = 2_000)
        .await
        .unwrap();
    stack.create_org("acme").await;
    stack.create_org("globex").await;
    insert_nodes(&stack, "acme", 100_000).await;
    insert_nodes(&stack, "globex", 100).await;

    let request = json!({
        "action": "add_labels",
        "params": { "labels": { "site": "fra1" } },
        "selection": { "filter": {} },
    });
    let (status, preview) = post(&stack, "/api/orgs/acme/bulk-jobs/preview", request.clone()).await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["count"], 100_000);
    assert_eq!(preview["sample"].as_array().unwrap().len(), 10);
    assert_eq!(preview["sample"][0]["id"], "acme-000001");
    assert_eq!(
        stack.count("SELECT count(*) FROM bulk_jobs").await,
        0,
        "a preview changes nothing"
    );

    let (status, job) = post(&stack, "/api/orgs/acme/bulk-jobs", request).await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["total"], 100_000);
    let id = job["id"].as_str().unwrap().to_owned();
    let job = finished(&stack, "acme", &id, Duration::from_secs(180)).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(
        (
            &job["total"],
            &job["succeeded"],
            &job["failed"],
            &job["skipped"]
        ),
        (&json!(100_000), &json!(100_000), &json!(0), &json!(0))
    );
    assert_eq!(
        stack
            .count("SELECT count(*) FROM nodes WHERE labels @> '{\"site\": \"fra1\"}' AND org_id = 'acme'")
            .await,
        100_000
    );
    assert_eq!(
        stack
            .count("SELECT count(*) FROM nodes WHERE labels ? 'site' AND org_id = 'globex'")
            .await,
        0,
        "another org's nodes are not in an org's filter"
    );
    // The result per node, in keyset pages.
    let (status, page) = stack
        .api(
            Method::GET,
            &format!("/api/orgs/acme/bulk-jobs/{id}/items?limit=1000"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 1000);
    assert_eq!(page["items"][0]["state"], "succeeded");
    let after = page["next_after"].as_str().unwrap();
    assert_eq!(after, "acme-001000");
    let (_, next) = stack
        .api(
            Method::GET,
            &format!("/api/orgs/acme/bulk-jobs/{id}/items?limit=2&after={after}"),
            None,
        )
        .await;
    assert_eq!(next["items"][0]["node_id"], "acme-001001");
    // One audited job: asked for, and ended.
    for action in ["bulk_job.create", "bulk_job.finish"] {
        assert_eq!(
            stack
                .count(&format!(
                    "SELECT count(*) FROM audit_log WHERE action = '{action}' AND target = '{id}' AND org_id = 'acme'"
                ))
                .await,
            1,
            "{action}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_of_another_org_are_skipped_and_never_touched() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    stack.create_org("globex").await;
    insert_nodes(&stack, "acme", 3).await;
    insert_nodes(&stack, "globex", 3).await;
    let request = json!({
        "action": "decommission",
        "selection": { "ids": ["acme-000001", "acme-000002", "globex-000001", "nosuch"] },
    });
    let (status, preview) = post(&stack, "/api/orgs/acme/bulk-jobs/preview", request.clone()).await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(
        (&preview["count"], &preview["unknown_ids"]),
        (&json!(2), &json!(2))
    );
    let sample: Vec<&str> = preview["sample"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        sample,
        ["acme-000001", "acme-000002"],
        "no foreign node is shown"
    );

    let (status, job) = post(&stack, "/api/orgs/acme/bulk-jobs", request).await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let job = finished(&stack, "acme", &id, Duration::from_secs(30)).await;
    assert_eq!(job["selection"]["ids"].as_array().unwrap().len(), 4);
    let (_, list) = stack
        .api(Method::GET, "/api/orgs/acme/bulk-jobs", None)
        .await;
    assert_eq!(list["items"][0]["selection"], json!({ "ids": 4 }), "{list}");
    assert_eq!(
        (&job["succeeded"], &job["skipped"], &job["failed"]),
        (&json!(2), &json!(2), &json!(0)),
        "{job}"
    );
    let (_, items) = stack
        .api(
            Method::GET,
            &format!("/api/orgs/acme/bulk-jobs/{id}/items"),
            None,
        )
        .await;
    let by_node: std::collections::BTreeMap<&str, (&str, &str)> = items["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["node_id"].as_str().unwrap(),
                (
                    i["state"].as_str().unwrap(),
                    i["detail"].as_str().unwrap_or(""),
                ),
            )
        })
        .collect();
    assert_eq!(
        by_node["globex-000001"],
        ("skipped", "no such node in this org")
    );
    assert_eq!(by_node["nosuch"], ("skipped", "no such node in this org"));
    assert_eq!(by_node["acme-000001"].0, "succeeded");
    assert_eq!(
        stack.node_status("acme-000001").await.as_deref(),
        Some("decommissioned")
    );
    assert_eq!(
        stack.node_status("acme-000003").await.as_deref(),
        Some("online")
    );
    assert_eq!(
        stack
            .count(
                "SELECT count(*) FROM nodes WHERE org_id = 'globex' AND status = 'decommissioned'"
            )
            .await,
        0,
        "another org's node is never acted on"
    );
    assert_eq!(
        stack
            .count("SELECT count(*) FROM org_revocations WHERE public_key IN ('UBULKacme1', 'UBULKacme2')")
            .await,
        2,
        "the decommissioned nodes' keys are revoked"
    );
    assert_eq!(
        stack
            .count("SELECT count(*) FROM org_revocations WHERE org_id = 'globex'")
            .await,
        0
    );

    // Decommissioning again skips them: nothing to do, nothing done twice.
    let (_, again) = post(
        &stack,
        "/api/orgs/acme/bulk-jobs",
        json!({ "action": "decommission", "selection": { "ids": ["acme-000001"] } }),
    )
    .await;
    let again = finished(
        &stack,
        "acme",
        again["id"].as_str().unwrap(),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        (&again["skipped"], &again["succeeded"]),
        (&json!(1), &json!(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_cannot_run_jobs_and_other_orgs_cannot_see_them() {
    let stack = TestStack::start_with(|c| c.dev_header_auth = true)
        .await
        .unwrap();
    stack.create_org("acme").await;
    stack.create_org("globex").await;
    insert_nodes(&stack, "acme", 5).await;
    let request = json!({ "action": "decommission", "selection": { "filter": {} } });
    for path in [
        "/api/orgs/acme/bulk-jobs/preview",
        "/api/orgs/acme/bulk-jobs",
    ] {
        let (status, body) = as_person(
            &stack,
            "acme",
            "viewer",
            Method::POST,
            path,
            Some(request.clone()),
        )
        .await;
        assert_eq!(status, 403, "{path}: {body}");
        let (status, body) = as_person(
            &stack,
            "acme",
            "support",
            Method::POST,
            path,
            Some(request.clone()),
        )
        .await;
        assert_eq!(status, 403, "{path}: {body}");
        let (status, _) = as_person(
            &stack,
            "globex",
            "org_owner",
            Method::POST,
            path,
            Some(request.clone()),
        )
        .await;
        assert_eq!(status, 404, "another org's owner: {path}");
    }
    assert_eq!(stack.count("SELECT count(*) FROM bulk_jobs").await, 0);
    assert_eq!(
        stack
            .count("SELECT count(*) FROM nodes WHERE status = 'decommissioned'")
            .await,
        0
    );
    // A node admin may; a viewer may follow it; another org may not.
    let (status, job) = as_person(
        &stack,
        "acme",
        "node_admin",
        Method::POST,
        "/api/orgs/acme/bulk-jobs",
        Some(json!({ "action": "add_labels", "params": { "labels": { "a": "b" } }, "selection": { "filter": {} } })),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    let path = format!("/api/orgs/acme/bulk-jobs/{}", job["id"].as_str().unwrap());
    let (status, _) = as_person(&stack, "acme", "viewer", Method::GET, &path, None).await;
    assert_eq!(status, 200);
    let (status, _) = as_person(&stack, "globex", "org_owner", Method::GET, &path, None).await;
    assert_eq!(status, 404);
    let (status, _) = as_person(
        &stack,
        "globex",
        "org_owner",
        Method::GET,
        &path.replace("/acme/", "/globex/"),
        None,
    )
    .await;
    assert_eq!(status, 404, "a job is found only under its own org");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_400_that_changes_nothing() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    insert_nodes(&stack, "acme", 3).await;
    let too_many: Vec<String> = (0..10_001).map(|i| format!("n-{i}")).collect();
    let cases = [
        (
            json!({ "action": "reboot", "selection": { "ids": ["acme-000001"] } }),
            "action must be",
        ),
        (
            json!({ "action": "decommission", "selection": {} }),
            "exactly one of ids or filter",
        ),
        (
            json!({ "action": "decommission", "selection": { "ids": ["acme-000001"], "filter": {} } }),
            "exactly one of ids or filter",
        ),
        (
            json!({ "action": "decommission", "selection": { "ids": [] } }),
            "empty",
        ),
        (
            json!({ "action": "decommission", "selection": { "ids": too_many } }),
            "at most 10000",
        ),
        (
            json!({ "action": "decommission", "selection": { "ids": ["Not An Id"] } }),
            "not a node id",
        ),
        (
            json!({ "action": "decommission", "selection": { "filter": { "status": "sleepy" } } }),
            "unknown status",
        ),
        (
            json!({ "action": "decommission", "selection": { "filter": { "sort": "name" } } }),
            "unknown field",
        ),
        (
            json!({ "action": "decommission", "params": { "force": true }, "selection": { "filter": {} } }),
            "params of decommission",
        ),
        (
            json!({ "action": "add_labels", "params": { "labels": { "bad key": "x" } }, "selection": { "filter": {} } }),
            "labels (key)",
        ),
        (
            json!({ "action": "remove_labels", "params": { "keys": [] }, "selection": { "filter": {} } }),
            "params.keys",
        ),
        (
            json!({ "action": "assign_rulepack", "params": { "rulepack": "nosuch", "mode": "enforce" }, "selection": { "filter": {} } }),
            "does not exist",
        ),
        (
            json!({ "action": "assign_rulepack", "params": { "rulepack": "x", "mode": "maybe" }, "selection": { "filter": {} } }),
            "observe or enforce",
        ),
        (
            json!({ "action": "decommission", "selection": { "filter": {} }, "idempotency_key": "" }),
            "idempotency_key",
        ),
        (
            json!({ "action": "decommission", "selection": { "filter": {} }, "extra": 1 }),
            "unknown field",
        ),
    ];
    for (body, needle) in cases {
        for path in [
            "/api/orgs/acme/bulk-jobs/preview",
            "/api/orgs/acme/bulk-jobs",
        ] {
            let (status, err) = post(&stack, path, body.clone()).await;
            assert_eq!(status, 400, "{path} {body}: {err}");
            assert_eq!(err["error"], "invalid_request");
            let message = err["message"].as_str().unwrap();
            assert!(message.contains(needle), "{needle:?} not in {message:?}");
        }
    }
    let (status, _) = stack
        .api(Method::GET, "/api/orgs/acme/bulk-jobs/not-a-uuid", None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = stack
        .api(
            Method::GET,
            "/api/orgs/acme/bulk-jobs/00000000-0000-0000-0000-000000000000/items",
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(stack.count("SELECT count(*) FROM bulk_jobs").await, 0);
    assert_eq!(stack.count("SELECT count(*) FROM bulk_job_items").await, 0);
    assert_eq!(
        stack
            .count("SELECT count(*) FROM audit_log WHERE action LIKE 'bulk_job.%'")
            .await,
        0
    );
    assert_eq!(
        stack
            .count("SELECT count(*) FROM nodes WHERE status = 'decommissioned'")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_cannot_flood_jobs_and_a_key_makes_a_request_idempotent() {
    let stack = TestStack::start_with(|c| {
        c.bulk.active_per_org = 1;
        c.bulk.page_size = 10;
        c.bulk.page_pause_ms = 100;
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    stack.create_org("globex").await;
    insert_nodes(&stack, "acme", 200).await;
    insert_nodes(&stack, "globex", 10).await;
    let labels = |key: &str| {
        json!({
            "action": "add_labels", "params": { "labels": { "wave": "1" } },
            "selection": { "filter": {} }, "idempotency_key": key,
        })
    };
    let (status, first) = post(&stack, "/api/orgs/acme/bulk-jobs", labels("wave-1")).await;
    assert_eq!(status, 201, "{first}");
    // The same request again (a retried click): the same job, not a second.
    let (status, again) = post(&stack, "/api/orgs/acme/bulk-jobs", labels("wave-1")).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], first["id"]);
    let (status, conflict) = post(
        &stack,
        "/api/orgs/acme/bulk-jobs",
        json!({ "action": "decommission", "selection": { "filter": {} }, "idempotency_key": "wave-1" }),
    )
    .await;
    assert_eq!(status, 409, "{conflict}");
    // Another job while one runs: refused, with a delay to retry after.
    let resp = stack
        .http
        .post(format!("{}/api/orgs/acme/bulk-jobs", stack.api_url()))
        .bearer_auth(ADMIN_TOKEN)
        .json(&labels("wave-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"], "too_many_jobs", "{err}");
    // Another org is not held up by acme's job.
    let (status, other) = post(&stack, "/api/orgs/globex/bulk-jobs", labels("wave-1")).await;
    assert_eq!(status, 201, "{other}");
    assert_ne!(other["id"], first["id"], "keys are per org");
    assert_eq!(
        stack
            .count("SELECT count(*) FROM bulk_jobs WHERE org_id = 'acme'")
            .await,
        1
    );
    let done = finished(
        &stack,
        "acme",
        first["id"].as_str().unwrap(),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(done["succeeded"], 200, "{done}");
    let (status, next) = post(&stack, "/api/orgs/acme/bulk-jobs", labels("wave-2")).await;
    assert_eq!(status, 201, "once it ended, the next is accepted: {next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_resumes_after_a_controller_restart_and_acts_on_each_node_once() {
    let tune = |c: &mut ritma_controller::Config| {
        c.bulk.page_size = 25;
        c.bulk.page_pause_ms = 150;
        c.bulk.lease_secs = 2;
    };
    let mut stack = TestStack::start_with(tune).await.unwrap();
    stack.create_org("acme").await;
    insert_nodes(&stack, "acme", 1_000).await;
    let (status, pack) = post(
        &stack,
        "/api/orgs/acme/rulepacks",
        json!({ "name": "baseline", "rules": { "deny": ["ptrace"] } }),
    )
    .await;
    assert_eq!(status, 201, "{pack}");
    let (status, job) = post(
        &stack,
        "/api/orgs/acme/bulk-jobs",
        json!({
            "action": "assign_rulepack", "params": { "rulepack": "baseline", "mode": "enforce" },
            "selection": { "filter": { "tenant": "prod" } },
        }),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["total"], 500);
    let id = job["id"].as_str().unwrap().to_owned();
    stack
        .eventually("the job under way", Duration::from_secs(30), || async {
            let (_, j) = stack
                .api(Method::GET, &format!("/api/orgs/acme/bulk-jobs/{id}"), None)
                .await;
            (j["succeeded"].as_i64().unwrap_or(0) >= 50).then_some(())
        })
        .await;
    // A crash: nothing in flight is finished, the lease is not given back.
    stack.controller.take().unwrap().kill().await;
    let partial = stack
        .count(&format!(
            "SELECT count(*) FROM bulk_job_items WHERE job_id = '{id}' AND state = 'succeeded'"
        ))
        .await;
    assert!(partial > 0 && partial < 500, "stopped part way: {partial}");
    stack.controller = Some(stack.start_controller(&tune).await.unwrap());
    let job = finished(&stack, "acme", &id, Duration::from_secs(120)).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(
        (
            &job["total"],
            &job["succeeded"],
            &job["failed"],
            &job["skipped"]
        ),
        (&json!(500), &json!(500), &json!(0), &json!(0)),
        "each node counted once"
    );
    assert_eq!(
        stack
            .count("SELECT count(*) FROM nodes WHERE policy_assigned = 'baseline@1' AND tenant_id = 'prod'")
            .await,
        500
    );
    assert_eq!(
        stack
            .count(
                "SELECT count(*) FROM nodes WHERE policy_assigned IS NOT NULL AND tenant_id = 'dev'"
            )
            .await,
        0
    );
    assert_eq!(
        stack
            .count("SELECT count(*) FROM policy_assignments WHERE scope_kind = 'node' AND rulepack = 'baseline'")
            .await,
        500,
        "one node assignment per node, however often a page ran"
    );
    assert_eq!(
        stack
            .count(&format!(
                "SELECT count(*) FROM audit_log WHERE action = 'bulk_job.finish' AND target = '{id}'"
            ))
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_reaches_the_consoles_bus_credential_with_the_final_state() {
    let stack = TestStack::start_with(|c| {
        c.console_service_token = Some(CONSOLE_TOKEN.into());
        c.bulk.page_size = 20;
        c.bulk.page_pause_ms = 300;
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    insert_nodes(&stack, "acme", 100).await;
    let key = nkeys::KeyPair::new_user();
    let resp = stack
        .http
        .post(format!("{}/api/console/bus-credential", stack.api_url()))
        .bearer_auth(CONSOLE_TOKEN)
        .json(&json!({ "public_key": key.public_key() }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let cred: Value = resp.json().await.unwrap();
    let console = BusUser::connect(&stack.nats.url, cred["jwt"].as_str().unwrap(), key, None)
        .await
        .unwrap();
    let mut progress = console.client.subscribe("ritma.*.jobs").await.unwrap();
    console.client.flush().await.unwrap();

    let (status, job) = post(
        &stack,
        "/api/orgs/acme/bulk-jobs",
        json!({ "action": "remove_labels", "params": { "keys": ["rack"] }, "selection": { "filter": {} } }),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    let mut seen = vec![];
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), progress.next())
            .await
            .expect("job progress reaches the console")
            .unwrap();
        assert_eq!(msg.subject.as_str(), "ritma.acme.jobs");
        let v: Value = serde_json::from_slice(&msg.payload).unwrap();
        assert_eq!(v["job_id"], job["id"]);
        assert_eq!(v["org_id"], "acme");
        seen.push(v["succeeded"].as_i64().unwrap());
        if v["state"] == "done" {
            assert_eq!(
                (&v["total"], &v["succeeded"]),
                (&json!(100), &json!(100)),
                "{v}"
            );
            break;
        }
        assert_eq!(v["state"], "running", "{v}");
    }
    assert!(seen.len() >= 3, "progress while it ran: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert_eq!(
        stack
            .count("SELECT count(*) FROM nodes WHERE labels ? 'rack'")
            .await,
        0
    );
}
