//! Offline from the broker (issue 20): the controller follows the NATS
//! servers' connection events and marks a node offline, with the reason,
//! within 1 s plus the reconnect grace of its last connection closing;
//! heartbeat deadlines stay the backstop for half-open connections; a node
//! is named only by its authenticated user key; a flapping node shows as
//! `flapping` (one transition) instead of flooding transitions.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use nkeys::KeyPair;
use ritma_protocol::broker_events::BrokerClientEvent;
use ritma_protocol::subjects::{self, BrokerConnection};
use ritma_tests::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The bound for a closed connection: 1 s plus the default grace (1.5 s), rounded up.
const CLOSED_BOUND: Duration = Duration::from_secs(3);

/// (from, to, reason) of every published transition of `node`, oldest first.
async fn history(stack: &TestStack, node: &str) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT from_status, to_status, reason FROM node_status_history WHERE node_id = $1 ORDER BY id",
    )
    .bind(node)
    .fetch_all(&stack.pool)
    .await
    .unwrap()
}

async fn wait_status(stack: &TestStack, node: &str, status: &str, bound: Duration) -> Duration {
    let start = Instant::now();
    stack
        .eventually(&format!("{node} {status}"), bound, || async {
            (stack.node_status(node).await.as_deref() == Some(status)).then_some(())
        })
        .await;
    start.elapsed()
}

/// The real daemon binary (`ritma node`), so that it can be SIGKILLed and SIGSTOPped.
struct NodeProcess(Child);

