//! Shared by the fleet tests: the wait bound, a node's API view and an
//! integrator's feed of state changes.

use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use ritma_tests::{TestStack, integrator};
use serde_json::Value;

pub(crate) const WAIT: Duration = Duration::from_secs(30);

pub(crate) async fn node_view(stack: &TestStack, org: &str, node: &str) -> Value {
    stack
        .api(Method::GET, &format!("/api/orgs/{org}/nodes/{node}"), None)
        .await
        .1
}

/// An integrator's view of state changes; changes not asked for yet are kept,
/// so the order two nodes' changes arrive in does not matter.
pub(crate) struct Feed {
    _reader: ritma_tests::BusUser,
    sub: async_nats::Subscriber,
    pending: Vec<Value>,
}

impl Feed {
    pub(crate) async fn new(stack: &TestStack, org: &str) -> Self {
        let reader = integrator(stack, org, None).await;
        let sub = reader
            .client
            .subscribe(format!("ritma.{org}.*.state.>"))
            .await
            .expect("subscribe to state changes");
        Self {
            _reader: reader,
            sub,
            pending: vec![],
        }
    }

    /// The next state change of `kind` about `node`.
    pub(crate) async fn next(&mut self, node: &str, kind: &str) -> Value {
        let wanted = |v: &Value| v["node_id"] == node && v["kind"] == kind;
        if let Some(i) = self.pending.iter().position(wanted) {
            return self.pending.remove(i);
        }
        let sub = &mut self.sub;
        let pending = &mut self.pending;
        tokio::time::timeout(WAIT, async {
            while let Some(msg) = sub.next().await {
                let v: Value = serde_json::from_slice(&msg.payload).expect("state change JSON");
                if wanted(&v) {
                    return v;
                }
                pending.push(v);
            }
            panic!("feed ended")
        })
        .await
        .unwrap_or_else(|_| panic!("no {kind} change for {node}"))
    }
}
