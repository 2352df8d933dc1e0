//! Nothing is lost and nothing is counted twice: a controller crash in the
//! middle of a stream, a bus outage under a running daemon, and bad input.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::time::Duration;

use async_nats::jetstream;
use ritma_tests::*;

/// Publish `n` usage reports as node `node` publishes them (no
/// `Nats-Msg-Id`), each acked by JetStream.
async fn publish_usage(
    js: &jetstream::Context,
    subject: &str,
    node: &str,
    seqs: std::ops::RangeInclusive<u64>,
) {
    let mut acks = Vec::new();
    for seq in seqs {
        acks.push(
            js.publish(subject.to_owned(), usage_body(node, seq, seq).into())
                .await
                .unwrap(),
        );
        if acks.len() >= 256 {
            for a in acks.drain(..) {
                a.await.unwrap();
            }
        }
    }
    for a in acks {
        a.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_killed_mid_stream_loses_and_doubles_nothing() {
    const TOTAL: u64 = 6000;
    let mut stack = TestStack::start_with(|c| {
        c.batch_size = 200;
        c.batch_wait_ms = 20;
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 1).await;
    let (status, reply, key) = stack.enroll_raw(&token, "busy-1").await;
    assert_eq!(status, 200);
    let node = stack.connect_node(&reply, key).await.unwrap();
    let js = jetstream::new(node.client.clone());
    let subject = "ritma.acme.prod.node.busy-1.usage";

    publish_usage(&js, subject, "busy-1", 1..=TOTAL / 2).await;
    // Crash while batches are in flight.
    stack
        .eventually("ingest under way", Duration::from_secs(20), || async {
            (stack.count("SELECT count(*) FROM node_usage_reports").await > 0).then_some(())
        })
        .await;
    stack.controller.take().unwrap().kill().await;
    let at_crash = stack.count("SELECT count(*) FROM node_usage_reports").await;
    // The bus keeps accepting while the controller is down.
    publish_usage(&js, subject, "busy-1", TOTAL / 2 + 1..=TOTAL).await;
    // A node's retry after a lost ack: the stream keeps the copy, the
    // ingest absorbs it.
    publish_usage(&js, subject, "busy-1", TOTAL - 10..=TOTAL).await;
    stack.controller = Some(
        stack
            .start_controller(&|c| {
                c.batch_size = 200;
                c.batch_wait_ms = 20;
            })
            .await
            .unwrap(),
    );

    stack
        .eventually(
            "every message committed",
            Duration::from_secs(60),
            || async {
                (stack.count("SELECT count(*) FROM node_usage_reports").await == TOTAL as i64)
                    .then_some(())
            },
        )
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await; // redeliveries after ack_wait, if any
    assert_eq!(
        stack.count("SELECT count(*) FROM node_usage_reports").await,
        TOTAL as i64
    );
    let sum: i64 = stack
        .count("SELECT sum(decisions)::bigint FROM node_usage_reports")
        .await;
    assert_eq!(
        sum as u64,
        TOTAL * (TOTAL + 1) / 2,
        "counters are exact, not only row counts"
    );
    assert!(at_crash < TOTAL as i64);
    assert_eq!(stack.count("SELECT count(*) FROM dead_letters").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_spools_while_the_bus_is_down_and_delivers_in_order() {
    let mut stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 1).await;
    let daemon = stack
        .spawn_daemon(Some(&token), stack.dir.path().join("spooler"), 1, 1)
        .await
        .unwrap();
    let node = daemon.node_id.clone();
    stack
        .wait_status(&node, "online", Duration::from_secs(15))
        .await;

    stack.nats.stop();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let depth = std::fs::read_dir(daemon.state_dir.join("spool"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap().lines().count())
        .sum::<usize>();
    assert!(
        depth >= 10,
        "expected the daemon to spool while the bus is down, found {depth} lines"
    );
    stack.nats.restart().await.unwrap();
    // The daemon reconnects (its client backs off up to 4 s) and drains its spool.
    stack
        .eventually("spool drained", Duration::from_secs(30), || async {
            let left = std::fs::read_dir(daemon.state_dir.join("spool"))
                .unwrap()
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
                .map(|e| {
                    std::fs::read_to_string(e.path())
                        .unwrap_or_default()
                        .lines()
                        .count()
                })
                .sum::<usize>();
            (left == 0).then_some(())
        })
        .await;

    daemon.stop().await.unwrap();
    // Every message the daemon made is in the stream, in order, with no gap.
    // A copy the daemon re-sent after an ack lost to the outage may follow
    // its original (the stream keeps it, the ingest absorbs it).
    let seqs: Vec<u64> = stack
        .node_stream(&node)
        .await
        .into_iter()
        .map(|(_, seq)| seq)
        .collect();
    assert!(
        seqs.len() as u64 >= 10 + depth as u64 / 2,
        "only {} messages",
        seqs.len()
    );
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "in order, no gap");

    // And the controller committed them all.
    stack
        .eventually(
            "all summaries committed",
            Duration::from_secs(30),
            || async {
                let rows = stack
                    .count(&format!(
                        "SELECT (SELECT count(*) FROM node_slo_summaries WHERE node_id = '{node}')
                      + (SELECT count(*) FROM node_usage_reports WHERE node_id = '{node}')
                      + (SELECT count(*) FROM node_enforcement_summaries WHERE node_id = '{node}')"
                    ))
                    .await;
                (rows > 0 && rows % 3 == 0 && rows >= (seqs.len() as i64) / 3).then_some(())
            },
        )
        .await;
    stack.controller.take().unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_goes_to_dead_letters_with_a_reason_and_writes_nothing() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 1).await;
    let (_, reply, key) = stack.enroll_raw(&token, "fuzzy-1").await;
    let node = stack.connect_node(&reply, key).await.unwrap();
    let js = jetstream::new(node.client.clone());
    let hb = "ritma.acme.prod.node.fuzzy-1.heartbeat";
    let usage = "ritma.acme.prod.node.fuzzy-1.usage";
    let mut big = usage_body("fuzzy-1", 9, 1);
    big.extend(vec![b' '; 70_000]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (hb, b"{not json".to_vec(), "malformed"),
        (
            hb,
            br#"{"v":99,"node_id":"fuzzy-1"}"#.to_vec(),
            "unsupported_version",
        ),
        (hb, heartbeat_body("someone-else", 1, 10), "node_mismatch"),
        (hb, heartbeat_body("fuzzy-1", 1, 0), "invalid"),
        (usage, big, "too_large"),
    ];
    for (subject, body, _) in &cases {
        js.publish(subject.to_string(), body.clone().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // A good message after the bad ones still gets through.
    js.publish(usage, usage_body("fuzzy-1", 10, 5).into())
        .await
        .unwrap()
        .await
        .unwrap();
    stack
        .eventually("dead letters recorded", Duration::from_secs(15), || async {
            (stack.count("SELECT count(*) FROM dead_letters").await == cases.len() as i64)
                .then_some(())
        })
        .await;
    let reasons: Vec<String> =
        sqlx::query_scalar("SELECT reason FROM dead_letters ORDER BY stream_seq")
            .fetch_all(&stack.pool)
            .await
            .unwrap();
    let expected: Vec<String> = cases.iter().map(|c| c.2.to_string()).collect();
    assert_eq!(reasons, expected);
    stack
        .eventually(
            "good message committed",
            Duration::from_secs(10),
            || async {
                (stack.count("SELECT count(*) FROM node_usage_reports").await == 1).then_some(())
            },
        )
        .await;
    assert_eq!(
        stack.node_status("fuzzy-1").await.as_deref(),
        Some("unseen"),
        "no bad heartbeat applied"
    );

    // The refused messages themselves are kept on the dead-letter stream.
    let bus = stack.controller_bus().await.unwrap();
    let mut dlq = jetstream::new(bus)
        .get_stream(ritma_bus::streams::DEAD_LETTER_STREAM)
        .await
        .unwrap();
    assert_eq!(dlq.info().await.unwrap().state.messages, cases.len() as u64);
    let mut malformed = None;
    for seq in 1..=cases.len() as u64 {
        let m = dlq.get_raw_message(seq).await.unwrap();
        if m.subject.as_str() == "ritma_sys.deadletter.malformed" {
            malformed = Some(m);
        }
    }
    let malformed = malformed.expect("the malformed message is on the dead-letter stream");
    assert_eq!(malformed.payload.as_ref(), b"{not json", "kept as it came");
    let headers = malformed.headers;
    assert_eq!(headers.get("Ritma-Subject").map(|v| v.as_str()), Some(hb));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_org_or_tenant_and_replayed_messages_write_nothing() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    stack.create_org("globex").await;
    let token = stack.create_token("acme", "prod", 1).await;
    let (_, reply, key) = stack.enroll_raw(&token, "real-1").await;
    let node = stack.connect_node(&reply, key).await.unwrap();
    let js = jetstream::new(node.client.clone());
    let usage = "ritma.acme.prod.node.real-1.usage";
    let hb = "ritma.acme.prod.node.real-1.heartbeat";

    // The broker already refuses a real node anything outside its subjects;
    // the controller checks again. Publish from the controller account, which
    // may write anywhere in the stream: node real-1 of the wrong tenant, of
    // another org, of an org that does not exist, and a node that does not exist.
    let js_ctl = jetstream::new(stack.controller_bus().await.unwrap());
    let forged = [
        "ritma.acme.dev.node.real-1.usage",
        "ritma.globex.prod.node.real-1.usage",
        "ritma.nosuch.prod.node.real-1.usage",
        "ritma.acme.prod.node.ghost-1.usage",
    ];
    for subject in forged {
        let node_id = subject.split('.').nth(4).unwrap();
        js_ctl
            .publish(subject, usage_body(node_id, 1, 1000).into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    stack
        .eventually(
            "forged messages dead-lettered",
            Duration::from_secs(15),
            || async {
                (stack
                    .count("SELECT count(*) FROM dead_letters WHERE reason = 'unknown_node'")
                    .await
                    == forged.len() as i64)
                    .then_some(())
            },
        )
        .await;
    let subjects: Vec<String> =
        sqlx::query_scalar("SELECT subject FROM dead_letters ORDER BY stream_seq")
            .fetch_all(&stack.pool)
            .await
            .unwrap();
    assert_eq!(subjects, forged.to_vec());
    assert_eq!(
        stack.count("SELECT count(*) FROM node_usage_reports").await,
        0
    );

    // Real traffic: usage 1..=5 and heartbeats 1..=5.
    for seq in 1..=5 {
        js.publish(usage, usage_body("real-1", seq, seq).into())
            .await
            .unwrap()
            .await
            .unwrap();
        js.publish(hb, heartbeat_body("real-1", 100 + seq, 10).into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    stack
        .eventually(
            "real traffic committed",
            Duration::from_secs(15),
            || async {
                (stack.count("SELECT count(*) FROM node_usage_reports").await == 5
                    && stack
                        .count("SELECT last_seq FROM node_liveness WHERE node_id = 'real-1'")
                        .await
                        == 105)
                    .then_some(())
            },
        )
        .await;
    // Replays of old messages, long after, under new message ids and with
    // altered counters: the first write of each sequence stands, an old
    // heartbeat never rolls the node back.
    for seq in 1..=5 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("replay-{seq}").as_str());
        js.publish_with_headers(usage, headers, usage_body("real-1", seq, 1_000_000).into())
            .await
            .unwrap()
            .await
            .unwrap();
        js.publish(hb, heartbeat_body("real-1", 100 + seq, 10).into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // A marker after the replays: once it is in, the replays were processed.
    js.publish(usage, usage_body("real-1", 6, 6).into())
        .await
        .unwrap()
        .await
        .unwrap();
    stack
        .eventually("marker committed", Duration::from_secs(15), || async {
            (stack.count("SELECT count(*) FROM node_usage_reports").await == 6).then_some(())
        })
        .await;
    assert_eq!(
        stack
            .count("SELECT sum(decisions)::bigint FROM node_usage_reports")
            .await,
        21,
        "replays changed no counter"
    );
    assert_eq!(
        stack
            .count("SELECT last_seq FROM node_liveness WHERE node_id = 'real-1'")
            .await,
        105
    );
    assert_eq!(
        stack.count("SELECT count(*) FROM dead_letters").await,
        forged.len() as i64
    );
}

/// One batch as the ingest worker builds it: usage, SLO and enforcement
/// summaries of node `node` (org acme, tenant prod) for the given sequence
/// numbers, each counting `seq * scale`.
fn summaries_batch(node: &str, seqs: &[i64], scale: i64) -> ritma_db::ingest::IngestBatch {
    use ritma_db::ingest::*;
    let start = chrono::Utc::now() - chrono::Duration::minutes(5);
    let period = |seq: i64| PeriodRow {
        origin: Origin {
            stream_seq: seq,
            subject: format!("ritma.acme.prod.node.{node}.usage"),
            org_id: "acme".into(),
            tenant_id: "prod".into(),
            node_id: node.into(),
        },
        seq,
        sent_at: start,
        period_start: start,
        period_end: start + chrono::Duration::seconds(10),
    };
    IngestBatch {
        usage: seqs
            .iter()
            .map(|&seq| UsageRow {
                period: period(seq),
                decisions: seq * scale,
                dig_files: 0,
                storage_bytes: 0,
                snapshot_exports: 0,
            })
            .collect(),
        slo: seqs
            .iter()
            .map(|&seq| SloRow {
                period: period(seq),
                counts: vec![ritma_protocol::SloCount {
                    component: "agent".into(),
                    operation: "sync".into(),
                    outcome: "ok".into(),
                    count: (seq * scale).unsigned_abs(),
                }],
            })
            .collect(),
        events: seqs
            .iter()
            .map(|&seq| EnforcementRow {
                period: period(seq),
                allow: seq * scale,
                deny: 0,
                throttle: 0,
                isolate: 0,
            })
            .collect(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_repeating_stored_summaries_commits_only_its_new_rows_once() {
    use ritma_db::ingest::{AdmittedClaims, KeepAllDeadLetters, OfflinePolicy, ingest_commit};
    let stack = TestStack::start().await.unwrap();
    let admitted = AdmittedClaims::default();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 1).await;
    let (status, _, _) = stack.enroll_raw(&token, "rep-1").await;
    assert_eq!(status, 200);
    let policy = OfflinePolicy {
        intervals: 3,
        grace_secs: 2,
        flapping: ritma_db::flapping::FlapPolicy::OFF,
    };
    let totals = || async {
        (
            stack
                .count("SELECT coalesce(sum(decisions), 0)::bigint FROM node_usage_reports")
                .await,
            stack
                .count("SELECT coalesce(sum(decisions), 0)::bigint FROM usage_hourly")
                .await,
            stack
                .count("SELECT coalesce(sum(count), 0)::bigint FROM slo_hourly")
                .await,
            stack
                .count("SELECT coalesce(sum(allow_count), 0)::bigint FROM enforcement_hourly")
                .await,
        )
    };

    let first = ingest_commit(
        &stack.pool,
        summaries_batch("rep-1", &[1, 2, 3], 1),
        policy,
        &admitted,
        &KeepAllDeadLetters,
    )
    .await
    .unwrap();
    assert_eq!(
        first.summaries_inserted, 9,
        "3 usage + 3 SLO + 3 enforcement"
    );
    assert_eq!(totals().await, (6, 6, 6, 6));

    // A redelivered 3 with other counters, a new 4 twice in the batch, a
    // new 5: the new rows are stored and rolled up once, the stored one stands.
    let second = ingest_commit(
        &stack.pool,
        summaries_batch("rep-1", &[3, 4, 4, 5], 1000),
        policy,
        &admitted,
        &KeepAllDeadLetters,
    )
    .await
    .unwrap();
    assert_eq!(second.summaries_inserted, 6, "4 and 5 of each kind");
    assert!(second.dead_letters.is_empty());
    assert_eq!(totals().await, (9006, 9006, 9006, 9006));
    assert_eq!(
        stack
            .count("SELECT decisions FROM node_usage_reports WHERE node_id = 'rep-1' AND seq = 3")
            .await,
        3
    );

    // The same batch again changes nothing.
    let again = ingest_commit(
        &stack.pool,
        summaries_batch("rep-1", &[3, 4, 4, 5], 1000),
        policy,
        &admitted,
        &KeepAllDeadLetters,
    )
    .await
    .unwrap();
    assert_eq!(again.summaries_inserted, 0);
    assert_eq!(totals().await, (9006, 9006, 9006, 9006));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hourly_rollups_sum_per_key_and_utc_hour_and_saturate_rather_than_fail() {
    use ritma_db::ingest::{AdmittedClaims, KeepAllDeadLetters, OfflinePolicy, ingest_commit};
    let stack = TestStack::start().await.unwrap();
    let admitted = AdmittedClaims::default();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 2).await;
    for node in ["roll-1", "roll-2"] {
        let (status, _, _) = stack.enroll_raw(&token, node).await;
        assert_eq!(status, 200);
    }
    let policy = OfflinePolicy {
        intervals: 3,
        grace_secs: 2,
        flapping: ritma_db::flapping::FlapPolicy::OFF,
    };
    let hour = |h: u32| {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 29)
            .and_then(|d| d.and_hms_opt(h, 0, 0))
            .map(|t| t.and_utc())
            .unwrap()
    };
    // Node roll-1: seqs 1-2 start in the 10:00 hour (one at 10:59:59), 3 at
    // 11:00; node roll-2: seq 1 at 10:00. SLO rows: two outcomes each.
    let mut batch = summaries_batch("roll-1", &[1, 2, 3], 1);
    batch.usage.extend(summaries_batch("roll-2", &[1], 1).usage);
    batch
        .events
        .extend(summaries_batch("roll-2", &[1], 1).events);
    let starts = [
        hour(10),
        hour(11) - chrono::Duration::seconds(1),
        hour(11),
        hour(10),
    ];
    for (row, start) in batch.usage.iter_mut().zip(starts) {
        row.period.period_start = start;
    }
    for (row, start) in batch.events.iter_mut().zip(starts) {
        row.period.period_start = start;
    }
    for (row, start) in batch.slo.iter_mut().zip(starts) {
        row.period.period_start = start;
        let mut failed = row.counts[0].clone();
        failed.outcome = "error".into();
        failed.count = 100;
        row.counts.push(failed);
    }
    let done = ingest_commit(&stack.pool, batch, policy, &admitted, &KeepAllDeadLetters)
        .await
        .unwrap();
    assert_eq!(done.summaries_inserted, 3 + 4 + 4);
    let rows = |sql: &'static str| {
        let pool = stack.pool.clone();
        async move {
            sqlx::query_as::<_, (String, chrono::DateTime<chrono::Utc>, String, i64)>(sql)
                .fetch_all(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        rows(
            "SELECT org_id || '/' || tenant_id, hour, '', decisions FROM usage_hourly ORDER BY hour"
        )
        .await,
        vec![
            ("acme/prod".into(), hour(10), String::new(), 1 + 2 + 1),
            ("acme/prod".into(), hour(11), String::new(), 3),
        ],
        "usage is rolled up per org and tenant: both nodes in one 10:00 bucket"
    );
    assert_eq!(
        rows(
            "SELECT node_id, hour, '', allow_count FROM enforcement_hourly ORDER BY node_id, hour"
        )
        .await,
        vec![
            ("roll-1".into(), hour(10), String::new(), 1 + 2),
            ("roll-1".into(), hour(11), String::new(), 3),
            ("roll-2".into(), hour(10), String::new(), 1),
        ]
    );
    assert_eq!(
        rows(
            "SELECT node_id, hour, outcome, count FROM slo_hourly ORDER BY node_id, hour, outcome"
        )
        .await,
        vec![
            ("roll-1".into(), hour(10), "error".into(), 200),
            ("roll-1".into(), hour(10), "ok".into(), 1 + 2),
            ("roll-1".into(), hour(11), "error".into(), 100),
            ("roll-1".into(), hour(11), "ok".into(), 3),
        ]
    );

    // Counters at the stored maximum, within one batch and across batches:
    // the rollup stays at the maximum and the batches still commit.
    for seqs in [&[10, 11][..], &[12]] {
        let mut batch = summaries_batch("roll-2", seqs, 1);
        for row in &mut batch.usage {
            row.period.period_start = hour(12);
            row.decisions = i64::MAX;
        }
        for row in &mut batch.slo {
            row.period.period_start = hour(12);
            row.counts[0].count = i64::MAX as u64;
        }
        let done = ingest_commit(&stack.pool, batch, policy, &admitted, &KeepAllDeadLetters)
            .await
            .unwrap();
        assert_eq!(done.summaries_inserted, 3 * seqs.len() as u64);
    }
    assert_eq!(
        stack
            .count("SELECT decisions FROM usage_hourly WHERE hour = '2026-11-29T12:00:00Z'")
            .await,
        i64::MAX
    );
    assert_eq!(
        stack
            .count("SELECT count FROM slo_hourly WHERE node_id = 'roll-2' AND hour = '2026-11-29T12:00:00Z'")
            .await,
        i64::MAX
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_remembered_as_active_is_refused_once_decommissioned_or_claimed_elsewhere() {
    use ritma_db::ingest::{AdmittedClaims, KeepAllDeadLetters, OfflinePolicy, ingest_commit};
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 2).await;
    for node in ["keep-1", "gone-1"] {
        let (status, _, _) = stack.enroll_raw(&token, node).await;
        assert_eq!(status, 200);
    }
    let policy = OfflinePolicy {
        intervals: 3,
        grace_secs: 2,
        flapping: ritma_db::flapping::FlapPolicy::OFF,
    };
    // One memory across batches, as a controller's workers share it.
    let admitted = AdmittedClaims::default();
    let both = |a: &str, b: &str, seq: i64| {
        let mut batch = summaries_batch(a, &[seq], 1);
        let other = summaries_batch(b, &[seq], 1);
        batch.usage.extend(other.usage);
        batch.slo.extend(other.slo);
        batch.events.extend(other.events);
        batch
    };
    let first = ingest_commit(
        &stack.pool,
        both("keep-1", "gone-1", 1),
        policy,
        &admitted,
        &KeepAllDeadLetters,
    )
    .await
    .unwrap();
    assert_eq!(first.summaries_inserted, 6);
    assert!(first.dead_letters.is_empty());

    let (status, _) = stack
        .api(
            reqwest::Method::POST,
            "/api/orgs/acme/nodes/gone-1/decommission",
            None,
        )
        .await;
    assert_eq!(status, 200);
    // Both nodes were admitted a moment ago; only the active one still is.
    let second = ingest_commit(
        &stack.pool,
        both("keep-1", "gone-1", 2),
        policy,
        &admitted,
        &KeepAllDeadLetters,
    )
    .await
    .unwrap();
    assert_eq!(second.summaries_inserted, 3, "keep-1's three summaries");
    assert_eq!(second.dead_letters.len(), 3, "gone-1's three summaries");
    assert!(
        second
            .dead_letters
            .iter()
            .all(|d| d.reason == "unknown_node" && d.subject.contains("gone-1"))
    );

    // The active node named under another tenant is refused, though the
    // same node under its own tenant is remembered as active.
    let mut elsewhere = summaries_batch("keep-1", &[3], 1);
    for origin in elsewhere
        .usage
        .iter_mut()
        .map(|r| &mut r.period.origin)
        .chain(elsewhere.slo.iter_mut().map(|r| &mut r.period.origin))
        .chain(elsewhere.events.iter_mut().map(|r| &mut r.period.origin))
    {
        origin.tenant_id = "staging".into();
    }
    let third = ingest_commit(
        &stack.pool,
        elsewhere,
        policy,
        &admitted,
        &KeepAllDeadLetters,
    )
    .await
    .unwrap();
    assert_eq!(third.summaries_inserted, 0);
    assert_eq!(third.dead_letters.len(), 3);
    assert_eq!(
        stack
            .count("SELECT count(*) FROM node_usage_reports WHERE node_id = 'gone-1'")
            .await,
        1,
        "only the summary from before the decommission"
    );
    assert_eq!(
        stack
            .count("SELECT count(*) FROM node_usage_reports WHERE node_id = 'keep-1'")
            .await,
        2
    );
}
