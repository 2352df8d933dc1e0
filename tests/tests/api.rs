//! The REST API: authentication, and the inventory's filters and pages.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use reqwest::Method;
use ritma_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_requires_the_token() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    for (method, path) in [
        (Method::GET, "/api/orgs"),
        (Method::POST, "/api/orgs"),
        (Method::GET, "/api/orgs/acme/nodes"),
        (Method::GET, "/api/orgs/acme/nodes/x"),
        (Method::POST, "/api/orgs/acme/nodes/x/decommission"),
        (Method::GET, "/api/orgs/acme/enrollment-tokens"),
        (Method::POST, "/api/orgs/acme/enrollment-tokens"),
        (Method::POST, "/api/orgs/acme/integrator-credentials"),
        (Method::GET, "/api/orgs/acme/integrator-credentials"),
        (Method::DELETE, "/api/orgs/acme/integrator-credentials/UABC"),
        (Method::GET, "/api/orgs/acme/audit"),
        (Method::GET, "/api/orgs/acme/roles"),
        (Method::POST, "/api/orgs/acme/roles"),
        (Method::DELETE, "/api/orgs/acme/roles/x/viewer"),
        (Method::GET, "/api/orgs/acme/nodes/summary"),
        (Method::GET, "/api/me"),
    ] {
        for auth in [None, Some("wrong-token-wrong-token")] {
            let mut req = stack
                .http
                .request(method.clone(), format!("{}{path}", stack.api_url()));
            if let Some(t) = auth {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status().as_u16(), 401, "{method} {path} with {auth:?}");
        }
    }
    let r = stack
        .http
        .get(format!("{}/healthz", stack.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = stack
        .http
        .get(format!("{}/readyz", stack.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_lists_count_up_to_the_cap_and_summary_counts_exactly() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    // 10,050 nodes (50 of them in tenant "small"), straight into the table.
    sqlx::query(
        "INSERT INTO nodes (id, org_id, tenant_id, public_key, hostname, labels, status, interval_secs)
         SELECT 'n-' || i, 'acme', CASE WHEN i <= 50 THEN 'small' ELSE 'big' END,
                'UKEY' || i, 'host-' || i, '{}'::jsonb, 'unseen', 10
         FROM generate_series(1, 10050) i",
    )
    .execute(&stack.pool)
    .await
    .unwrap();
    let (status, page) = stack
        .api(Method::GET, "/api/orgs/acme/nodes?limit=5", None)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["total"], 10_000, "counted up to the cap");
    assert_eq!(page["total_exact"], false);
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    let (_, page) = stack
        .api(
            Method::GET,
            "/api/orgs/acme/nodes?tenant=small&limit=5",
            None,
        )
        .await;
    assert_eq!(page["total"], 50);
    assert_eq!(page["total_exact"], true);
    // The same text filter many times (past the point where PostgreSQL would
    // switch a prepared statement to a generic plan) still answers right.
    for _ in 0..8 {
        let (_, page) = stack
            .api(Method::GET, "/api/orgs/acme/nodes?q=host-1005", None)
            .await;
        assert_eq!(page["total"], 2, "host-1005 and host-10050: {page}");
    }
    let (_, summary) = stack
        .api(Method::GET, "/api/orgs/acme/nodes/summary", None)
        .await;
    assert_eq!(summary["total"], 10_050, "exact");

    // The summary is summed from the deltas each write appends: it stays
    // exact through updates, deletes, another org's writes and the fold.
    stack.create_org("other").await;
    for sql in [
        "UPDATE nodes SET status = 'online' WHERE tenant_id = 'small'",
        "UPDATE nodes SET drifted = true WHERE id IN ('n-1', 'n-2', 'n-3')",
        "UPDATE nodes SET key_warning = 'revoked' WHERE id IN ('n-3', 'n-4')",
        "UPDATE nodes SET labels = '{\"a\": \"b\"}' WHERE id = 'n-5'",
        "DELETE FROM nodes WHERE id IN ('n-4', 'n-60')",
        "INSERT INTO nodes (id, org_id, tenant_id, public_key, hostname, status)
         SELECT 'o-' || i, 'other', 't', 'UOTHER' || i, 'h', 'online' FROM generate_series(1, 7) i",
        "UPDATE nodes SET flapping_since = now() WHERE id = 'n-2'",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&stack.pool)
            .await
            .unwrap();
    }
    let expect = |summary: &serde_json::Value| {
        assert_eq!(summary["total"], 10_048, "{summary}");
        assert_eq!(summary["by_status"]["online"], 48, "{summary}");
        assert_eq!(summary["by_status"]["flapping"], 1, "{summary}");
        assert_eq!(summary["by_status"]["unseen"], 9_999, "{summary}");
        assert_eq!(summary["drifted"], 3, "{summary}");
        assert_eq!(summary["key_warnings"], 1, "{summary}");
    };
    let (_, summary) = stack
        .api(Method::GET, "/api/orgs/acme/nodes/summary", None)
        .await;
    expect(&summary);
    ritma_db::nodes::node_counts_fold(&stack.pool)
        .await
        .unwrap();
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM node_count_deltas WHERE org_id = 'acme'")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert!(
        rows <= 5,
        "one row per non-zero bucket after the fold: {rows}"
    );
    let (_, summary) = stack
        .api(Method::GET, "/api/orgs/acme/nodes/summary", None)
        .await;
    expect(&summary);
    let (_, other) = stack
        .api(Method::GET, "/api/orgs/other/nodes/summary", None)
        .await;
    assert_eq!(other["total"], 7, "{other}");
    assert_eq!(other["by_status"]["online"], 7, "{other}");
}

