//! The daemon's optional local `/metrics` (`RITMA_NODE_METRICS_ADDR`, off by
//! default): spool depth and drops, messages sent, the bus connection and
//! the credential's expiry, for a node exporter or a local agent to scrape.
//! Meant for loopback; nothing here names the org, tenant or node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use ritma_bus::connect::SharedJwt;
use tokio_util::sync::CancellationToken;

use crate::sender::SpoolGauge;

/// How often the figures are copied from the daemon's own counters.
const SAMPLE_EVERY: Duration = Duration::from_secs(2);

struct NodeMetrics {
    spool_depth: Gauge,
    spool_dropped: Gauge,
    sent: Counter,
    bus_connected: Gauge,
    credential_expiry: Gauge,
}

fn registry() -> (Registry, NodeMetrics) {
    let m = NodeMetrics {
        spool_depth: Gauge::default(),
        spool_dropped: Gauge::default(),
        sent: Counter::default(),
        bus_connected: Gauge::default(),
        credential_expiry: Gauge::default(),
    };
    let mut r = Registry::default();
    r.register(
        "ritma_node_spool_depth_messages",
        "Messages in the disk spool, not yet acked by the bus",
        m.spool_depth.clone(),
    );
    r.register(
        "ritma_node_spool_dropped_messages",
        "Messages the full spool dropped since the spool was created",
        m.spool_dropped.clone(),
    );
    r.register(
        "ritma_node_messages_sent",
        "Messages the bus acked",
        m.sent.clone(),
    );
    r.register(
        "ritma_node_bus_connected",
        "1 while the daemon is connected to the bus",
        m.bus_connected.clone(),
    );
    r.register_with_unit(
        "ritma_node_credential_expiry_timestamp",
        "When the node's bus credential expires (Unix time)",
        Unit::Seconds,
        m.credential_expiry.clone(),
    );
    (r, m)
}

/// Serve the local endpoint on `addr` until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    spool: Arc<SpoolGauge>,
    bus: tokio::sync::watch::Receiver<async_nats::Client>,
    jwt: SharedJwt,
    shutdown: CancellationToken,
) {
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "the node's metrics listen beyond loopback; anyone who reaches it reads them");
    }
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "node metrics not served");
            return;
        }
    };
    let (registry, m) = registry();
    let sample = async {
        let mut sent_before = 0u64;
        loop {
            m.spool_depth
                .set(to_i64(spool.depth.load(Ordering::Relaxed)));
            m.spool_dropped
                .set(to_i64(spool.dropped.load(Ordering::Relaxed)));
            let sent = spool.sent.load(Ordering::Relaxed);
            m.sent.inc_by(sent.saturating_sub(sent_before));
            sent_before = sent.max(sent_before);
            m.bus_connected.set(i64::from(matches!(
                bus.borrow().connection_state(),
                async_nats::connection::State::Connected
            )));
            let exp = ritma_bus::jwt::decode_verified(&jwt.get())
                .ok()
                .and_then(|c| c.exp)
                .unwrap_or(0);
            m.credential_expiry.set(exp);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(SAMPLE_EVERY) => {}
            }
        }
    };
    let exposition = ritma_runtime::metrics::Exposition {
        registry: Arc::new(registry),
        token: None,
    };
    tokio::join!(exposition.serve(listener, shutdown.clone()), sample);
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
