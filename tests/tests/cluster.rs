//! Scale-out on existing engines: a 3-server NATS cluster (routes, R3
//! streams) and two controllers sharing the durable consumer. During ingest
//! one NATS server and one controller stop, then come back: nothing is lost,
//! nothing is counted twice, offline detection and state changes go on.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use ritma_controller::{Config, Controller};
use ritma_tests::*;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const NODES: usize = 12;
const MESSAGES_PER_NODE: u64 = 400;

struct Cluster {
    _dir: tempfile::TempDir,
    keys_dir: std::path::PathBuf,
    servers: Vec<ritma_devstack::NatsServer>,
    database_url: String,
}

impl Cluster {
    fn urls(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.url.clone()).collect()
    }

    async fn controller(
        &self,
    ) -> (
        String,
        CancellationToken,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    ) {
        let mut c = Config::new(
            self.database_url.clone(),
            self.urls(),
            self.keys_dir.clone(),
        );
        c.master_key = Some(MASTER_KEY.into());
        c.admin_token = Some(ADMIN_TOKEN.into());
        c.stream_replicas = 3;
        c.reconcile_ms = 200;
        c.offline_grace_secs = 1;
        c.ack_wait_secs = 3;
        c.batch_size = 200;
        c.batch_wait_ms = 20;
        // Flapping off: on a loaded machine the failures can flip a node's
        // liveness six times (late heartbeats while the streams re-elect),
        // and a flapping node's final offline is shown as `flapping` instead
        // of published, which this test waits for. The gate has its own tests.
        c.flapping_transitions = 0;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let controller = Controller::build(c).await.unwrap();
        let stop = CancellationToken::new();
        let handle = tokio::spawn(controller.run(listener, stop.clone()));
        (url, stop, handle)
    }
}

