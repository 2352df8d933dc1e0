//! Node signatures over API requests and over NATS nonces never stand in
//! for each other.

use std::time::Duration;

use ritma_tests::*;
use serde_json::json;

/// Connect the daemon's way (`ritma_bus::connect`) to a fake server that
/// sends `nonce`; returns the outcome and the lines the client sent.
async fn fake_server_connect(
    nonce: &str,
    jwt: &str,
    key: &nkeys::KeyPair,
) -> (Result<async_nats::Client, ritma_bus::BusError>, Vec<String>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake_url = format!("nats://{}", listener.local_addr().unwrap());
    let info = json!({
        "server_id": "FAKE", "server_name": "fake", "version": "2.9.10", "proto": 1,
        "host": "127.0.0.1", "port": 4222, "headers": true, "max_payload": 1048576,
        "auth_required": true, "nonce": nonce,
    });
    let seen = tokio::spawn(async move {
        let mut lines = Vec::new();
        if let Ok((conn, _)) = listener.accept().await {
            let (read, mut write) = conn.into_split();
            let _ = write.write_all(format!("INFO {info}\r\n").as_bytes()).await;
            let mut read = tokio::io::BufReader::new(read);
            let until = tokio::time::Instant::now() + Duration::from_secs(3);
            loop {
                let mut line = String::new();
                match tokio::time::timeout_at(until, read.read_line(&mut line)).await {
                    Ok(Ok(n)) if n > 0 => {
                        if line.starts_with("PING") {
                            let _ = write.write_all(b"PONG\r\n").await;
                        }
                        lines.push(line);
                    }
                    _ => break,
                }
            }
        }
        lines
    });
    let connected = ritma_bus::connect::connect(ritma_bus::connect::ConnectSpec {
        urls: vec![fake_url],
        name: "node".into(),
        jwt: ritma_bus::connect::SharedJwt::new(jwt.to_owned()),
        key: std::sync::Arc::new(nkeys::KeyPair::from_seed(&key.seed().unwrap()).unwrap()),
        inbox_prefix: None,
        retry_initial: false,
    })
    .await;
    (connected, seen.await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_signatures_over_requests_and_over_nats_nonces_never_stand_in_for_each_other() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let (_node, reply, key) = stack.enroll_connected("acme", "prod", "sig-1").await;
    let node_id = ritma_protocol::NodeId::new("sig-1").unwrap();
    let attacker = nkeys::KeyPair::new_user();
    let ts = chrono::Utc::now().timestamp();

    // 1. A server (or whoever poses as one) sends a re-key request as its
    //    "nonce": the daemon's bus connection refuses to sign it. (The same
    //    fake server with a NATS-shaped nonce does get a signed CONNECT, so
    //    the refusal is the nonce check, nothing else.)
    let challenge =
        ritma_protocol::enrollment::rekey_challenge(&node_id, &attacker.public_key(), ts);
    let jwt = reply["jwt"].as_str().unwrap().to_owned();
    let (connected, lines) = fake_server_connect(&challenge, &jwt, &key).await;
    assert!(connected.is_err(), "no connection on a forged nonce");
    assert!(
        lines.iter().all(|l| !l.contains("\"sig\"")),
        "nothing was signed: {lines:?}"
    );
    let (_, lines) = fake_server_connect("kZ3oN1_-abcDEF0", &jwt, &key).await;
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("CONNECT") && l.contains("\"sig\"")),
        "a NATS-shaped nonce is signed: {lines:?}"
    );
    // ...and the controller refuses a re-key signed over the old,
    // undelimited request text, as an old daemon would have signed it as a nonce.
    let legacy = format!("ritma-rekey:{node_id}:{}:{ts}", attacker.public_key());
    for signed in [legacy.as_str(), "kZ3oN1_-abcDEF0"] {
        let sig = key.sign(signed.as_bytes()).unwrap();
        let resp = stack
            .http
            .post(format!("{}/api/nodes/sig-1/rekey", stack.api_url()))
            .json(&json!({
                "new_public_key": attacker.public_key(), "timestamp": ts,
                "signature": data_encoding::BASE64URL_NOPAD.encode(&sig),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{signed}");
    }

    // 2. A request's signature is no answer to the broker's nonce: the node's
    //    own JWT with a captured request signature does not connect.
    let request_sig = key
        .sign(ritma_protocol::enrollment::credentials_challenge(&node_id, ts).as_bytes())
        .unwrap();
    let replayed = async_nats::ConnectOptions::with_jwt(
        reply["jwt"].as_str().unwrap().to_owned(),
        move |_nonce| {
            let sig = request_sig.clone();
            async move { Ok(sig) }
        },
    )
    .max_reconnects(Some(1))
    .connection_timeout(Duration::from_secs(2))
    .connect(&stack.nats.url)
    .await;
    assert!(
        replayed.is_err(),
        "a request signature must not authenticate"
    );
    // The node's own key does connect to the real server (its nonce is NATS-shaped).
    let real = ritma_bus::connect::connect(ritma_bus::connect::ConnectSpec {
        urls: vec![stack.nats.url.clone()],
        name: "node".into(),
        jwt: ritma_bus::connect::SharedJwt::new(reply["jwt"].as_str().unwrap().to_owned()),
        key: std::sync::Arc::new(key),
        inbox_prefix: reply["inbox_prefix"].as_str().map(str::to_owned),
        retry_initial: false,
    })
    .await;
    assert!(real.is_ok(), "{:?}", real.err());
}
