//! Limits of the shared ingest (issue 18): stream limits applied to existing
//! streams, bounded dead letters, retention of dead letters and status
//! history, liveness that never depends on the ingest being behind, bounded
//! SLO label cardinality and paged SLO and events APIs.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::jetstream;
use ritma_tests::*;
use serde_json::{Value, json};

async fn enrolled(stack: &TestStack, org: &str, nodes: &[&str]) {
    stack.create_org(org).await;
    let token = stack.create_token(org, "prod", nodes.len() as i32).await;
    for node in nodes {
        let (status, body, _) = stack.enroll_raw(&token, node).await;
        assert_eq!(status, 200, "{body}");
    }
}

async fn publish(js: &jetstream::Context, subject: String, body: Vec<u8>) {
    js.publish(subject, body.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_streams_get_their_limits_at_controller_start() {
    let mut stack = TestStack::start().await.unwrap();
    stack.controller.take().unwrap().stop().await;
    // As an older controller left them: no size or per-subject limits.
    let js = jetstream::new(stack.controller_bus().await.unwrap());
    for name in [
        ritma_bus::streams::TELEMETRY_STREAM,
        ritma_bus::streams::DEAD_LETTER_STREAM,
    ] {
        let mut config = js
            .get_stream(name)
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .config
            .clone();
        config.max_bytes = -1;
        config.max_messages = -1;
        config.max_messages_per_subject = -1;
        config.max_age = Duration::from_secs(365 * 24 * 3600);
        js.update_stream(config).await.unwrap();
    }
    stack.controller = Some(
        stack
            .start_controller(&|c: &mut ritma_controller::Config| {
                c.telemetry_stream_max_bytes = 123_456_789;
                c.telemetry_stream_max_msgs_per_subject = 4242;
                c.telemetry_stream_max_age_secs = 3 * 24 * 3600;
                c.dead_letter_stream_max_bytes = 98_765_432;
                c.dead_letter_stream_max_msgs = 5151;
                c.dead_letter_stream_max_age_secs = 2 * 24 * 3600;
            })
            .await
            .unwrap(),
    );
    let t = js
        .get_stream(ritma_bus::streams::TELEMETRY_STREAM)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone();
    assert_eq!(t.max_bytes, 123_456_789);
    assert_eq!(t.max_messages_per_subject, 4242);
    assert_eq!(t.max_age, Duration::from_secs(3 * 24 * 3600));
    assert_eq!(t.discard, jetstream::stream::DiscardPolicy::Old);
    let d = js
        .get_stream(ritma_bus::streams::DEAD_LETTER_STREAM)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone();
    assert_eq!(d.max_bytes, 98_765_432);
    assert_eq!(d.max_messages, 5151);
    assert_eq!(d.max_age, Duration::from_secs(2 * 24 * 3600));
    assert_eq!(d.discard, jetstream::stream::DiscardPolicy::Old);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_keep_headers_reason_size_and_the_first_4_kib() {
    let stack = TestStack::start().await.unwrap();
    enrolled(&stack, "acme", &["dl-1"]).await;
    let js = jetstream::new(stack.controller_bus().await.unwrap());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-Trace", "trace-42");
    let mut body = b"{not json ".to_vec();
    body.extend(std::iter::repeat_n(b'x', 10_000));
    js.publish_with_headers(
        "ritma.acme.prod.node.dl-1.usage".to_string(),
        headers,
        body.clone().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let row: (String, String, Option<Value>, Vec<u8>, i64) = stack
        .eventually("dead letter", Duration::from_secs(15), || async {
            sqlx::query_as("SELECT org_id, reason, headers, body, body_size FROM dead_letters")
                .fetch_optional(&stack.pool)
                .await
                .unwrap()
        })
        .await;
    assert_eq!(row.0, "acme");
    assert_eq!(row.1, "malformed");
    assert_eq!(row.2.unwrap()["X-Trace"], json!(["trace-42"]));
    assert_eq!(row.3.len(), 4096, "at most the first 4 KiB of the body");
    assert_eq!(row.3.as_slice(), &body[..4096]);
    assert_eq!(row.4, body.len() as i64, "the original size");

    let mut dlq = js
        .get_stream(ritma_bus::streams::DEAD_LETTER_STREAM)
        .await
        .unwrap();
    assert_eq!(dlq.info().await.unwrap().state.messages, 1);
    let m = dlq.get_raw_message(1).await.unwrap();
    assert_eq!(m.payload.len(), 4096);
    let h = |name: &str| m.headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(h("X-Trace").as_deref(), Some("trace-42"));
    assert_eq!(h("Ritma-Reason").as_deref(), Some("malformed"));
    assert_eq!(h("Ritma-Original-Size"), Some(body.len().to_string()));
    assert_eq!(h("Ritma-Org").as_deref(), Some("acme"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_and_status_history_past_retention_are_deleted() {
    let mut stack = TestStack::start().await.unwrap();
    enrolled(&stack, "acme", &["old-1"]).await;
    stack.controller.take().unwrap().stop().await;
    for (seq, days) in [(1i64, 40), (2, 20), (3, 1)] {
        sqlx::query(
            "INSERT INTO dead_letters (stream_seq, subject, reason, detail, received_at)
             VALUES ($1, 's', 'malformed', 'd', now() - make_interval(days => $2))",
        )
        .bind(seq)
        .bind(days)
        .execute(&stack.pool)
        .await
        .unwrap();
    }
    for days in [200, 100, 10] {
        sqlx::query(
            "INSERT INTO node_status_history (node_id, from_status, to_status, reason, at)
             VALUES ('old-1', 'online', 'offline', 'test', now() - make_interval(days => $1))",
        )
        .bind(days)
        .execute(&stack.pool)
        .await
        .unwrap();
    }
    stack.controller = Some(
        stack
            .start_controller(&|c: &mut ritma_controller::Config| {
                c.dead_letter_retention_days = 30;
                c.status_history_retention_days = 150;
            })
            .await
            .unwrap(),
    );
    stack
        .eventually("retention ran", Duration::from_secs(20), || async {
            let dl = stack.count("SELECT count(*) FROM dead_letters").await;
            let hist = stack
                .count("SELECT count(*) FROM node_status_history WHERE reason = 'test'")
                .await;
            (dl == 2 && hist == 2).then_some(())
        })
        .await;
    let kept: Vec<i64> = sqlx::query_scalar("SELECT stream_seq FROM dead_letters ORDER BY 1")
        .fetch_all(&stack.pool)
        .await
        .unwrap();
    assert_eq!(kept, vec![2, 3]);
}

/// Heartbeats of `nodes` every 300 ms until `stop`, each sequence one higher.
fn heartbeating(
    js: jetstream::Context,
    org: &'static str,
    nodes: Vec<&'static str>,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seq = 0;
        while !stop.is_cancelled() {
            seq += 1;
            for node in &nodes {
                let subject = format!("ritma.{org}.prod.node.{node}.heartbeat");
                let _ = js
                    .publish(subject, heartbeat_body(node, seq, 1).into())
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_ingest_never_marks_a_node_offline_and_a_silent_one_is_once_it_catches_up() {
    let stack = TestStack::start().await.unwrap();
    enrolled(&stack, "acme", &["alive-1", "silent-1"]).await;
    let js = jetstream::new(stack.controller_bus().await.unwrap());
    // Interval 1 s: stale after 2 s, offline after 3 x 1 s + 1 s.
    let alive_stop = tokio_util::sync::CancellationToken::new();
    let alive = heartbeating(js.clone(), "acme", vec!["alive-1"], alive_stop.clone());
    let silent_stop = tokio_util::sync::CancellationToken::new();
    let silent = heartbeating(js.clone(), "acme", vec!["silent-1"], silent_stop.clone());
    for node in ["alive-1", "silent-1"] {
        stack
            .wait_status(node, "online", Duration::from_secs(15))
            .await;
    }

    // The ingest stalls: every batch waits for a table lock (as behind a
    // slow database), while heartbeats keep arriving at the broker.
    let mut lock = stack.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE node_admission_epoch IN ACCESS EXCLUSIVE MODE")
        .execute(lock.as_mut())
        .await
        .unwrap();
    silent_stop.cancel();
    let _ = silent.await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let marked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM node_status_history WHERE to_status IN ('stale', 'offline')",
    )
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(
        marked, 0,
        "no node is marked stale or offline while the ingest is 8 s behind (deadline 4 s)"
    );
    assert_eq!(
        stack.node_status("alive-1").await.as_deref(),
        Some("online")
    );
    assert_eq!(
        stack.node_status("silent-1").await.as_deref(),
        Some("online")
    );

    // The ingest catches up: the silent node (no heartbeat for 8 s) goes
    // offline, the one that kept heartbeating never did.
    lock.rollback().await.unwrap();
    stack
        .wait_status("silent-1", "offline", Duration::from_secs(20))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let alive_marked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM node_status_history
         WHERE node_id = 'alive-1' AND to_status IN ('stale', 'offline')",
    )
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(
        alive_marked, 0,
        "the heartbeating node was never marked late"
    );
    alive_stop.cancel();
    let _ = alive.await;
}

fn slo_body(node: &str, seq: u64, labels: impl Iterator<Item = (String, String)>) -> Vec<u8> {
    let now = chrono::Utc::now();
    let counts: Vec<Value> = labels
        .map(|(component, operation)| {
            json!({ "component": component, "operation": operation, "outcome": "ok", "count": 2 })
        })
        .collect();
    serde_json::to_vec(&json!({
        "v": 1, "node_id": node, "seq": seq, "sent_at": now,
        "period_start": now - chrono::Duration::seconds(10), "period_end": now,
        "counts": counts,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slo_labels_per_node_are_bounded_and_the_slo_and_events_apis_are_paged() {
    let stack = TestStack::start().await.unwrap();
    enrolled(&stack, "acme", &["labels-1"]).await;
    let js = jetstream::new(stack.controller_bus().await.unwrap());
    let subject = "ritma.acme.prod.node.labels-1.slo".to_string();
    // 50 labels, then 50 more in a second message: 100 distinct in an hour.
    publish(
        &js,
        subject.clone(),
        slo_body(
            "labels-1",
            1,
            (0..50).map(|i| (format!("c{i}"), "op".into())),
        ),
    )
    .await;
    publish(
        &js,
        subject,
        slo_body(
            "labels-1",
            2,
            (50..100).map(|i| (format!("c{i}"), "op".into())),
        ),
    )
    .await;
    stack
        .eventually("SLO rows", Duration::from_secs(15), || async {
            (stack.count("SELECT count(*) FROM node_slo_summaries").await == 2).then_some(())
        })
        .await;
    let pairs: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT component, operation, count FROM slo_hourly WHERE node_id = 'labels-1'",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    let distinct: BTreeSet<_> = pairs.iter().map(|p| (p.0.clone(), p.1.clone())).collect();
    assert_eq!(
        distinct.len(),
        ritma_db::ingest::SLO_LABELS_PER_NODE_HOUR + 1,
        "64 labels and other: {distinct:?}"
    );
    let other: i64 = pairs
        .iter()
        .filter(|p| p.0 == "other" && p.1 == "other")
        .map(|p| p.2)
        .sum();
    assert_eq!(other, (100 - 64) * 2, "the excess is counted under other");
    assert_eq!(pairs.iter().map(|p| p.2).sum::<i64>(), 200, "nothing lost");

    // Paged: 65 buckets, 20 per page, the cursor walks them all once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/nodes/labels-1/slo-summary?limit=20&cursor={c}"),
            None => "/api/nodes/labels-1/slo-summary?limit=20".into(),
        };
        let (status, body) = stack.api(reqwest::Method::GET, &path, None).await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        let buckets = body["buckets"].as_array().unwrap();
        assert!(buckets.len() <= 20);
        seen.extend(
            buckets
                .iter()
                .map(|b| b["component"].as_str().unwrap().to_owned()),
        );
        assert_eq!(body["totals"].as_array().unwrap().len(), 65);
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(seen.len(), 65);
    assert_eq!(
        seen.iter().collect::<BTreeSet<_>>().len(),
        65,
        "no bucket twice"
    );
    for bad in ["limit=0", "limit=1001", "cursor=garbage"] {
        let (status, _) = stack
            .api(
                reqwest::Method::GET,
                &format!("/api/nodes/labels-1/slo-summary?{bad}"),
                None,
            )
            .await;
        assert_eq!(status, 400, "{bad}");
    }
    let (status, body) = stack
        .api(
            reqwest::Method::GET,
            "/api/orgs/acme/nodes/labels-1/events?limit=1",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["next_cursor"].is_null(), "no events: one empty page");
    let (status, _) = stack
        .api(
            reqwest::Method::GET,
            "/api/orgs/acme/nodes/labels-1/events?limit=5000",
            None,
        )
        .await;
    assert_eq!(status, 400);
}