impl NodeProcess {
    fn spawn(stack: &TestStack, token: &str, id: &str, heartbeat_secs: u32) -> Self {
        let state = stack.dir.path().join(format!("node-{id}"));
        let log = std::fs::File::create(stack.dir.path().join(format!("node-{id}.log"))).unwrap();
        let child = Command::new(ritma_binary())
            .arg("node")
            .env("RITMA_NODE_CONTROLLER_URL", stack.api_url())
            .env("RITMA_ENROLL_TOKEN", token)
            .env("RITMA_STATE_DIR", &state)
            .env("RITMA_NODE_ID", id)
            .env("RITMA_HEARTBEAT_SECS", heartbeat_secs.to_string())
            .env("RITMA_SUMMARY_SECS", "60")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Self(child)
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Publish one heartbeat of `node` over its own connection (JetStream-acked).
async fn beat(client: &async_nats::Client, org: &str, tenant: &str, node: &str, seq: u64) {
    let js = async_nats::jetstream::new(client.clone());
    js.publish(
        format!("ritma.{org}.{tenant}.node.{node}.heartbeat"),
        heartbeat_body(node, seq, 30).into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

/// A bus connection made by hand, so its CONNECT can carry what a client
/// chooses: a connection name and an `nkey` option naming another node.
async fn raw_connect(
    port: u16,
    jwt: &str,
    key: &KeyPair,
    name: &str,
    claimed_nkey: &str,
) -> BufReader<TcpStream> {
    let mut s = BufReader::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    let mut line = String::new();
    s.read_line(&mut line).await.unwrap();
    let info: Value = serde_json::from_str(line.trim().strip_prefix("INFO ").unwrap()).unwrap();
    let nonce = info["nonce"].as_str().unwrap();
    let sig = data_encoding::BASE64URL_NOPAD.encode(&key.sign(nonce.as_bytes()).unwrap());
    let connect = serde_json::json!({
        "verbose": false, "pedantic": false, "protocol": 1, "lang": "raw", "version": "0",
        "jwt": jwt, "sig": sig, "nkey": claimed_nkey, "name": name,
    });
    s.write_all(format!("CONNECT {connect}\r\nPING\r\n").as_bytes())
        .await
        .unwrap();
    loop {
        line.clear();
        let n = tokio::time::timeout(Duration::from_secs(5), s.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "server closed the raw connection");
        assert!(!line.starts_with("-ERR"), "raw connect refused: {line}");
        if line.starts_with("PONG") {
            return s;
        }
    }
}

/// The system account's view of connection events, as the controller reads them.
async fn broker_events(stack: &TestStack) -> async_nats::Subscriber {
    let sys = ritma_bus::connect::connect_as(
        std::slice::from_ref(&stack.nats.url),
        "test-sys-observer",
        stack.keys.system_user_jwt().unwrap(),
        &stack.keys.system_user,
    )
    .await
    .unwrap();
    let sub = sys
        .subscribe(subjects::broker_connection_events(
            BrokerConnection::Disconnect,
        ))
        .await
        .unwrap();
    // The SUB must reach the server before the events it should see.
    sys.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    sub
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemon_is_offline_from_the_broker_within_three_seconds() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 1).await;
    // A 5 s interval: its heartbeat deadline (3 x 5 s + 1 s) cannot explain 3 s.
    let node = NodeProcess::spawn(&stack, &token, "killed-1", 5);
    wait_status(&stack, "killed-1", "online", Duration::from_secs(60)).await;
    node.signal("-KILL");
    let took = wait_status(&stack, "killed-1", "offline", CLOSED_BOUND).await;
    let last = history(&stack, "killed-1").await.pop().unwrap();
    assert_eq!(
        last,
        (
            "online".into(),
            "offline".into(),
            "connection closed".into()
        )
    );
    eprintln!("SIGKILL to offline: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_daemon_with_its_socket_open_goes_offline_by_its_deadline_and_comes_back() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 1).await;
    let interval = 2;
    let node = NodeProcess::spawn(&stack, &token, "stopped-1", interval);
    wait_status(&stack, "stopped-1", "online", Duration::from_secs(60)).await;
    // Let the first heartbeats settle, then stop it mid-interval.
    tokio::time::sleep(Duration::from_millis(500)).await;
    node.signal("-STOP");
    let bound = Duration::from_secs(3 * u64::from(interval) + 2);
    let took = wait_status(&stack, "stopped-1", "offline", bound).await;
    let last = history(&stack, "stopped-1").await.pop().unwrap();
    assert!(
        last.2.starts_with("no heartbeat"),
        "a half-open connection is the heartbeat deadline's: {last:?}"
    );
    eprintln!("SIGSTOP to offline: {took:?}");
    node.signal("-CONT");
    wait_status(&stack, "stopped-1", "online", Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_inside_the_grace_or_an_overlapping_connection_makes_no_transition() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let (first, reply, key) = stack.enroll_connected("acme", "prod", "hop-1").await;
    let copy = |k: &KeyPair| KeyPair::from_seed(&k.seed().unwrap()).unwrap();
    beat(&first.client, "acme", "prod", "hop-1", 1).await;
    wait_status(&stack, "hop-1", "online", Duration::from_secs(10)).await;
    let before = history(&stack, "hop-1").await;

    // A credential refresh: the new connection opens before the old closes.
    let second = stack.connect_node(&reply, copy(&key)).await.unwrap();
    beat(&second.client, "acme", "prod", "hop-1", 2).await;
    first.client.drain().await.unwrap();
    // A reconnect inside the grace: closed, and open again 200 ms later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    second.client.drain().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let third = stack.connect_node(&reply, copy(&key)).await.unwrap();
    // Longer than 1 s + the grace.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(stack.node_status("hop-1").await.as_deref(), Some("online"));
    assert_eq!(history(&stack, "hop-1").await, before, "no transition");

    // The test can fail: once the last connection closes for good, offline.
    third.client.drain().await.unwrap();
    wait_status(&stack, "hop-1", "offline", CLOSED_BOUND).await;
    let last = history(&stack, "hop-1").await.pop().unwrap();
    assert_eq!(last.2, "connection closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_opened_while_the_controller_restarted_keeps_its_node_online() {
    let mut stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let (old, reply, key) = stack.enroll_connected("acme", "prod", "overlap-1").await;
    beat(&old.client, "acme", "prod", "overlap-1", 1).await;
    wait_status(&stack, "overlap-1", "online", Duration::from_secs(10)).await;
    let before = history(&stack, "overlap-1").await;

    // A credential refresh while no controller listens: the new controller
    // never sees this CONNECT, only the old connection's DISCONNECT.
    stack.controller.take().unwrap().stop().await;
    let new = stack
        .connect_node(&reply, KeyPair::from_seed(&key.seed().unwrap()).unwrap())
        .await
        .unwrap();
    // As a daemon does: it listens for its commands.
    let commands = ritma_protocol::NodeSubject::new(
        ritma_protocol::OrgId::new("acme").unwrap(),
        ritma_protocol::TenantId::new("prod").unwrap(),
        ritma_protocol::NodeId::new("overlap-1").unwrap(),
    )
    .commands_wildcard();
    let _listening = new.client.subscribe(commands).await.unwrap();
    stack.controller = Some(stack.start_controller(&|_| {}).await.unwrap());
    // Its subscriptions reach the server.
    tokio::time::sleep(Duration::from_secs(1)).await;
    old.client.drain().await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        stack.node_status("overlap-1").await.as_deref(),
        Some("online")
    );
    assert_eq!(history(&stack, "overlap-1").await, before, "no transition");

    // Its last connection closing is still seen.
    new.client.drain().await.unwrap();
    wait_status(&stack, "overlap-1", "offline", CLOSED_BOUND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_named_after_another_node_does_not_touch_that_node() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let (mallory, m_reply, m_key) = stack.enroll_connected("acme", "prod", "mallory").await;
    let (victim, _, _) = stack.enroll_connected("acme", "prod", "victim").await;
    beat(&mallory.client, "acme", "prod", "mallory", 1).await;
    beat(&victim.client, "acme", "prod", "victim", 1).await;
    wait_status(&stack, "victim", "online", Duration::from_secs(10)).await;
    wait_status(&stack, "mallory", "online", Duration::from_secs(10)).await;
    let victim_before = history(&stack, "victim").await;
    let mut events = broker_events(&stack).await;

    // Mallory's valid credentials, with the victim's node id as connection
    // name and the victim's public key as the `nkey` connect option.
    let victim_key: String = sqlx::query_scalar("SELECT public_key FROM nodes WHERE id = 'victim'")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    let spoof = raw_connect(
        stack.nats.port,
        m_reply["jwt"].as_str().unwrap(),
        &m_key,
        "victim",
        &victim_key,
    )
    .await;
    drop(spoof);

    // What the broker reports for it: the client's choices in `name` (and
    // possibly `user`), and the JWT it checked, whose subject is mallory's.
    let event = loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("disconnect event")
            .unwrap();
        let e: BrokerClientEvent = serde_json::from_slice(&msg.payload).unwrap();
        if e.client.name == "victim" {
            eprintln!(
                "spoofed disconnect event: {}",
                String::from_utf8_lossy(&msg.payload)
            );
            break e;
        }
    };
    assert_eq!(
        event.client.authenticated_user().as_deref(),
        Some(m_key.public_key().as_str())
    );
    // nats-server 2.9 reports the client's own `nkey` option as `user`:
    // trusting that field would have let mallory take the victim offline.
    eprintln!(
        "reported user is the claimed key: {}",
        event.client.user == victim_key
    );

    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(stack.node_status("victim").await.as_deref(), Some("online"));
    assert_eq!(history(&stack, "victim").await, victim_before);
    // Mallory's own node keeps its real connection open: online as well.
    assert_eq!(
        stack.node_status("mallory").await.as_deref(),
        Some("online")
    );

    // The victim's real connection closing is seen (the test can fail).
    victim.client.drain().await.unwrap();
    wait_status(&stack, "victim", "offline", CLOSED_BOUND).await;
    assert_eq!(
        stack.node_status("mallory").await.as_deref(),
        Some("online")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_node_makes_one_transition_then_recovers_after_a_quiet_window() {
    let window = 10;
    let stack = TestStack::start_with(|c| {
        c.flapping_transitions = 4;
        c.flapping_window_secs = window;
        c.offline_broker_grace_ms = 300;
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    let (first, reply, key) = stack.enroll_connected("acme", "prod", "flappy").await;
    let mut seq = 1;
    let mut steady = None;
    beat(&first.client, "acme", "prod", "flappy", seq).await;
    wait_status(&stack, "flappy", "online", Duration::from_secs(10)).await;
    first.client.drain().await.unwrap();
    // Eight real flips (offline, online, ...) within the window; `status` is
    // the node's real liveness, kept while flapping.
    for round in 0..4 {
        wait_status(&stack, "flappy", "offline", CLOSED_BOUND).await;
        let bus = stack
            .connect_node(&reply, KeyPair::from_seed(&key.seed().unwrap()).unwrap())
            .await
            .unwrap();
        seq += 1;
        beat(&bus.client, "acme", "prod", "flappy", seq).await;
        wait_status(&stack, "flappy", "online", Duration::from_secs(10)).await;
        if round < 3 {
            bus.client.drain().await.unwrap();
        } else {
            // Steady from here on: connected (heartbeat deadline 3 x 30 s).
            steady = Some(bus);
        }
    }
    let published = history(&stack, "flappy").await;
    let flapping: Vec<_> = published.iter().filter(|t| t.1 == "flapping").collect();
    assert_eq!(
        flapping.len(),
        1,
        "one transition to flapping: {published:?}"
    );
    assert_eq!(flapping[0].2, "flapping: 4 status changes in 10 s");
    // Enrolled, unseen->online, three flips, ->flapping: nothing after it
    // while it flaps.
    assert_eq!(published.len(), 6, "{published:?}");
    assert_eq!(published.last().unwrap().1, "flapping");

    // The API lists, filters and counts it as flapping.
    let (status, list) = stack
        .api(
            reqwest::Method::GET,
            "/api/orgs/acme/nodes?status=flapping",
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["status"], "flapping");
    let (_, summary) = stack
        .api(reqwest::Method::GET, "/api/orgs/acme/nodes/summary", None)
        .await;
    assert_eq!(summary["by_status"]["flapping"], 1, "{summary}");

    // Quiet for the window: back to its real status, with one transition.
    stack
        .eventually(
            "steady again",
            Duration::from_secs(window as u64 + 5),
            || async {
                let h = history(&stack, "flappy").await;
                (h.len() == 7).then_some(h)
            },
        )
        .await;
    let last = history(&stack, "flappy").await.pop().unwrap();
    assert_eq!(
        last,
        (
            "flapping".into(),
            "online".into(),
            "steady again: no status change in 10 s".into()
        )
    );
    let (_, list) = stack
        .api(
            reqwest::Method::GET,
            "/api/orgs/acme/nodes?status=online",
            None,
        )
        .await;
    assert_eq!(list["items"][0]["id"], "flappy", "{list}");
    drop(steady);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_names_a_node_only_by_its_key_in_its_own_org_and_a_later_heartbeat_wins() {
    use ritma_db::flapping::FlapPolicy;
    use ritma_db::presence::{BrokerDisconnect, nodes_mark_disconnected};
    let stack = TestStack::start_with(|c| c.offline_from_broker = false)
        .await
        .unwrap();
    stack.create_org("acme").await;
    stack.create_org("globex").await;
    let (bus, _, key) = stack.enroll_connected("acme", "prod", "keyed-1").await;
    beat(&bus.client, "acme", "prod", "keyed-1", 1).await;
    wait_status(&stack, "keyed-1", "online", Duration::from_secs(10)).await;
    let acme: String =
        sqlx::query_scalar("SELECT nats_account_public_key FROM orgs WHERE id = 'acme'")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    let globex: String =
        sqlx::query_scalar("SELECT nats_account_public_key FROM orgs WHERE id = 'globex'")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    let last_seen: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT last_seen_at FROM node_liveness WHERE node_id = 'keyed-1'")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    let gone = |account: String, user_key: String, at| BrokerDisconnect {
        account,
        user_key,
        at,
        reason: "connection closed".into(),
    };
    let later = last_seen + chrono::TimeDelta::seconds(1);
    let earlier = last_seen - chrono::TimeDelta::seconds(1);
    // Another org's account naming this node's key; a key that is no node's;
    // a disconnect older than the node's last heartbeat: nothing changes.
    for g in [
        gone(globex.clone(), key.public_key(), later),
        gone(acme.clone(), KeyPair::new_user().public_key(), later),
        gone(acme.clone(), key.public_key(), earlier),
    ] {
        let t = nodes_mark_disconnected(&stack.pool, std::slice::from_ref(&g), FlapPolicy::OFF)
            .await
            .unwrap();
        assert!(t.is_empty(), "{g:?} changed {t:?}");
        assert_eq!(
            stack.node_status("keyed-1").await.as_deref(),
            Some("online")
        );
    }
    // Its own key in its own org's account, after its last heartbeat: offline.
    let t = nodes_mark_disconnected(
        &stack.pool,
        &[gone(acme.clone(), key.public_key(), later)],
        FlapPolicy::OFF,
    )
    .await
    .unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].to.as_str(), t[0].reason.as_str()),
        ("offline", "connection closed")
    );
    assert_eq!(
        stack.node_status("keyed-1").await.as_deref(),
        Some("offline")
    );
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> Value {
    let r = http
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_another_server_of_the_cluster_is_offline_from_the_broker_within_the_bound() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    let keys = ritma_bus::BusKeys::load_or_create(&keys_dir).unwrap();
    let servers = ritma_devstack::nats::start_cluster(&dir.path().join("nats"), &keys, 3)
        .await
        .unwrap();
    let database_url = fresh_database().await.unwrap();
    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
    // The controller talks to the first server only; the node is on the third.
    let mut c = ritma_controller::Config::new(database_url, vec![servers[0].url.clone()], keys_dir);
    c.master_key = Some(MASTER_KEY.into());
    c.admin_token = Some(ADMIN_TOKEN.into());
    c.stream_replicas = 3;
    c.reconcile_ms = 200;
    c.offline_grace_secs = 1;
    c.ack_wait_secs = 3;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let controller = ritma_controller::Controller::build(c).await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let handle = tokio::spawn(controller.run(listener, stop.clone()));

    let http = reqwest::Client::new();
    post(
        &http,
        format!("{api}/api/orgs"),
        serde_json::json!({"id": "acme"}),
    )
    .await;
    let token = post(
        &http,
        format!("{api}/api/orgs/acme/enrollment-tokens"),
        serde_json::json!({"tenant_id": "prod", "max_uses": 1}),
    )
    .await;
    let key = KeyPair::new_user();
    let reply = post(
        &http,
        format!("{api}/api/nodes/register"),
        serde_json::json!({
            "token": token["token"], "public_key": key.public_key(), "hostname": "far-1",
            "agent_version": "test", "node_id": "far-1",
        }),
    )
    .await;
    let node = BusUser::connect(
        &servers[2].url,
        reply["jwt"].as_str().unwrap(),
        key,
        reply["inbox_prefix"].as_str(),
    )
    .await
    .unwrap();
    let status = || async {
        sqlx::query_scalar::<_, String>("SELECT status FROM nodes WHERE id = 'far-1'")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let start = Instant::now();
    loop {
        // JetStream on a fresh R3 stream may need a moment: retry the heartbeat.
        let js = async_nats::jetstream::new(node.client.clone());
        let sent = js
            .publish(
                "ritma.acme.prod.node.far-1.heartbeat",
                heartbeat_body("far-1", start.elapsed().as_millis() as u64 + 1, 30).into(),
            )
            .await;
        if let Ok(ack) = sent {
            let _ = tokio::time::timeout(Duration::from_secs(3), ack).await;
        }
        if status().await == "online" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "far-1 never online"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    node.client.drain().await.unwrap();
    let closed = Instant::now();
    while status().await != "offline" {
        assert!(
            closed.elapsed() < CLOSED_BOUND,
            "far-1 not offline within {CLOSED_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reason: String = sqlx::query_scalar(
        "SELECT reason FROM node_status_history WHERE node_id = 'far-1' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(reason, "connection closed");
    eprintln!(
        "closed on another server to offline: {:?}",
        closed.elapsed()
    );
    stop.cancel();
    let _ = handle.await;
}
