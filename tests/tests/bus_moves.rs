//! Restarts that move addresses: the bus moving under a running daemon, and
//! `ritma up` started again on the same data (new ports for everything).
//! Nodes come back online without enrolling again and lose nothing.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ritma_tests::*;
use serde_json::Value;

/// The bus moves to another port under a running daemon that has no
/// configured bus address: the daemon asks the controller where the bus
/// is, follows it, keeps the new address for its next start, and every
/// message it made meanwhile arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_daemon_follows_the_bus_to_its_new_address() {
    let interval = 2;
    let mut stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 1).await;
    let dir = stack.dir.path().join("mover");
    let daemon = stack
        .spawn_daemon_with(Some(&token), dir.clone(), interval, 60, |a| {
            a.node_id = Some("mover-1".into())
        })
        .await
        .unwrap();
    stack
        .wait_status("mover-1", "online", Duration::from_secs(15))
        .await;
    let old_url = stack.nats.url.clone();

    // The control plane restarts with the bus on another port; the
    // controller hands out the bus's new address from then on.
    let controller_addr = stack.stop_controller().await;
    stack.nats.move_to_new_port().await.unwrap();
    assert_ne!(stack.nats.url, old_url);
    stack.start_controller_at(&controller_addr).await.unwrap();
    let moved_at = Instant::now();

    let seq_before: u64 = stack
        .count("SELECT COALESCE(max(last_seq), 0) FROM node_liveness WHERE node_id = 'mover-1'")
        .await
        .try_into()
        .unwrap();
    stack
        .eventually(
            "heartbeats through the moved bus",
            Duration::from_secs(30),
            || async {
                let seq = stack
                    .count("SELECT COALESCE(max(last_seq), 0) FROM node_liveness WHERE node_id = 'mover-1'")
                    .await;
                (u64::try_from(seq).unwrap() > seq_before + 1).then_some(())
            },
        )
        .await;
    eprintln!(
        "back on the moved bus {:.1} s after the move (interval {interval} s)",
        moved_at.elapsed().as_secs_f64()
    );
    assert_eq!(
        stack.node_status("mover-1").await.as_deref(),
        Some("online")
    );

    // Kept for the next start.
    let identity: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("identity.json")).unwrap()).unwrap();
    assert_eq!(identity["nats_urls"], serde_json::json!([stack.nats.url]));

    // Nothing made while the bus was away is missing.
    daemon.stop().await.unwrap();
    let mut seqs: Vec<u64> = stack
        .node_stream("mover-1")
        .await
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    seqs.sort_unstable();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "every sequence number from 1, once");
}

/// `ritma up`, stopped with Ctrl-C (SIGTERM), then `ritma up` again on the
/// same data: everything gets new ports, and the demo nodes come back
/// online within three heartbeat intervals of the stack being ready,
/// without enrolling again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ritma_up_again_on_the_same_data_brings_the_demo_nodes_back() {
    let interval: u64 = 5;
    let data = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let mut first_ports = None;
    for run in ["first", "second"] {
        let mut up = UpProcess::start(data.path(), interval);
        let stack = up.wait_ready(Duration::from_secs(180));
        let ready_at = Instant::now();
        let api = stack["api_url"].as_str().unwrap().to_owned();
        let token = stack["admin_token"].as_str().unwrap().to_owned();
        let names: Vec<String> = stack["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names.len(), 3, "{stack}");
        let deadline = ready_at + Duration::from_secs(3 * interval);
        let mut statuses = Value::Null;
        while Instant::now() < deadline {
            statuses = http
                .get(format!("{api}/api/orgs/demo/nodes"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let online = statuses["items"]
                .as_array()
                .map(|items| items.iter().filter(|n| n["status"] == "online").count());
            if online == Some(names.len()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let items = statuses["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            items.len(),
            3,
            "{run} run: no node enrolled twice: {statuses}"
        );
        assert!(
            items.iter().all(|n| n["status"] == "online"),
            "{run} run: every demo node online within {} s: {statuses}",
            3 * interval
        );
        eprintln!(
            "{run} run: all demo nodes online {:.1} s after the stack was ready",
            ready_at.elapsed().as_secs_f64()
        );
        let ports = (stack["api_url"].clone(), stack["nats_url"].clone());
        match &first_ports {
            None => first_ports = Some(ports),
            // The second run really moved: otherwise this proves nothing.
            Some(first) => assert_ne!(first, &ports, "the second run reused the ports"),
        }
        up.stop();
    }
}

/// `ritma up --no-console` as a child process, stopped with SIGTERM.
struct UpProcess {
    child: Child,
    data: std::path::PathBuf,
}

impl UpProcess {
    fn start(data: &Path, heartbeat_secs: u64) -> Self {
        let _ = std::fs::remove_file(data.join("stack.json"));
        let child = Command::new(ritma_binary())
            .args(["up", "--no-console", "--heartbeat-secs"])
            .arg(heartbeat_secs.to_string())
            .arg("--data-dir")
            .arg(data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            child,
            data: data.to_path_buf(),
        }
    }

    fn wait_ready(&mut self, timeout: Duration) -> Value {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(text) = std::fs::read_to_string(self.data.join("stack.json"))
                && let Ok(v) = serde_json::from_str::<Value>(&text)
            {
                return v;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("ritma up exited early: {status}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("ritma up not ready after {timeout:?}");
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("ritma up did not stop within 30 s of SIGTERM");
    }
}

impl Drop for UpProcess {
    /// A failed test still stops what `ritma up` started (SIGTERM lets it
    /// stop its servers and nodes; SIGKILL would orphan them).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let _ = self.child.wait();
        }
    }
}

/// A bus asked to start on a port another process already listens on
/// fails with the server's own reason, instead of taking that listener for
/// the started server (a port picked free can be taken before the server
/// binds it; on a picked port the start tries other ports).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_whose_port_is_taken_fails_instead_of_answering_for_another_listener() {
    let dir = tempfile::tempdir().unwrap();
    let keys = ritma_bus::BusKeys::load_or_create(&dir.path().join("keys")).unwrap();
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let started = ritma_devstack::NatsServer::start(ritma_devstack::NatsServerSpec {
        data_dir: &dir.path().join("nats"),
        keys: &keys,
        port: taken,
        name: "squatted",
        cluster: None,
        tls: None,
    })
    .await;
    let err = match started {
        Ok(server) => panic!(
            "started on a taken port: pid {:?}, url {}",
            server.pid(),
            server.url
        ),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("exited at start"), "{err}");
    assert!(err.contains("address already in use"), "{err}");

    // On a port left to the start, it runs and answers.
    let server = ritma_devstack::NatsServer::start(ritma_devstack::NatsServerSpec {
        data_dir: &dir.path().join("nats2"),
        keys: &keys,
        port: 0,
        name: "picked",
        cluster: None,
        tls: None,
    })
    .await
    .unwrap();
    assert_ne!(server.port, taken);
    assert!(server.pid().is_some());
    drop(squatter);
}
