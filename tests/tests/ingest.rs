//! Daemon → JetStream → controller → Postgres → state change on the bus.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::time::Duration;

use futures::StreamExt;
use ritma_tests::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolled_daemon_goes_online_and_the_change_is_published() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    // An integrator of the org watches the state subjects with read-only creds.
    let integrator = integrator(&stack, "acme", None).await;
    let mut states = integrator
        .client
        .subscribe("ritma.acme.*.state.>")
        .await
        .unwrap();
    integrator.client.flush().await.unwrap();

    let token = stack.create_token("acme", "prod", 1).await;
    let daemon = stack
        .spawn_daemon(Some(&token), stack.dir.path().join("node-a"), 1, 1)
        .await
        .unwrap();
    let node = daemon.node_id.clone();

    stack
        .eventually(
            "node online in Postgres",
            Duration::from_secs(15),
            || async {
                (stack.node_status(&node).await.as_deref() == Some("online")).then_some(())
            },
        )
        .await;
    let change = next_status_change(&mut states, &node, "online").await;
    assert_eq!(change["from"], "unseen");
    assert_eq!(change["tenant_id"], "prod");
    assert!(change["event_id"].as_i64().unwrap() > 0);

    // Summaries land as rows too.
    stack
        .eventually("usage rows", Duration::from_secs(10), || async {
            (stack
                .count(&format!(
                    "SELECT count(*) FROM node_usage_reports WHERE node_id = '{node}'"
                ))
                .await
                > 0)
            .then_some(())
        })
        .await;

    // A graceful stop says so: offline at once, with the reason.
    daemon.stop().await.unwrap();
    let change = next_status_change(&mut states, &node, "offline").await;
    assert_eq!(change["reason"], "node stopped gracefully");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_goes_offline_within_its_deadline_and_back_online() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 1).await;
    let (status, reply, key) = stack.enroll_raw(&token, "quiet-1").await;
    assert_eq!(status, 200, "{reply}");
    let node = stack.connect_node(&reply, key).await.unwrap();
    let js = async_nats::jetstream::new(node.client.clone());
    let subject = "ritma.acme.prod.node.quiet-1.heartbeat";
    js.publish(subject, heartbeat_body("quiet-1", 1, 1).into())
        .await
        .unwrap()
        .await
        .unwrap();
    stack
        .wait_status("quiet-1", "online", Duration::from_secs(10))
        .await;
    // Interval 1 s: offline after 3 x 1 s + 1 s grace (plus one reconcile tick).
    let silent_since = std::time::Instant::now();
    stack
        .wait_status("quiet-1", "offline", Duration::from_secs(10))
        .await;
    let took = silent_since.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "went offline too early: {took:?}"
    );
    let history: Vec<(String, String)> = sqlx::query_as(
        "SELECT from_status, to_status FROM node_status_history WHERE node_id = 'quiet-1' ORDER BY id",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    assert!(
        history.contains(&("online".into(), "stale".into())),
        "{history:?}"
    );
    assert!(
        history.contains(&("stale".into(), "offline".into())),
        "{history:?}"
    );

    js.publish(subject, heartbeat_body("quiet-1", 2, 1).into())
        .await
        .unwrap()
        .await
        .unwrap();
    stack
        .wait_status("quiet-1", "online", Duration::from_secs(10))
        .await;
    // An old, replayed heartbeat changes nothing.
    js.publish(subject, heartbeat_body("quiet-1", 1, 1).into())
        .await
        .unwrap()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let last_seq: i64 =
        sqlx::query_scalar("SELECT last_seq FROM node_liveness WHERE node_id = 'quiet-1'")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!(last_seq, 2);
}

async fn next_status_change(sub: &mut async_nats::Subscriber, node: &str, to: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let msg = tokio::time::timeout_at(deadline, sub.next())
            .await
            .unwrap_or_else(|_| panic!("no state change of {node} to {to}"))
            .expect("subscription open");
        let v: Value = serde_json::from_slice(&msg.payload).unwrap();
        if v["node_id"] == node && v["kind"] == "status" && v["to"] == to {
            assert!(
                msg.subject
                    .as_str()
                    .ends_with(&format!(".state.node.{node}"))
            );
            return v;
        }
    }
}

