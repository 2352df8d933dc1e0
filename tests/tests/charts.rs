//! The dashboard charts' series (`GET /api/orgs/{org}/activity`): fed by the
//! ingest's per-tenant rollups, bucketed per range, filtered per tenant,
//! never showing another org's data, and refusing bad parameters clearly.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::time::Duration;

use reqwest::Method;
use ritma_tests::{TestStack, usage_body};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn events_body(node: &str, seq: u64, allow: u64, deny: u64, isolate: u64) -> Vec<u8> {
    let now = chrono::Utc::now();
    serde_json::to_vec(&json!({
        "v": 1, "node_id": node, "seq": seq, "sent_at": now,
        "period_start": now - chrono::Duration::seconds(10), "period_end": now,
        "allow": allow, "deny": deny, "throttle": 0, "isolate": isolate,
    }))
    .unwrap()
}

/// The sum of `field` over the series' buckets.
fn total(series: &Value, field: &str) -> i64 {
    series["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[field].as_i64().unwrap())
        .sum()
}

/// Summaries reported now must land in this hour's bucket: wait out the few
/// seconds around an hour's turn.
async fn away_from_an_hour_boundary() {
    use chrono::Timelike;
    let now = chrono::Utc::now();
    let secs = now.minute() * 60 + now.second();
    if !(20..=3600 - 40).contains(&secs) {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

async fn activity(stack: &TestStack, org: &str, query: &str) -> (u16, Value) {
    stack
        .api(
            Method::GET,
            &format!("/api/orgs/{org}/activity{query}"),
            None,
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_comes_from_the_tenant_rollups_per_range_and_tenant() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    stack.create_org("globex").await;
    away_from_an_hour_boundary().await;
    // Two nodes in prod, one in dev, one in another org.
    let mut buses = Vec::new();
    for (org, tenant, node, allow, deny, decisions) in [
        ("acme", "prod", "p-1", 10, 1, 100),
        ("acme", "prod", "p-2", 20, 2, 200),
        ("acme", "dev", "d-1", 5, 0, 50),
        ("globex", "prod", "g-1", 1000, 1000, 9000),
    ] {
        let token = stack.create_token(org, tenant, 1).await;
        let (status, reply, key) = stack.enroll_raw(&token, node).await;
        assert_eq!(status, 200, "{reply}");
        let bus = stack.connect_node(&reply, key).await.unwrap();
        let js = async_nats::jetstream::new(bus.client.clone());
        let base = format!("ritma.{org}.{tenant}.node.{node}");
        js.publish(
            format!("{base}.events"),
            events_body(node, 1, allow, deny, 1).into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        js.publish(
            format!("{base}.usage"),
            usage_body(node, 1, decisions).into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        buses.push((bus, base));
    }

    let day = stack
        .eventually("all of acme rolled up", WAIT, || async {
            let (status, s) = activity(&stack, "acme", "").await;
            assert_eq!(status, 200, "{s}");
            (total(&s, "allow") == 35 && total(&s, "decisions") == 350).then_some(s)
        })
        .await;
    // A redelivered summary (same node and seq, another message id) adds nothing.
    let (bus, base) = &buses[0];
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "a-different-copy");
    async_nats::jetstream::new(bus.client.clone())
        .publish_with_headers(
            format!("{base}.events"),
            headers,
            events_body("p-1", 1, 10, 1, 1).into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, again) = activity(&stack, "acme", "").await;
    assert_eq!(total(&again, "allow"), 35, "{again}");
    assert_eq!(day["range"], "24h");
    assert_eq!(day["tenant_id"], Value::Null);
    assert_eq!(day["step_secs"], 3600);
    let buckets = day["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 24, "every hour, zero or not");
    let last = buckets.last().unwrap();
    assert_eq!(
        (last["allow"].as_i64(), last["deny"].as_i64()),
        (Some(35), Some(3)),
        "this hour's bucket holds what was just reported: {day}"
    );
    assert_eq!(total(&day, "isolate"), 3);
    assert_eq!(total(&day, "dig_files"), 3);

    // One row per tenant and hour, however many nodes report.
    let rows = stack
        .count("SELECT count(*) FROM enforcement_tenant_hourly WHERE org_id = 'acme'")
        .await;
    assert_eq!(rows, 2, "prod and dev, this hour");

    let (status, prod) = activity(&stack, "acme", "?range=7d&tenant_id=prod").await;
    assert_eq!(status, 200, "{prod}");
    assert_eq!(prod["tenant_id"], "prod");
    assert_eq!(prod["buckets"].as_array().unwrap().len(), 28);
    assert_eq!(prod["step_secs"], 6 * 3600);
    assert_eq!(
        (total(&prod, "allow"), total(&prod, "decisions")),
        (30, 300)
    );

    // Older rollups land in their day; the 24 h range leaves them out.
    for sql in [
        "INSERT INTO usage_hourly (org_id, tenant_id, hour, decisions, dig_files)
         VALUES ('acme', 'dev', date_trunc('hour', now()) - interval '3 days', 7, 2)",
        "INSERT INTO enforcement_tenant_hourly (org_id, tenant_id, hour, deny_count)
         VALUES ('acme', 'dev', date_trunc('hour', now()) - interval '3 days', 4),
                ('acme', 'dev', date_trunc('hour', now()) - interval '60 days', 99)",
    ] {
        sqlx::query(sql).execute(&stack.pool).await.unwrap();
    }
    let (_, month) = activity(&stack, "acme", "?range=30d&tenant_id=dev").await;
    let days = month["buckets"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    assert_eq!(month["step_secs"], 86_400);
    assert_eq!((total(&month, "decisions"), total(&month, "deny")), (57, 4));
    assert!(
        days.iter()
            .all(|d| d["at"].as_str().unwrap().ends_with("T00:00:00Z")),
        "UTC days: {month}"
    );
    let (_, dev_day) = activity(&stack, "acme", "?range=24h&tenant_id=dev").await;
    assert_eq!(total(&dev_day, "decisions"), 50);

    // A tenant with nothing reported: zeros, not an error or another tenant's data.
    let (status, none) = activity(&stack, "acme", "?tenant_id=nobody").await;
    assert_eq!(status, 200, "{none}");
    assert_eq!(total(&none, "allow") + total(&none, "decisions"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_refuses_bad_parameters_and_other_orgs() {
    let stack = TestStack::start_with(|c| c.dev_header_auth = true)
        .await
        .unwrap();
    stack.create_org("acme").await;
    stack.create_org("globex").await;
    sqlx::query(
        "INSERT INTO enforcement_tenant_hourly (org_id, tenant_id, hour, allow_count)
         VALUES ('globex', 'prod', date_trunc('hour', now()), 77)",
    )
    .execute(&stack.pool)
    .await
    .unwrap();

    for query in [
        "?range=1y",
        "?range=24H",
        "?range=",
        "?range=7d&tenant_id=..%2Fglobex",
        "?tenant_id=Prod%20Tenant",
        "?tenant_id=a%27%20OR%201%3D1--",
        "?range=7d&range=30d",
    ] {
        let (status, err) = activity(&stack, "acme", query).await;
        if query == "?range=" {
            // An empty range is the default one.
            assert_eq!(status, 200, "{query}: {err}");
            continue;
        }
        assert_eq!(status, 400, "{query}: {err}");
        assert_eq!(err["error"], "invalid_request", "{query}: {err}");
        assert!(!err["message"].as_str().unwrap().is_empty(), "{err}");
    }
    let (_, err) = activity(&stack, "acme", "?range=1y").await;
    assert!(
        err["message"].as_str().unwrap().contains("24h, 7d, 30d"),
        "says what is accepted: {err}"
    );

    // Someone of acme asking for globex: as if it did not exist.
    let as_acme = |path: &str| {
        stack
            .http
            .get(format!("{}{path}", stack.api_url()))
            .header("x-user-id", "u")
            .header("x-org-id", "acme")
            .header("x-roles", "viewer")
    };
    let r = as_acme("/api/orgs/acme/activity").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        total(&body, "allow"),
        0,
        "acme sees none of globex's: {body}"
    );
    for path in [
        "/api/orgs/globex/activity",
        "/api/orgs/globex/activity?range=30d&tenant_id=prod",
    ] {
        let r = as_acme(path).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert!(status == 403 || status == 404, "{path}: {status} {text}");
        assert!(!text.contains("77"), "{path}: {text}");
    }
}

/// The rollup cue: a committed usage summary of an org puts one cue on
/// `ritma.<org>.activity` (what the console's charts refresh on), a burst of
/// summaries within the throttle adds none, and another org's summaries never
/// cue this org.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_summaries_cue_their_own_org_once_per_interval() {
    use futures::StreamExt;
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    stack.create_org("globex").await;
    let bus = stack.controller_bus().await.unwrap();
    let mut cues = bus.subscribe("ritma.*.activity").await.unwrap();
    bus.flush().await.unwrap();

    let mut nodes = Vec::new();
    for (org, node) in [("acme", "cue-a"), ("globex", "cue-g")] {
        let token = stack.create_token(org, "prod", 1).await;
        let (status, reply, key) = stack.enroll_raw(&token, node).await;
        assert_eq!(status, 200, "{reply}");
        let client = stack.connect_node(&reply, key).await.unwrap().client;
        nodes.push((client, format!("ritma.{org}.prod.node.{node}.usage"), node));
    }
    let (acme, acme_subject, acme_node) = &nodes[0];
    for seq in 1..=5 {
        async_nats::jetstream::new(acme.clone())
            .publish(acme_subject.clone(), usage_body(acme_node, seq, 7).into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let first = tokio::time::timeout(WAIT, cues.next())
        .await
        .expect("a cue for acme")
        .unwrap();
    assert_eq!(first.subject.as_str(), "ritma.acme.activity");
    let cue: Value = serde_json::from_slice(&first.payload).unwrap();
    assert_eq!(cue["org_id"], "acme");
    // The rest of the burst falls within the throttle: no second cue.
    let more = tokio::time::timeout(Duration::from_secs(2), cues.next()).await;
    assert!(more.is_err(), "one cue per interval, got {more:?}");

    // globex's summary cues globex only.
    let (globex, globex_subject, globex_node) = &nodes[1];
    async_nats::jetstream::new(globex.clone())
        .publish(globex_subject.clone(), usage_body(globex_node, 1, 7).into())
        .await
        .unwrap()
        .await
        .unwrap();
    let next = tokio::time::timeout(WAIT, cues.next())
        .await
        .expect("a cue for globex")
        .unwrap();
    assert_eq!(next.subject.as_str(), "ritma.globex.activity");
}
