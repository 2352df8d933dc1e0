//! Exports: the inventory, the audit trail and usage as CSV and JSON,
//! streamed page by page (100,000 nodes), filtered like the node list,
//! with spreadsheet formulas in node-supplied values defused, and only for
//! the org's own people.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use ritma_tests::bulk::insert_nodes;
use ritma_tests::*;
use serde_json::Value;

async fn get_text(stack: &TestStack, path: &str) -> (u16, String, String) {
    let r = stack
        .http
        .get(format!("{}{path}", stack.api_url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let disposition = r
        .headers()
        .get("content-disposition")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, disposition, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_nodes_export_as_csv_and_json_with_the_lists_filters() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    stack.create_org("globex").await;
    insert_nodes(&stack, "acme", 100_000).await;
    insert_nodes(&stack, "globex", 10).await;
    // A host name chosen by a (compromised) node, made to run in a spreadsheet.
    sqlx::query(
        "UPDATE nodes SET hostname = '=HYPERLINK(\"http://evil\",\"x\")' WHERE id = 'acme-000001'",
    )
    .execute(&stack.pool)
    .await
    .unwrap();

    let (status, disposition, csv) = get_text(&stack, "/api/orgs/acme/exports/nodes").await;
    assert_eq!(status, 200);
    assert!(disposition.contains("acme-nodes.csv"), "{disposition}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 100_001, "a header and one line per node");
    assert!(lines[0].starts_with("id,tenant_id,hostname,status"));
    assert!(
        lines[1].starts_with("acme-000001,dev,\"'=HYPERLINK("),
        "{}",
        lines[1]
    );
    assert!(lines[100_000].starts_with("acme-100000,"));
    assert!(!csv.contains("UBULKglobex"));

    let (status, _, body) = get_text(
        &stack,
        "/api/orgs/acme/exports/nodes?format=json&status=offline&tenant=prod",
    )
    .await;
    assert_eq!(status, 200);
    let rows: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(rows.len(), 10_000);
    assert!(
        rows.iter()
            .all(|r| r["status"] == "offline" && r["tenant_id"] == "prod")
    );
    let (_, _, body) = get_text(
        &stack,
        "/api/orgs/acme/exports/nodes?format=json&label=rack=r3",
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&body).unwrap().len(),
        10_000
    );
    let (_, _, body) = get_text(
        &stack,
        "/api/orgs/globex/exports/nodes?format=json&status=gone",
    )
    .await;
    assert!(body.contains("unknown status"), "{body}");

    let (status, _, body) = get_text(&stack, "/api/orgs/acme/exports/nodes?format=xml").await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_and_usage_export_for_their_readers_only() {
    let stack = TestStack::start_with(|c| c.dev_header_auth = true)
        .await
        .unwrap();
    stack.create_org("acme").await;
    // More entries than one page of the export.
    for _ in 0..1_050 {
        stack.create_token("acme", "prod", 1).await;
    }
    let (status, _, csv) = get_text(&stack, "/api/orgs/acme/exports/audit").await;
    assert_eq!(status, 200);
    let audited = stack
        .count("SELECT count(*) FROM audit_log WHERE org_id = 'acme'")
        .await;
    assert!(audited > 1_050);
    assert_eq!(
        csv.lines().count() as i64,
        audited + 1,
        "every entry, across pages"
    );
    let (_, _, json) = get_text(
        &stack,
        "/api/orgs/acme/exports/audit?format=json&action=org.create",
    )
    .await;
    let rows: Vec<Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["action"], "org.create");

    sqlx::query(
        "INSERT INTO usage_hourly (org_id, tenant_id, hour, decisions, storage_bytes)
         VALUES ('acme', 'prod', date_trunc('month', now()) + interval '1 hour', 5, 1024),
                ('acme', 'prod', date_trunc('month', now()) + interval '2 hour', 7, 0),
                ('acme', 'dev', date_trunc('month', now()) + interval '1 day', 1, 0)",
    )
    .execute(&stack.pool)
    .await
    .unwrap();
    let (status, disposition, csv) = get_text(&stack, "/api/orgs/acme/exports/usage").await;
    assert_eq!(status, 200, "{csv}");
    assert!(disposition.contains("acme-usage-"), "{disposition}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[1].ends_with(",prod,12,0,1024,0"), "{csv}");
    let (status, _, _) = get_text(&stack, "/api/orgs/acme/exports/usage?period=2026-13").await;
    assert_eq!(status, 400);

    // A viewer may export the inventory but not the audit trail; another org nothing.
    let as_user = |org: &str, roles: &str, path: &str| {
        stack
            .http
            .get(format!("{}{path}", stack.api_url()))
            .header("x-user-id", "u")
            .header("x-org-id", org.to_owned())
            .header("x-roles", roles.to_owned())
    };
    let r = as_user("acme", "viewer", "/api/orgs/acme/exports/audit")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = as_user("acme", "viewer", "/api/orgs/acme/exports/nodes")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    for path in [
        "/api/orgs/acme/exports/nodes",
        "/api/orgs/acme/exports/audit",
        "/api/orgs/acme/exports/usage",
    ] {
        let r = as_user("globex", "org_owner", path).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }
}
