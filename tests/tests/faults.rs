//! Fault tests, each counting every message: what was sent is in PostgreSQL
//! exactly once (rows and the sums of their counters).
//!
//! - the controller as a real process (`ritma controller`), SIGKILLed twice
//!   in the middle of ingest and restarted;
//! - nats-server stopped for 60 s under running daemons: they spool, and
//!   everything arrives afterwards, in order per node; a tiny spool drops its
//!   oldest entries and counts them (`spool.dropped` in heartbeats);
//! - nats-server restarted: JetStream state and org accounts survive;
//! - PostgreSQL (a private server) stopped for 60 s: workers stop acking,
//!   back off and resume, `/readyz` answers 503 meanwhile;
//! - duplicates and replays are harmless; a node clock far off is handled.
//!
//! The outages last `RITMA_FAULT_OUTAGE_SECS` (default 60) seconds.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::Duration;

use async_nats::jetstream;
use ritma_tests::*;
use serde_json::{Value, json};

fn outage() -> Duration {
    Duration::from_secs(
        std::env::var("RITMA_FAULT_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    )
}

fn slo_body(node: &str, seq: u64, count: u64) -> Vec<u8> {
    let now = chrono::Utc::now();
    serde_json::to_vec(&json!({
        "v": 1, "node_id": node, "seq": seq, "sent_at": now,
        "period_start": now - chrono::Duration::seconds(10), "period_end": now,
        "counts": [{ "component": "engine", "operation": "decide", "outcome": "ok", "count": count }],
    }))
    .unwrap()
}

fn events_body(node: &str, seq: u64, allow: u64) -> Vec<u8> {
    let now = chrono::Utc::now();
    serde_json::to_vec(&json!({
        "v": 1, "node_id": node, "seq": seq, "sent_at": now,
        "period_start": now - chrono::Duration::seconds(10), "period_end": now,
        "allow": allow, "deny": 1, "throttle": 0, "isolate": 0,
    }))
    .unwrap()
}

/// Message `i` of a node's mixed stream: usage, SLO and events in turn,
/// sequence `i`, counter value `i`.
fn mixed(node: &str, i: u64) -> (&'static str, Vec<u8>) {
    match i % 3 {
        1 => ("usage", usage_body(node, i, i)),
        2 => ("slo", slo_body(node, i, i)),
        _ => ("events", events_body(node, i, i)),
    }
}

/// Publish messages `range` of `node`'s mixed stream through JetStream, each
/// acked. `msg_id` prefixes a `Nats-Msg-Id` (None: none, as the node daemon
/// publishes). A message whose ack does not come is sent again, as the daemon
/// re-sends after a lost ack: a loaded machine can hold an ack past the
/// client's timeout, and a second copy is what the ingest must absorb anyway.
async fn publish_mixed(
    js: &jetstream::Context,
    org_tenant: &str,
    node: &str,
    range: RangeInclusive<u64>,
    msg_id: Option<&str>,
) {
    let publish = |i: u64| {
        let (kind, body) = mixed(node, i);
        let mut headers = async_nats::HeaderMap::new();
        if let Some(prefix) = msg_id {
            headers.insert("Nats-Msg-Id", format!("{prefix}:{node}:{i}").as_str());
        }
        let subject = format!("ritma.{org_tenant}.node.{node}.{kind}");
        js.publish_with_headers(subject, headers, body.into())
    };
    let mut pending: Vec<u64> = range.collect();
    for attempt in 1..=5 {
        let mut unacked = Vec::new();
        for window in pending.chunks(256) {
            let mut acks = Vec::with_capacity(window.len());
            for &i in window {
                acks.push((i, publish(i).await.unwrap()));
            }
            for (i, ack) in acks {
                if let Err(e) = ack.await {
                    eprintln!("publish {node}:{i}: {e} (attempt {attempt}); sending again");
                    unacked.push(i);
                }
            }
        }
        if unacked.is_empty() {
            return;
        }
        pending = unacked;
    }
    panic!("{} messages of {node} never acked", pending.len());
}

/// Rows and counter sums of the three summary tables for `node`.
async fn summary_totals(stack: &TestStack, node: &str) -> [(i64, i64); 3] {
    let q = |sql: String| async move { stack.count(&sql).await };
    [
        (
            q(format!("SELECT count(*) FROM node_usage_reports WHERE node_id = '{node}'")).await,
            q(format!(
                "SELECT COALESCE(sum(decisions), 0)::bigint FROM node_usage_reports WHERE node_id = '{node}'"
            ))
            .await,
        ),
        (
            q(format!("SELECT count(*) FROM node_slo_summaries WHERE node_id = '{node}'")).await,
            q(format!(
                "SELECT COALESCE(sum((c->>'count')::bigint), 0)::bigint
                 FROM node_slo_summaries, jsonb_array_elements(counts) c WHERE node_id = '{node}'"
            ))
            .await,
        ),
        (
            q(format!(
                "SELECT count(*) FROM node_enforcement_summaries WHERE node_id = '{node}'"
            ))
            .await,
            q(format!(
                "SELECT COALESCE(sum(allow_count), 0)::bigint FROM node_enforcement_summaries WHERE node_id = '{node}'"
            ))
            .await,
        ),
    ]
}

/// What `summary_totals` must be once messages `1..=n` of the mixed stream are in.
fn expected_totals(n: u64) -> [(i64, i64); 3] {
    let mut out = [(0i64, 0i64); 3];
    for i in 1..=n {
        let slot = match i % 3 {
            1 => 0,
            2 => 1,
            _ => 2,
        };
        out[slot].0 += 1;
        out[slot].1 += i as i64;
    }
    out
}

async fn rows(stack: &TestStack, node: &str) -> i64 {
    summary_totals(stack, node)
        .await
        .iter()
        .map(|(rows, _)| rows)
        .sum()
}

async fn enrolled_publisher(stack: &TestStack, tenant: &str, node: &str) -> BusUser {
    let token = stack.create_token("acme", tenant, 1).await;
    let (status, reply, key) = stack.enroll_raw(&token, node).await;
    assert_eq!(status, 200, "{reply}");
    stack.connect_node(&reply, key).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_process_sigkilled_mid_batch_loses_and_doubles_nothing() {
    const TOTAL: u64 = 6000;
    let mut stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let node = enrolled_publisher(&stack, "prod", "busy-1").await;
    let js = jetstream::new(node.client.clone());
    // From here on the controller is the real binary, as deployed.
    stack.controller.take().unwrap().stop().await;
    let env = [
        ("RITMA_BATCH_SIZE", "100".to_string()),
        ("RITMA_BATCH_WAIT_MS", "20".to_string()),
        ("RITMA_WORKERS", "2".to_string()),
    ];
    let mut controller = stack.spawn_controller_process(&env).await.unwrap();

    // The node publishes all the while; the controller dies twice under it.
    let publisher = {
        let js = js.clone();
        tokio::spawn(async move {
            for chunk in 0..TOTAL / 500 {
                publish_mixed(
                    &js,
                    "acme.prod",
                    "busy-1",
                    chunk * 500 + 1..=chunk * 500 + 500,
                    None,
                )
                .await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut at_kill = Vec::new();
    for _ in 0..2 {
        let before = rows(&stack, "busy-1").await;
        stack
            .eventually("ingest under way", Duration::from_secs(60), || async {
                (rows(&stack, "busy-1").await > before + 300).then_some(())
            })
            .await;
        controller.kill(); // SIGKILL, mid-batch
        let n = rows(&stack, "busy-1").await;
        assert!(n < TOTAL as i64, "killed after everything was in ({n})");
        at_kill.push(n);
        tokio::time::sleep(Duration::from_millis(500)).await;
        controller = stack.spawn_controller_process(&env).await.unwrap();
    }
    publisher.await.unwrap();
    // Retried publishes (as the daemon re-sends after a lost ack) and replays
    // under message ids reach the controller and must not count twice.
    publish_mixed(&js, "acme.prod", "busy-1", TOTAL - 20..=TOTAL, None).await;
    publish_mixed(&js, "acme.prod", "busy-1", 1..=30, Some("replay")).await;

    let expected = expected_totals(TOTAL);
    stack
        .eventually(
            "every message committed",
            Duration::from_secs(90),
            || async { (summary_totals(&stack, "busy-1").await == expected).then_some(()) },
        )
        .await;
    // Redeliveries after ack_wait (3 s), if any, change nothing.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        summary_totals(&stack, "busy-1").await,
        expected,
        "rows and counter sums are exact"
    );
    // The hourly rollups, added in the commits the kills interrupted and
    // redelivered, hold exactly the stored rows.
    let [(_, decisions), (_, slo_count), (_, allowed)] = expected;
    assert_eq!(
        [
            stack
                .count("SELECT COALESCE(sum(decisions), 0)::bigint FROM usage_hourly")
                .await,
            stack
                .count("SELECT COALESCE(sum(count), 0)::bigint FROM slo_hourly WHERE node_id = 'busy-1'")
                .await,
            stack
                .count("SELECT COALESCE(sum(allow_count), 0)::bigint FROM enforcement_hourly WHERE node_id = 'busy-1'")
                .await,
        ],
        [decisions, slo_count, allowed],
        "rollups match the rows"
    );
    assert_eq!(stack.count("SELECT count(*) FROM dead_letters").await, 0);
    eprintln!("controller killed at {at_kill:?} rows of {TOTAL}");
    controller.kill();
}

fn spool_lines(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("spool"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
                .map(|e| {
                    std::fs::read_to_string(e.path())
                        .unwrap_or_default()
                        .lines()
                        .count()
                })
                .sum()
        })
        .unwrap_or(0)
}

fn spool_dropped(dir: &std::path::Path) -> u64 {
    std::fs::read_to_string(dir.join("spool/dropped"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Summary rows in the database for `node`, by kind, as node sequences.
async fn db_summary_seqs(stack: &TestStack, node: &str) -> BTreeMap<String, Vec<u64>> {
    let mut out = BTreeMap::new();
    for (kind, table) in [
        ("slo", "node_slo_summaries"),
        ("usage", "node_usage_reports"),
        ("events", "node_enforcement_summaries"),
    ] {
        let seqs: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT seq FROM {table} WHERE node_id = $1 ORDER BY seq"
        )))
        .bind(node)
        .fetch_all(&stack.pool)
        .await
        .unwrap();
        out.insert(
            kind.to_string(),
            seqs.into_iter().map(|s| s as u64).collect(),
        );
    }
    out
}

fn stream_summary_seqs(messages: &[(String, u64)]) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = ["slo", "usage", "events"]
        .into_iter()
        .map(|k| (k.to_string(), vec![]))
        .collect();
    for (kind, seq) in messages {
        if let Some(v) = out.get_mut(kind) {
            v.push(*seq);
        }
    }
    for v in out.values_mut() {
        v.sort_unstable();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_down_for_a_minute_daemons_spool_and_everything_arrives_in_order() {
    let mut stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 2).await;
    let roomy = stack
        .spawn_daemon(Some(&token), stack.dir.path().join("roomy"), 1, 1)
        .await
        .unwrap();
    // The smallest spool there is (4 KiB): it must drop, and count what it drops.
    let tiny = stack
        .spawn_daemon_with(Some(&token), stack.dir.path().join("tiny"), 1, 1, |a| {
            a.spool_max_bytes = Some(4096);
        })
        .await
        .unwrap();
    for d in [&roomy, &tiny] {
        stack
            .wait_status(&d.node_id, "online", Duration::from_secs(15))
            .await;
    }

    stack.nats.stop();
    tokio::time::sleep(outage()).await;
    let roomy_depth = spool_lines(&roomy.state_dir);
    let tiny_dropped = spool_dropped(&tiny.state_dir);
    assert!(
        roomy_depth as u64 >= outage().as_secs() * 2,
        "the daemon spools while the bus is down: {roomy_depth} lines"
    );
    assert!(
        tiny_dropped > 0,
        "a 4 KiB spool must drop during the outage"
    );
    stack.nats.restart().await.unwrap();

    // The tiny node reports its drop count in its heartbeats.
    stack
        .eventually(
            "spool.dropped reported",
            Duration::from_secs(30),
            || async {
                let reported: Option<i64> = sqlx::query_scalar(
                    "SELECT spool_dropped FROM node_liveness WHERE node_id = $1",
                )
                .bind(&tiny.node_id)
                .fetch_one(&stack.pool)
                .await
                .ok()
                .flatten();
                let on_disk = spool_dropped(&tiny.state_dir) as i64;
                if reported != Some(on_disk) {
                    eprintln!("tiny: reported {reported:?}, on disk {on_disk}");
                }
                (reported == Some(on_disk)).then_some(())
            },
        )
        .await;
    for d in [&roomy, &tiny] {
        stack
            .eventually("spool drained", Duration::from_secs(60), || async {
                (spool_lines(&d.state_dir) == 0).then_some(())
            })
            .await;
    }
    let (roomy_id, roomy_dir) = (roomy.node_id.clone(), roomy.state_dir.clone());
    let (tiny_id, tiny_dir) = (tiny.node_id.clone(), tiny.state_dir.clone());
    roomy.stop().await.unwrap();
    tiny.stop().await.unwrap();
    assert_eq!(spool_lines(&roomy_dir), 0, "nothing left behind");

    // Roomy: every message it made is on the stream, in order, no gap.
    let roomy_msgs = stack.node_stream(&roomy_id).await;
    let seqs: Vec<u64> = roomy_msgs.iter().map(|m| m.1).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "in order, no gap");
    assert!(seqs.len() > roomy_depth, "{} messages", seqs.len());

    // Tiny: in order; every sequence is either delivered or counted as dropped.
    let tiny_msgs = stack.node_stream(&tiny_id).await;
    let seqs: Vec<u64> = tiny_msgs.iter().map(|m| m.1).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    let dropped = spool_dropped(&tiny_dir);
    let last = *seqs.last().unwrap();
    let missing = last - seqs.len() as u64;
    eprintln!(
        "tiny: made {last}, delivered {}, missing {missing}, dropped {dropped}",
        seqs.len()
    );
    assert!(missing > 0, "the tiny spool lost messages");
    assert_eq!(
        missing,
        dropped,
        "every message is delivered or counted as dropped: delivered {} + dropped {dropped} = made {last}",
        seqs.len()
    );

    // And the controller committed exactly the summaries the stream holds.
    for (node, msgs) in [(&roomy_id, &roomy_msgs), (&tiny_id, &tiny_msgs)] {
        let want = stream_summary_seqs(msgs);
        stack
            .eventually("summaries committed", Duration::from_secs(30), || async {
                (db_summary_seqs(&stack, node).await == want).then_some(())
            })
            .await;
    }
    eprintln!(
        "outage {:?}: roomy delivered {} messages (spooled {roomy_depth}); tiny delivered {} and dropped {dropped}",
        outage(),
        roomy_msgs.len(),
        tiny_msgs.len()
    );
    stack.controller.take().unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_keeps_jetstream_state_and_org_accounts() {
    let mut stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 1).await;
    let (status, reply, key) = stack.enroll_raw(&token, "steady-1").await;
    assert_eq!(status, 200);
    let seed = key.seed().unwrap();
    let node = stack.connect_node(&reply, key).await.unwrap();
    let js = jetstream::new(node.client.clone());
    publish_mixed(&js, "acme.prod", "steady-1", 1..=300, None).await;
    stack
        .eventually("first half committed", Duration::from_secs(30), || async {
            (summary_totals(&stack, "steady-1").await == expected_totals(300)).then_some(())
        })
        .await;
    let bus = stack.controller_bus().await.unwrap();
    let before = jetstream::new(bus)
        .get_stream(ritma_bus::streams::TELEMETRY_STREAM)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .clone();
    drop(node);

    stack.nats.restart().await.unwrap();

    // The stream kept its messages and its sequence.
    let bus = stack.controller_bus().await.unwrap();
    let after = jetstream::new(bus)
        .get_stream(ritma_bus::streams::TELEMETRY_STREAM)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .clone();
    assert_eq!(after.messages, before.messages);
    assert_eq!(after.last_sequence, before.last_sequence);
    // The org account (pushed at run time, not in the config file) is still
    // known: the node enrolled before connects with the same credential.
    let node = BusUser::connect(
        &stack.nats.url,
        reply["jwt"].as_str().unwrap(),
        nkeys::KeyPair::from_seed(&seed).unwrap(),
        reply["inbox_prefix"].as_str(),
    )
    .await
    .expect("a node enrolled before the restart connects after it");
    let js = jetstream::new(node.client.clone());
    publish_mixed(&js, "acme.prod", "steady-1", 301..=600, None).await;
    stack
        .eventually("everything committed", Duration::from_secs(30), || async {
            (summary_totals(&stack, "steady-1").await == expected_totals(600)).then_some(())
        })
        .await;
    // The controller's own bus connections recovered too: readyz is green.
    let r = stack
        .http
        .get(format!("{}/readyz", stack.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

async fn readyz(stack: &TestStack) -> (u16, Value) {
    let r = stack
        .http
        .get(format!("{}/readyz", stack.api_url()))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_for_a_minute_workers_back_off_and_lose_nothing() {
    // A private server: the shared one on 5432 is used by every other test.
    let pg_dir = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(pg_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let pg = ritma_devstack::PostgresServer::start(&pg_dir.path().join("pg"), "ritma_fault")
        .await
        .unwrap();
    let stack = TestStack::start_on(pg.url.clone(), |c| {
        c.batch_size = 100;
        c.batch_wait_ms = 20;
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    let node = enrolled_publisher(&stack, "prod", "patient-1").await;
    let js = jetstream::new(node.client.clone());
    publish_mixed(&js, "acme.prod", "patient-1", 1..=300, None).await;
    stack
        .eventually(
            "committed before the outage",
            Duration::from_secs(30),
            || async {
                (summary_totals(&stack, "patient-1").await == expected_totals(300)).then_some(())
            },
        )
        .await;
    let consumer_acked = || async {
        let bus = stack.controller_bus().await.unwrap();
        let mut consumer: jetstream::consumer::PullConsumer = jetstream::new(bus)
            .get_stream(ritma_bus::streams::TELEMETRY_STREAM)
            .await
            .unwrap()
            .get_consumer(ritma_bus::streams::INGEST_CONSUMER)
            .await
            .unwrap();
        consumer.info().await.unwrap().ack_floor.stream_sequence
    };

    pg.stop();
    let started = std::time::Instant::now();
    let (status, body) = stack
        .eventually(
            "readyz reports the database",
            Duration::from_secs(20),
            || async {
                let (status, body) = readyz(&stack).await;
                (status == 503).then_some((status, body))
            },
        )
        .await;
    assert_eq!(status, 503);
    assert_eq!(body["database"], false, "{body}");
    // The node keeps publishing: JetStream holds the messages.
    publish_mixed(&js, "acme.prod", "patient-1", 301..=1200, None).await;
    let floor = consumer_acked().await;
    tokio::time::sleep(outage().saturating_sub(started.elapsed())).await;
    assert_eq!(
        consumer_acked().await,
        floor,
        "nothing is acked while the database is down"
    );
    let (status, body) = readyz(&stack).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["ingest"]["db_failures"].as_u64().unwrap() > 0,
        "{body}"
    );

    pg.restart().await.unwrap();
    stack
        .eventually("ready again", Duration::from_secs(30), || async {
            (readyz(&stack).await.0 == 200).then_some(())
        })
        .await;
    let expected = expected_totals(1200);
    stack
        .eventually(
            "everything committed after the outage",
            Duration::from_secs(60),
            || async { (summary_totals(&stack, "patient-1").await == expected).then_some(()) },
        )
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await; // late redeliveries change nothing
    assert_eq!(summary_totals(&stack, "patient-1").await, expected);
    assert_eq!(stack.count("SELECT count(*) FROM dead_letters").await, 0);
    drop(stack);
    pg.stop();
}

fn heartbeat_at(node: &str, seq: u64, sent_at: chrono::DateTime<chrono::Utc>) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&heartbeat_body(node, seq, 1)).unwrap();
    v["sent_at"] = json!(sent_at);
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_harmless_and_node_clocks_are_not_trusted() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let node = enrolled_publisher(&stack, "prod", "skewed-1").await;
    let js = jetstream::new(node.client.clone());

    // The same message five times: twice under the same id (the stream drops
    // the copy), three times under new ids (the controller absorbs them).
    for id in ["a", "a", "b", "c", "d"] {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id);
        js.publish_with_headers(
            "ritma.acme.prod.node.skewed-1.usage",
            headers,
            usage_body("skewed-1", 7, 42).into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }

    // A node whose clock is ten years behind...
    let past = chrono::Utc::now() - chrono::Duration::days(3650);
    js.publish(
        "ritma.acme.prod.node.skewed-1.heartbeat",
        heartbeat_at("skewed-1", 1, past).into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    stack
        .wait_status("skewed-1", "online", Duration::from_secs(10))
        .await;
    let (seen, sent): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as(
            "SELECT last_seen_at, last_sent_at FROM node_liveness WHERE node_id = 'skewed-1'",
        )
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    let now = chrono::Utc::now();
    assert!(
        (now - seen).num_seconds().abs() < 30,
        "receive time is the controller's: {seen}"
    );
    assert_eq!(
        sent.timestamp(),
        past.timestamp(),
        "the node's own time is kept beside it"
    );

    // ...then one a year ahead: it cannot keep itself online by its clock.
    let future = chrono::Utc::now() + chrono::Duration::days(365);
    js.publish(
        "ritma.acme.prod.node.skewed-1.heartbeat",
        heartbeat_at("skewed-1", 2, future).into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    stack
        .eventually(
            "second heartbeat applied",
            Duration::from_secs(10),
            || async {
                let seq: i64 = stack
                    .count("SELECT last_seq FROM node_liveness WHERE node_id = 'skewed-1'")
                    .await;
                (seq == 2).then_some(())
            },
        )
        .await;
    // interval 1 s: offline after 3 x 1 s + 1 s grace of silence, by the controller's clock.
    stack
        .eventually(
            "offline by receive time",
            Duration::from_secs(15),
            || async {
                (stack.node_status("skewed-1").await.as_deref() == Some("offline")).then_some(())
            },
        )
        .await;
    assert_eq!(
        stack
            .count("SELECT count(*) FROM node_usage_reports WHERE node_id = 'skewed-1'")
            .await,
        1
    );
    assert_eq!(
        stack
            .count(
                "SELECT sum(decisions)::bigint FROM node_usage_reports WHERE node_id = 'skewed-1'"
            )
            .await,
        42
    );
    assert_eq!(stack.count("SELECT count(*) FROM dead_letters").await, 0);
}