async fn post(http: &reqwest::Client, url: &str, body: serde_json::Value) -> serde_json::Value {
    let r = http
        .post(url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

/// Publish one message until JetStream acks it (same Nats-Msg-Id on every retry).
async fn publish_acked(
    js: &jetstream::Context,
    subject: String,
    msg_id: String,
    body: Vec<u8>,
    retries: &AtomicU64,
) {
    loop {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id.as_str());
        let attempt = async {
            js.publish_with_headers(subject.clone(), headers, body.clone().into())
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(Duration::from_secs(3), attempt).await {
            Ok(Ok(_)) => return,
            _ => {
                retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_survives_losing_a_server_and_a_controller() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    let keys = ritma_bus::BusKeys::load_or_create(&keys_dir).unwrap();
    let servers = ritma_devstack::nats::start_cluster(&dir.path().join("nats"), &keys, 3)
        .await
        .unwrap();
    let cluster = Cluster {
        database_url: fresh_database().await.unwrap(),
        _dir: dir,
        keys_dir,
        servers,
    };
    let pool = sqlx::PgPool::connect(&cluster.database_url).await.unwrap();

    let (api_a, stop_a, handle_a) = cluster.controller().await;
    let (api_b, stop_b, handle_b) = cluster.controller().await;
    let http = reqwest::Client::new();
    post(&http, &format!("{api_a}/api/orgs"), json!({ "id": "acme" })).await;
    let token = post(
        &http,
        &format!("{api_b}/api/orgs/acme/enrollment-tokens"),
        json!({ "tenant_id": "prod", "max_uses": 100 }),
    )
    .await;
    let token = token["token"].as_str().unwrap().to_owned();

    // An integrator on the third server watches state changes.
    let ikey = nkeys::KeyPair::new_user();
    let creds = post(
        &http,
        &format!("{api_a}/api/orgs/acme/integrator-credentials"),
        json!({ "public_key": ikey.public_key() }),
    )
    .await;
    let watcher = BusUser::connect(
        &cluster.servers[2].url,
        creds["jwt"].as_str().unwrap(),
        ikey,
        None,
    )
    .await
    .unwrap();
    let mut states = watcher
        .client
        .subscribe("ritma.acme.*.state.>")
        .await
        .unwrap();
    watcher.client.flush().await.unwrap();

    // Simulated nodes, each with its own credentials, spread over the servers.
    let retries = Arc::new(AtomicU64::new(0));
    let mut publishers = Vec::new();
    for i in 0..NODES {
        let key = nkeys::KeyPair::new_user();
        let node = format!("n-{i:02}");
        let api = if i % 2 == 0 { &api_a } else { &api_b };
        let reply = http
            .post(format!("{api}/api/nodes/register"))
            .json(&json!({ "token": token, "public_key": key.public_key(), "hostname": node, "agent_version": "t", "node_id": node }))
            .send().await.unwrap().json::<serde_json::Value>().await.unwrap();
        let mut urls = cluster.urls();
        urls.rotate_left(i % 3);
        let client = ritma_bus::connect::connect(ritma_bus::connect::ConnectSpec {
            urls,
            name: node.clone(),
            jwt: ritma_bus::connect::SharedJwt::new(reply["jwt"].as_str().unwrap().to_owned()),
            key: Arc::new(key),
            inbox_prefix: reply["inbox_prefix"].as_str().map(str::to_owned),
            retry_initial: false,
        })
        .await
        .unwrap();
        let js = jetstream::new(client);
        let retries = retries.clone();
        publishers.push(tokio::spawn(async move {
            let nid = ritma_protocol::NodeId::new(node.clone()).unwrap();
            for seq in 1..=MESSAGES_PER_NODE {
                // Node 0 stops heartbeating halfway: it must go offline meanwhile.
                let (kind, body) = if seq % 10 == 0 && !(i == 0 && seq > MESSAGES_PER_NODE / 2) {
                    ("heartbeat", heartbeat_body(&node, seq, 1))
                } else {
                    ("usage", usage_body(&node, seq, seq))
                };
                let subject = format!("ritma.acme.prod.node.{node}.{kind}");
                publish_acked(
                    &js,
                    subject,
                    ritma_protocol::subjects::message_id(&nid, seq),
                    body,
                    &retries,
                )
                .await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }

    // Mid-ingest: one NATS server and one controller go away, then return.
    tokio::time::sleep(Duration::from_secs(2)).await;
    handle_a.abort();
    let _ = handle_a.await;
    drop(stop_a);
    let mut servers = cluster.servers;
    servers[1].stop();
    tokio::time::sleep(Duration::from_secs(4)).await;
    servers[1].restart().await.unwrap();
    let cluster = Cluster { servers, ..cluster };
    let (_api_a2, stop_a2, handle_a2) = cluster.controller().await;

    for p in publishers {
        p.await.unwrap();
    }
    let heartbeats_expected: i64 =
        (NODES as i64) * (MESSAGES_PER_NODE as i64 / 10) - (MESSAGES_PER_NODE as i64 / 20);
    let usage_expected = (NODES as i64) * (MESSAGES_PER_NODE as i64) - heartbeats_expected;
    let start = std::time::Instant::now();
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM node_usage_reports")
            .fetch_one(&pool)
            .await
            .unwrap();
        if n == usage_expected {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{n} of {usage_expected} usage reports committed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await; // any redelivery would land now
    let (rows, sum): (i64, i64) =
        sqlx::query_as("SELECT count(*), sum(decisions)::bigint FROM node_usage_reports")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(rows, usage_expected, "exactly once");
    let expected_sum: i64 = (0..NODES)
        .map(|i| {
            (1..=MESSAGES_PER_NODE as i64)
                .filter(|s| !(s % 10 == 0 && !(i == 0 && *s > MESSAGES_PER_NODE as i64 / 2)))
                .sum::<i64>()
        })
        .sum();
    assert_eq!(sum, expected_sum, "no double counting");
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(dead, 0);

    // Offline detection kept working: every node that stopped heartbeating is offline,
    // and the watcher on another server saw the state changes. The wait is
    // generous (the cluster may still be settling on a loaded machine); the
    // detection bound itself is tested in `presence.rs`.
    let mut offline_seen = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while offline_seen.len() < NODES {
        let Ok(Some(msg)) = tokio::time::timeout_at(deadline, states.next()).await else {
            break;
        };
        let v: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap();
        if v["to"] == "offline" {
            offline_seen.insert(v["node_id"].as_str().unwrap().to_owned());
        }
    }
    // What the database says of the nodes not seen going offline, for the
    // failure message (history: the transitions each was recorded with).
    let unseen: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        "SELECT n.id, n.shown_status,
                ARRAY(SELECT h.from_status || '->' || h.to_status FROM node_status_history h
                      WHERE h.node_id = n.id ORDER BY h.id)
         FROM nodes n WHERE NOT (n.id = ANY($1)) ORDER BY n.id",
    )
    .bind(offline_seen.iter().cloned().collect::<Vec<_>>())
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        offline_seen.contains("n-00"),
        "node 0 went silent first: seen {offline_seen:?}; not seen: {unseen:?}"
    );
    assert_eq!(
        offline_seen.len(),
        NODES,
        "all nodes are silent at the end: seen {offline_seen:?}; not seen: {unseen:?}"
    );
    eprintln!(
        "publish retries during the failures: {}",
        retries.load(Ordering::Relaxed)
    );

    stop_a2.cancel();
    stop_b.cancel();
    let _ = handle_a2.await;
    let _ = handle_b.await;
}