/// Every page of `/api/orgs/acme/nodes?{query}`, following the cursors: the
/// ids in order, and the totals each page reported.
async fn node_pages(stack: &TestStack, query: &str) -> (Vec<String>, Vec<(i64, bool)>) {
    let (mut ids, mut totals) = (Vec::new(), Vec::new());
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/orgs/acme/nodes?{query}&cursor={c}"),
            None => format!("/api/orgs/acme/nodes?{query}"),
        };
        let (status, page) = stack.api(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}: {page}");
        for item in page["items"].as_array().unwrap() {
            ids.push(item["id"].as_str().unwrap().to_owned());
        }
        totals.push((
            page["total"].as_i64().unwrap(),
            page["total_exact"].as_bool().unwrap(),
        ));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (ids, totals),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrow_filters_page_among_their_few_matches_in_every_order() {
    // A narrowing filter with at most NODE_LIST_FEW matches takes its page
    // from their ids; with more it walks the sort order. Both answer the
    // same pages, with exact totals, and nothing for a combination that
    // matches no node.
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    stack.create_org("other").await;
    let few = ritma_db::nodes::NODE_LIST_FEW;
    sqlx::query(
        "INSERT INTO nodes (id, org_id, tenant_id, public_key, hostname, labels, status, interval_secs)
         SELECT 'n-' || lpad(i::text, 5, '0'), 'acme', CASE WHEN i <= $1 + 1 THEN 'edge' ELSE 'core' END,
                'UKEY' || i, 'host-' || i, jsonb_build_object('rack', 'r' || (i % 3)),
                CASE WHEN i % 2 = 1 THEN 'online' ELSE 'offline' END, 10
         FROM generate_series(1, 3000) i",
    )
    .bind(few)
    .execute(&stack.pool)
    .await
    .unwrap();
    // Last seen in runs of four equal times, so the id breaks ties.
    sqlx::query(
        "UPDATE node_liveness SET last_seen_at = now() - (substr(node_id, 3)::int / 4) * interval '1 second'",
    )
    .execute(&stack.pool)
    .await
    .unwrap();
    // Another org's node matching the same filters is never listed.
    sqlx::query(
        "INSERT INTO nodes (id, org_id, tenant_id, public_key, hostname, labels, status)
         VALUES ('o-00003', 'other', 'edge', 'UOTHER', 'h', '{\"rack\": \"r1\"}', 'online')",
    )
    .execute(&stack.pool)
    .await
    .unwrap();

    let expected = |filter: &'static str, order: &'static str| {
        let pool = stack.pool.clone();
        async move {
            let sql = format!(
                "SELECT n.id FROM nodes n JOIN node_liveness l ON l.node_id = n.id
                 WHERE n.org_id = 'acme' AND {filter} ORDER BY {order}"
            );
            sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
                .fetch_all(&pool)
                .await
                .unwrap()
        }
    };
    let edge_online_r1 =
        "tenant_id = 'edge' AND status = 'online' AND labels @> '{\"rack\": \"r1\"}'";
    for (sort, order) in [
        ("", "n.id"),
        ("&order=desc", "n.id DESC"),
        ("&sort=status", "n.status, n.id"),
        (
            "&sort=last_seen&order=desc",
            "l.last_seen_at DESC, n.id DESC",
        ),
        ("&sort=last_seen", "l.last_seen_at, n.id"),
    ] {
        let (ids, totals) = node_pages(
            &stack,
            &format!("tenant=edge&status=online&label=rack%3Dr1&limit=40{sort}"),
        )
        .await;
        let want = expected(edge_online_r1, order).await;
        assert!(
            want.len() > 40 && (want.len() as i64) < few,
            "{}",
            want.len()
        );
        assert_eq!(ids, want, "few matches, {sort}");
        assert!(
            totals.iter().all(|t| *t == (want.len() as i64, true)),
            "{sort}: {totals:?}"
        );
        // More matches than NODE_LIST_FEW: the same order, walked.
        let (ids, totals) = node_pages(&stack, &format!("tenant=edge&limit=400{sort}")).await;
        let want = expected("tenant_id = 'edge'", order).await;
        assert_eq!(want.len() as i64, few + 1);
        assert_eq!(ids, want, "many matches, {sort}");
        assert!(totals.iter().all(|t| *t == (few + 1, true)), "{totals:?}");
    }
    // No filter, statuses alone, drift alone, key warnings alone: counted
    // from the org's count deltas, exact, and paged in order.
    sqlx::query(
        "UPDATE nodes SET drifted = true, key_warning = CASE WHEN id < 'n-00100' THEN 'revoked' END
         WHERE id < 'n-00500'",
    )
    .execute(&stack.pool)
    .await
    .unwrap();
    for (query, filter) in [
        ("limit=500", "true"),
        ("status=online&limit=500", "status = 'online'"),
        ("status=offline,online&limit=500", "true"),
        ("status=degraded&limit=500", "status = 'degraded'"),
        ("drifted=true&limit=300", "drifted"),
        ("key_warning=true&limit=300", "key_warning IS NOT NULL"),
    ] {
        let (ids, totals) = node_pages(&stack, query).await;
        let want = expected(filter, "n.id").await;
        assert_eq!(ids, want, "{query}");
        assert!(
            totals.iter().all(|t| *t == (want.len() as i64, true)),
            "{query}: {totals:?} for {}",
            want.len()
        );
    }
    // A combination matching nothing (each filter matches many).
    let (ids, totals) = node_pages(&stack, "tenant=core&status=online&label=rack%3Dr9").await;
    assert!(ids.is_empty());
    assert_eq!(totals, vec![(0, true)]);
    // Exactly NODE_LIST_FEW matches is still the few path's exact count.
    sqlx::query("UPDATE nodes SET tenant_id = 'core' WHERE id = 'n-00001'")
        .execute(&stack.pool)
        .await
        .unwrap();
    let (ids, totals) = node_pages(&stack, "tenant=edge&limit=500").await;
    assert_eq!(ids.len() as i64, few);
    assert!(totals.iter().all(|t| *t == (few, true)), "{totals:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_index_follows_every_write_to_nodes() {
    // The list filters and sorts by status from `node_statuses` (no index
    // of `nodes` names a status column, so a status change is heap-only):
    // inserts, status changes, flapping, a move to another org and a delete
    // must each leave it equal to `nodes`, and the list must follow.
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    stack.create_org("other").await;
    let pool = &stack.pool;
    let agree = || async {
        let differ: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (
                 (SELECT id, org_id, shown_status FROM nodes
                  EXCEPT SELECT node_id, org_id, shown_status FROM node_statuses)
                 UNION ALL
                 (SELECT node_id, org_id, shown_status FROM node_statuses
                  EXCEPT SELECT id, org_id, shown_status FROM nodes)) d",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(differ, 0, "node_statuses differs from nodes");
    };
    let run = |sql: &'static str| async move {
        sqlx::query(sql).execute(pool).await.unwrap();
    };
    run(
        "INSERT INTO nodes (id, org_id, tenant_id, public_key, hostname, status)
         SELECT 'n-' || i, 'acme', 't', 'UKEY' || i, 'h' || i,
                (ARRAY['online','degraded','offline'])[1 + i % 3]
         FROM generate_series(1, 30) i",
    )
    .await;
    agree().await;
    run("UPDATE nodes SET status = 'stale' WHERE id IN ('n-1', 'n-2', 'n-3')").await;
    run("UPDATE nodes SET flapping_since = now() WHERE id = 'n-4'").await;
    run("UPDATE nodes SET org_id = 'other' WHERE id = 'n-5'").await;
    run("DELETE FROM nodes WHERE id = 'n-6'").await;
    agree().await;

    let stack = &stack;
    let listed = |query: &'static str| async move {
        let (status, page) = stack.api(Method::GET, query, None).await;
        assert_eq!(status, 200, "{query}: {page}");
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                format!(
                    "{}={}",
                    n["id"].as_str().unwrap(),
                    n["status"].as_str().unwrap()
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listed("/api/orgs/acme/nodes?status=stale,flapping").await,
        ["n-1=stale", "n-2=stale", "n-3=stale", "n-4=flapping"]
    );
    // The moved node is listed in its new org only, with its status.
    assert_eq!(
        listed("/api/orgs/other/nodes?status=offline").await,
        ["n-5=offline"]
    );
    let acme_offline = listed("/api/orgs/acme/nodes?status=offline&limit=100").await;
    assert_eq!(acme_offline.len(), 8, "{acme_offline:?}");
    assert!(!acme_offline.contains(&"n-5=offline".to_owned()));
    // Sorted by status, descending: the status order, ids within it.
    let by_status = listed("/api/orgs/acme/nodes?sort=status&order=desc&limit=100").await;
    let want: Vec<String> = sqlx::query_scalar(
        "SELECT id || '=' || shown_status FROM nodes WHERE org_id = 'acme'
         ORDER BY shown_status DESC, id DESC",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(by_status, want);
    assert_eq!(want.len(), 28);

    // No index of `nodes` (key or predicate) names a column a status
    // change sets: each one would make every status change rewrite all of
    // the row's index entries.
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'nodes'
           AND indexdef ~ '(status|last_flip_at)'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(indexes.is_empty(), "{indexes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_filters_sorts_and_pages() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    for (tenant, n) in [("prod", 7), ("dev", 5)] {
        let token = stack.create_token("acme", tenant, 100).await;
        for i in 0..n {
            let (status, body, _) = stack.enroll_raw(&token, &format!("{tenant}-{i:02}")).await;
            assert_eq!(status, 200, "{body}");
        }
    }
    let (_, page) = stack
        .api(Method::GET, "/api/orgs/acme/nodes?tenant=prod", None)
        .await;
    assert_eq!(page["total"], 7);
    let (_, page) = stack
        .api(Method::GET, "/api/orgs/acme/nodes?q=dev-0", None)
        .await;
    assert_eq!(page["total"], 5);
    let (_, page) = stack
        .api(Method::GET, "/api/orgs/acme/nodes?status=online", None)
        .await;
    assert_eq!(page["total"], 0);
    let (_, page) = stack
        .api(Method::GET, "/api/orgs/acme/nodes?status=unseen", None)
        .await;
    assert_eq!(page["total"], 12);
    let (status, err) = stack
        .api(Method::GET, "/api/orgs/acme/nodes?status=bogus", None)
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, _) = stack
        .api(Method::GET, "/api/orgs/acme/nodes?cursor=%%%", None)
        .await;
    assert_eq!(status, 400);

    // Walk all pages of 5, descending by name: every node once, in order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/orgs/acme/nodes?limit=5&order=desc&cursor={c}"),
            None => "/api/orgs/acme/nodes?limit=5&order=desc".into(),
        };
        let (status, page) = stack.api(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{page}");
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut expected = seen.clone();
    expected.sort();
    expected.reverse();
    expected.dedup();
    assert_eq!(seen, expected);
    assert_eq!(seen.len(), 12);

    // Labels from the token are filterable; another org's node is a 404.
    let (status, _) = stack
        .api(Method::GET, "/api/orgs/acme/nodes/prod-00", None)
        .await;
    assert_eq!(status, 200);
    stack.create_org("globex").await;
    let (status, _) = stack
        .api(Method::GET, "/api/orgs/globex/nodes/prod-00", None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_the_router() {
    use ritma_controller::api::{Access, routes};
    // The document's paths are generated from the operation table
    // (`crates/api` checks that drift); the table must match the router:
    // every path, its methods and who may call them.
    let access_of = |access: Access| match access {
        Access::Public | Access::Node => "public",
        Access::Admin => "principal",
        Access::Console => "console",
        Access::Metrics => "metrics",
    };
    let mut doc: std::collections::BTreeMap<String, std::collections::BTreeMap<&str, &str>> =
        std::collections::BTreeMap::new();
    for op in ritma_api::routes::operations() {
        let access = match op.access {
            ritma_api::endpoint::Access::Public => "public",
            ritma_api::endpoint::Access::Principal => "principal",
            ritma_api::endpoint::Access::ConsoleService => "console",
            ritma_api::endpoint::Access::MetricsToken => "metrics",
        };
        doc.entry(op.path.to_string())
            .or_default()
            .insert(op.method.as_str(), access);
    }
    let router: std::collections::BTreeMap<String, &str> = routes()
        .into_iter()
        .map(|(access, path, _)| (path.to_string(), access_of(access)))
        .collect();
    assert_eq!(
        doc.keys().collect::<Vec<_>>(),
        router.keys().collect::<Vec<_>>(),
        "every route is in the operation table (and openapi.yaml) and nothing else is"
    );
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    // Query-string and path rejections answer in the API's error format too
    // (they were axum's plain text; found by tests/api-fuzz.sh).
    for path in [
        "/api/orgs/acme/nodes?sort=name&sort=id",
        "/api/orgs/acme/nodes?limit=many",
        "/api/orgs/%FF/nodes",
    ] {
        let (status, body) = stack.api(Method::GET, path, None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"], "invalid_request", "{path}: {body}");
    }
    // Granting a role in an org that does not exist: 404, not a 503 from a
    // foreign-key failure (found by tests/api-fuzz.sh).
    let (status, body) = stack
        .api(
            Method::POST,
            "/api/orgs/nosuch/roles",
            Some(serde_json::json!({ "subject": "someone", "role": "org_admin" })),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    // The same for every write that names an org (the database's foreign
    // key refused them, answered as an outage; found by the API fuzzing),
    // and text the database cannot store is the client's error.
    for (method, path, body) in [
        (
            Method::POST,
            "/api/orgs/nosuch/keys",
            serde_json::json!({ "key_id": "k-1" }),
        ),
        (
            Method::POST,
            "/api/orgs/nosuch/silences",
            serde_json::json!({ "duration_secs": 60, "comment": "x", "event": "node_offline" }),
        ),
        (
            Method::PUT,
            "/api/orgs/nosuch/connector-allow-list",
            serde_json::json!({ "env_prefixes": [], "endpoints": [], "secret_dirs": [] }),
        ),
        (
            Method::POST,
            "/api/orgs/nosuch/rulepacks",
            serde_json::json!({ "name": "p", "rules": {} }),
        ),
    ] {
        let (status, answer) = stack.api(method.clone(), path, Some(body)).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
        assert_eq!(answer["error"], "not_found", "{method} {path}: {answer}");
    }
    for path in [
        "/api/orgs/acme/audit?action=a%00b",
        // Refused before the streamed answer begins (it broke mid-stream).
        "/api/orgs/acme/exports/audit?target=%00x",
    ] {
        let (status, answer) = stack.api(Method::GET, path, None).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert!(
            answer["message"]
                .as_str()
                .is_some_and(|m| m.contains("NUL")),
            "{path}: {answer}"
        );
    }
    let (status, answer) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/keys",
            Some(serde_json::json!({ "key_id": "k-1", "label": "a\u{0}b" })),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    for (path, methods) in &doc {
        let access = router[path];
        for (method, documented) in methods {
            assert_eq!(
                *documented, access,
                "{method} {path}: documented security differs from the router"
            );
        }
        let url = format!(
            "{}{}",
            stack.api_url(),
            path.replace("{org}", "acme")
                .split('/')
                .map(|seg| if seg.starts_with('{') { "x" } else { seg })
                .collect::<Vec<_>>()
                .join("/")
        );
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let status = stack
                .http
                .request(Method::from_bytes(method.as_bytes()).unwrap(), &url)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            assert_eq!(
                status != 405,
                methods.contains_key(method),
                "{method} {path}: routed = {}, documented = {}",
                status != 405,
                methods.contains_key(method)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_admin_paths_never_reach_another_orgs_resources() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    stack.create_org("globex").await;
    let (status, globex_token) = stack
        .api(
            Method::POST,
            "/api/orgs/globex/enrollment-tokens",
            Some(serde_json::json!({ "tenant_id": "prod", "max_uses": 5 })),
        )
        .await;
    assert_eq!(status, 201);
    let token_id = globex_token["id"].as_str().unwrap().to_owned();
    let (status, _, _) = stack
        .enroll_raw(globex_token["token"].as_str().unwrap(), "g-1")
        .await;
    assert_eq!(status, 200);

    // Org acme's admin paths with globex's ids: 404, and nothing changes.
    for (method, path) in [
        (Method::GET, "/api/orgs/acme/nodes/g-1".to_string()),
        (
            Method::POST,
            "/api/orgs/acme/nodes/g-1/decommission".to_string(),
        ),
        (
            Method::DELETE,
            format!("/api/orgs/acme/enrollment-tokens/{token_id}"),
        ),
    ] {
        let (status, body) = stack.api(method.clone(), &path, None).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["error"], "not_found");
    }
    assert_eq!(stack.node_status("g-1").await.as_deref(), Some("unseen"));
    let (_, tokens) = stack
        .api(Method::GET, "/api/orgs/globex/enrollment-tokens", None)
        .await;
    assert!(tokens[0]["revoked_at"].is_null(), "{tokens}");
    // Lists and counts of acme show nothing of globex.
    let (_, list) = stack.api(Method::GET, "/api/orgs/acme/nodes", None).await;
    assert_eq!(list["total"], 0, "{list}");
    let (_, list) = stack
        .api(Method::GET, "/api/orgs/acme/nodes?tenant=prod&q=g-1", None)
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    let (_, summary) = stack
        .api(Method::GET, "/api/orgs/acme/nodes/summary", None)
        .await;
    assert_eq!(summary["total"], 0);
    let (_, tokens) = stack
        .api(Method::GET, "/api/orgs/acme/enrollment-tokens", None)
        .await;
    assert_eq!(tokens.as_array().unwrap().len(), 0);
    // A globex token cannot enroll a node into acme by asking for it.
    let (status, body, _) = stack
        .enroll_raw(globex_token["token"].as_str().unwrap(), "g-2")
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["org_id"], "globex");
}