/// When a fleet falls due faster than the reconciler works, offline
/// deadlines are served first, and a node whose offline deadline passed
/// before it was marked stale goes straight to offline (one transition, not
/// two); a node only past its stale deadline turns stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdue_node_past_its_offline_deadline_skips_stale() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 2).await;
    for id in ["late-1", "late-2"] {
        let (status, reply, _) = stack.enroll_raw(&token, id).await;
        assert_eq!(status, 200, "{reply}");
    }
    // As if both had heartbeats long ago that nobody reconciled yet (one
    // statement, so the reconciler never sees half of it).
    sqlx::query(
        "WITH live AS (
             UPDATE node_liveness SET last_seen_at = now() - interval '1 hour',
                    stale_after = now() - interval '10 seconds',
                    offline_after = CASE node_id WHEN 'late-1' THEN now() - interval '5 seconds'
                                                 ELSE now() + interval '1 hour' END
             WHERE node_id IN ('late-1', 'late-2')
         )
         UPDATE nodes SET status = 'online', status_changed_at = now() - interval '1 hour',
                interval_secs = 10
         WHERE id IN ('late-1', 'late-2')",
    )
    .execute(&stack.pool)
    .await
    .unwrap();
    stack
        .eventually(
            "late-1 offline, late-2 stale",
            Duration::from_secs(10),
            || async {
                (stack.node_status("late-1").await.as_deref() == Some("offline")
                    && stack.node_status("late-2").await.as_deref() == Some("stale"))
                .then_some(())
            },
        )
        .await;
    let history = |id: &'static str| {
        let pool = stack.pool.clone();
        async move {
            sqlx::query_as::<_, (String, String)>(
                "SELECT from_status, to_status FROM node_status_history WHERE node_id = $1 ORDER BY id",
            )
            .bind(id)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let late1 = history("late-1").await;
    assert!(
        late1.contains(&("online".into(), "offline".into())),
        "{late1:?}"
    );
    assert!(!late1.iter().any(|(_, to)| to == "stale"), "{late1:?}");
    let late2 = history("late-2").await;
    assert!(
        late2.contains(&("online".into(), "stale".into())),
        "{late2:?}"
    );
    assert!(!late2.iter().any(|(_, to)| to == "offline"), "{late2:?}");
}

/// A whole fleet falling due at once (more than two claim batches) is
/// drained by claims running side by side: every node ends where its
/// deadlines put it with exactly one transition each (none claimed twice,
/// none left behind), and the org's counts agree with its rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_fleet_falling_due_at_once_is_marked_once_per_node() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("fleet").await;
    let nodes = 2 * ritma_db::reconcile::BATCH as i32 + 2_500;
    // Their liveness rows (made by the insert) carry no deadline yet.
    sqlx::query(
        "INSERT INTO nodes (id, org_id, tenant_id, public_key, hostname, status, interval_secs)
         SELECT 'due-' || lpad(i::text, 6, '0'), 'fleet', 'prod', 'UDUE' || i, 'due-' || i,
                CASE WHEN i % 4 = 0 THEN 'degraded' ELSE 'online' END, 10
         FROM generate_series(1, $1) i",
    )
    .bind(nodes)
    .execute(&stack.pool)
    .await
    .unwrap();
    // Odd nodes are past their offline deadline, even ones only past their
    // stale deadline; one statement, so no pass sees half of it.
    sqlx::query(
        "UPDATE node_liveness SET last_seen_at = now() - interval '1 hour',
                stale_after = now() - interval '10 seconds',
                offline_after = CASE WHEN substr(node_id, 5)::int % 2 = 1
                                     THEN now() - interval '5 seconds'
                                     ELSE now() + interval '1 hour' END
         WHERE org_id = 'fleet'",
    )
    .execute(&stack.pool)
    .await
    .unwrap();
    let recorded = || async {
        sqlx::query_as::<_, (String, String, String)>(
            "SELECT h.node_id, h.from_status, h.to_status FROM node_status_history h
             JOIN nodes n ON n.id = h.node_id WHERE n.org_id = 'fleet' ORDER BY h.node_id",
        )
        .fetch_all(&stack.pool)
        .await
        .unwrap()
    };
    stack
        .eventually("every node marked", Duration::from_secs(60), || async {
            (recorded().await.len() >= nodes as usize).then_some(())
        })
        .await;
    // Nothing more comes after a moment (a node claimed twice would).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let history = recorded().await;
    assert_eq!(history.len(), nodes as usize);
    for (i, (node, from, to)) in history.iter().enumerate() {
        let n = i + 1;
        assert_eq!(node, &format!("due-{n:06}"));
        let was = if n % 4 == 0 { "degraded" } else { "online" };
        let now = if n % 2 == 1 { "offline" } else { "stale" };
        assert_eq!((from.as_str(), to.as_str()), (was, now), "{node}");
    }
    let statuses: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM nodes WHERE org_id = 'fleet' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    let half = i64::from(nodes / 2);
    assert_eq!(
        statuses,
        vec![("offline".to_owned(), half), ("stale".to_owned(), half)]
    );
    // The dashboard's counts (per-statement deltas) agree with the rows.
    let counted: Vec<(String, i64)> = sqlx::query_as(
        "SELECT bucket, sum(delta)::bigint FROM node_count_deltas
         WHERE org_id = 'fleet' GROUP BY 1 HAVING sum(delta) <> 0 ORDER BY 1",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    assert_eq!(
        counted,
        vec![
            ("status:offline".to_owned(), half),
            ("status:stale".to_owned(), half)
        ]
    );
}
