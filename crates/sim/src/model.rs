//! The simulated fleet: nodes, credentials, run settings, counters and the report.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use nkeys::KeyPair;
use ritma_protocol::NodeSubject;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::SummaryMix;

/// What a simulated node needs to publish.
#[derive(Clone)]
pub struct SimNode {
    pub scope: NodeSubject,
    /// Own credentials: the node's key and JWT.
    pub creds: Option<(Arc<KeyPair>, String)>,
}

/// How the connections authenticate when nodes share them.
#[derive(Clone)]
pub struct SharedCreds {
    pub jwt: String,
    pub key: Arc<KeyPair>,
}

#[derive(Clone)]
pub struct RunConfig {
    pub nats_urls: Vec<String>,
    pub shared: Option<SharedCreds>,
    pub nodes_per_connection: usize,
    pub heartbeat: Option<Duration>,
    pub summary: Option<Duration>,
    pub summaries: SummaryMix,
    pub duration: Duration,
    pub window: usize,
    /// Print progress every this often (None: quiet).
    pub progress: Option<Duration>,
    /// Each acked publish: (stream sequence, when it was sent), for latency measurement.
    pub ack_sink: Option<mpsc::UnboundedSender<(u64, Instant)>>,
    /// Keep connections open (without sending) for this long after the run.
    pub linger: Duration,
    /// First sequence number minus one (a later run over the same nodes
    /// must start above the earlier one's, or its messages are duplicates).
    pub seq_base: u64,
}

#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub failed: AtomicU64,
    pub connected: AtomicU64,
    pub connect_failed: AtomicU64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SimReport {
    pub nodes: usize,
    pub connections: u64,
    pub connect_failed: u64,
    pub enroll_secs: f64,
    pub connect_secs: f64,
    pub run_secs: f64,
    pub sent: u64,
    pub acked: u64,
    pub failed: u64,
    pub sent_per_sec: f64,
    pub acked_per_sec: f64,
}

impl std::fmt::Display for SimReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "nodes {} on {} connections ({} failed to connect); enroll {:.1}s, connect {:.1}s; \
             ran {:.1}s: sent {}, acked {}, failed {}; {:.0} msg/s sent, {:.0} msg/s acked",
            self.nodes,
            self.connections,
            self.connect_failed,
            self.enroll_secs,
            self.connect_secs,
            self.run_secs,
            self.sent,
            self.acked,
            self.failed,
            self.sent_per_sec,
            self.acked_per_sec
        )
    }
}
