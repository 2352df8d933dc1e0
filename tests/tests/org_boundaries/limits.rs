//! Limits the broker enforces per user: payload size for a node's own
//! credentials, payload and subscription limits for integrators.

use std::time::Duration;

use ritma_tests::*;
use serde_json::json;

/// Messages of `node` on the central stream (any kind), by payload size.
async fn stored_sizes(stack: &TestStack, node: &str) -> Vec<usize> {
    let bus = stack.controller_bus().await.unwrap();
    let mut stream = async_nats::jetstream::new(bus)
        .get_stream(ritma_bus::streams::TELEMETRY_STREAM)
        .await
        .unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let mut out = Vec::new();
    if state.messages == 0 {
        return out;
    }
    for s in state.first_sequence..=state.last_sequence {
        let Ok(msg) = stream.get_raw_message(s).await else {
            continue;
        };
        if msg.subject.contains(&format!(".node.{node}.")) {
            out.push(msg.payload.len());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_refuses_oversized_messages_from_a_nodes_own_credentials() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let (mut node, reply, key) = stack.enroll_connected("acme", "prod", "big-1").await;

    // The JWT itself carries the limits.
    let claims = ritma_bus::jwt::decode_verified(reply["jwt"].as_str().unwrap()).unwrap();
    let payload = claims.nats["payload"].as_i64().unwrap();
    assert!(
        payload >= ritma_protocol::MAX_MESSAGE_BYTES as i64,
        "{claims:?}"
    );
    assert!(payload < 256 * 1024, "{claims:?}");
    let subs = claims.nats["subs"].as_i64().unwrap();
    assert!((2..=32).contains(&subs), "{claims:?}");

    let subject = "ritma.acme.prod.node.big-1.events";
    let js = async_nats::jetstream::new(node.client.clone());
    // 256 KiB: refused by the broker, which closes the connection.
    let big = vec![b' '; 256 * 1024];
    let sent = js.publish(subject, big.into()).await;
    if let Ok(ack) = sent {
        assert!(
            tokio::time::timeout(Duration::from_secs(5), ack)
                .await
                .map(|a| a.is_err())
                .unwrap_or(true),
            "an oversized message must not be acked"
        );
    }
    node.expect_error("maximum payload", Duration::from_secs(5))
        .await;
    assert!(
        stored_sizes(&stack, "big-1")
            .await
            .iter()
            .all(|s| *s < 256 * 1024),
        "nothing oversized is stored"
    );

    // A normal message from the same credentials still goes through.
    let again = stack.connect_node(&reply, key).await.unwrap();
    async_nats::jetstream::new(again.client.clone())
        .publish(
            "ritma.acme.prod.node.big-1.heartbeat",
            heartbeat_body("big-1", 1, 10).into(),
        )
        .await
        .unwrap()
        .await
        .expect("a normal message is acked");
    assert_eq!(stored_sizes(&stack, "big-1").await.len(), 1);

    // Subscriptions are bounded too: a node cannot hold hundreds of them.
    let mut many = Vec::new();
    for i in 0..40 {
        if let Ok(s) = again
            .client
            .subscribe(format!("ritma.acme.prod.node.big-1.cmd.x{i}"))
            .await
        {
            many.push(s);
        }
    }
    let mut again = again;
    again
        .expect_error("maximum subscriptions", Duration::from_secs(5))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrator_credentials_carry_payload_and_subscription_limits() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let key = nkeys::KeyPair::new_user();
    let (status, body) = stack
        .api(
            reqwest::Method::POST,
            "/api/orgs/acme/integrator-credentials",
            Some(json!({ "public_key": key.public_key() })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let claims = ritma_bus::jwt::decode_verified(body["jwt"].as_str().unwrap()).unwrap();
    assert!(claims.nats["payload"].as_i64().unwrap() > 0, "{claims:?}");
    assert!(claims.nats["subs"].as_i64().unwrap() > 0, "{claims:?}");
}
