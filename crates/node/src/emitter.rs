//! The telemetry emitter: builds heartbeats and summaries with the node's
//! next sequence numbers and queues them for the sender (and so the spool).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use ritma_protocol::{
    EnforcementSummary, Heartbeat, NodeHealth, SCHEMA_VERSION, SloSummary, SpoolStats, Telemetry,
    UsageReport,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::compliance::ComplianceIndex;
use crate::policy::PolicyStore;
use crate::recorder::{Decision, Recorder};
use crate::sender::SpoolGauge;
use crate::seq::SeqCounter;
use crate::spool::SpoolEntry;
use crate::{AGENT_VERSION, host};

/// What a heartbeat says besides its status and sequence number.
#[derive(Clone)]
pub struct HeartbeatFacts {
    pub node_id: ritma_protocol::NodeId,
    pub interval_secs: u32,
    pub key_id: Option<String>,
    pub hostname: String,
    pub recorder: Arc<Recorder>,
    pub policy: Arc<PolicyStore>,
    pub gauge: Arc<SpoolGauge>,
}

impl HeartbeatFacts {
    fn heartbeat(&self, status: NodeHealth, seq: u64) -> Heartbeat {
        let applied = self.policy.applied();
        Heartbeat {
            v: SCHEMA_VERSION,
            node_id: self.node_id.clone(),
            seq,
            sent_at: Utc::now(),
            status,
            agent_version: AGENT_VERSION.into(),
            interval_secs: self.interval_secs,
            policy_version: applied.version,
            last_policy_sync_at: applied.synced_at,
            policy_rejected: applied.rejected,
            last_evidence_batch_at: None,
            key_id: self.key_id.clone(),
            slo_counters: self.recorder.totals(),
            host: host::host_facts(&self.hostname),
            spool: SpoolStats {
                depth: self.gauge.depth.load(Ordering::Relaxed),
                dropped: self.gauge.dropped.load(Ordering::Relaxed),
            },
        }
    }
}

/// Builds messages with the next sequence numbers and queues them for the sender.
#[derive(Clone)]
pub struct Emitter {
    pub tx: mpsc::Sender<SpoolEntry>,
    pub seq: SeqCounter,
    pub facts: HeartbeatFacts,
    pub compliance: Arc<ComplianceIndex>,
}

impl Emitter {
    async fn emit(&self, message: Telemetry) {
        let entry = SpoolEntry {
            kind: message.kind(),
            seq: message.seq(),
            body: String::from_utf8(message.encode()).unwrap_or_default(),
        };
        if self.tx.send(entry).await.is_err() {
            tracing::warn!("sender stopped; message not queued");
        }
    }

    pub async fn emit_heartbeat(&self, status: NodeHealth) {
        match self.seq.next() {
            Ok(seq) => {
                self.emit(Telemetry::Heartbeat(Box::new(
                    self.facts.heartbeat(status, seq),
                )))
                .await
            }
            Err(e) => tracing::error!(error = %e, "sequence counter unavailable"),
        }
    }

    /// Heartbeats every interval (±10% jitter spreads a fleet's beats over
    /// time), summaries every `summary_every`, and the demo's decisions.
    pub async fn run(self, summary_every: Duration, demo_rate: u32, stop: CancellationToken) {
        let recorder = self.facts.recorder.clone();
        let interval = f64::from(self.facts.interval_secs);
        let mut next_summary = tokio::time::Instant::now() + summary_every;
        let mut demo_tick =
            tokio::time::interval(Duration::from_millis(1000 / u64::from(demo_rate.max(1))));
        loop {
            self.emit_heartbeat(NodeHealth::Ok).await;
            recorder.slo("daemon", "heartbeat", "emitted");
            let jitter = 0.9 + rand::random::<f64>() * 0.2;
            let until = tokio::time::Instant::now() + Duration::from_secs_f64(interval * jitter);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep_until(until) => break,
                    _ = tokio::time::sleep_until(next_summary) => {
                        self.emit_summaries().await;
                        next_summary += summary_every;
                    }
                    _ = demo_tick.tick(), if demo_rate > 0 => demo_decision(&recorder),
                }
            }
        }
    }

    pub async fn emit_summaries(&self) {
        let recorder = &self.facts.recorder;
        let node = &self.facts.node_id;
        let period = recorder.take_period();
        let start = period.start.unwrap_or_else(Utc::now);
        let end = Utc::now();
        let (Ok(s1), Ok(s2), Ok(s3)) = (self.seq.next(), self.seq.next(), self.seq.next()) else {
            tracing::error!("sequence counter unavailable");
            return;
        };
        let now = Utc::now();
        self.emit(Telemetry::Slo(SloSummary {
            v: SCHEMA_VERSION,
            node_id: node.clone(),
            seq: s1,
            sent_at: now,
            period_start: start,
            period_end: end,
            counts: period.slo_counts(),
        }))
        .await;
        self.emit(Telemetry::Usage(UsageReport {
            v: SCHEMA_VERSION,
            node_id: node.clone(),
            seq: s2,
            sent_at: now,
            period_start: start,
            period_end: end,
            decisions: period.decisions(),
            dig_files: period.dig_files,
            storage_bytes: period.storage_bytes,
            snapshot_exports: period.snapshot_exports,
        }))
        .await;
        self.compliance.append(
            node.as_str(),
            "enforcement_summary",
            serde_json::json!({
                "period_start": start, "period_end": end, "allow": period.allow,
                "deny": period.deny, "throttle": period.throttle, "isolate": period.isolate,
            }),
        );
        self.emit(Telemetry::Events(EnforcementSummary {
            v: SCHEMA_VERSION,
            node_id: node.clone(),
            seq: s3,
            sent_at: now,
            period_start: start,
            period_end: end,
            allow: period.allow,
            deny: period.deny,
            throttle: period.throttle,
            isolate: period.isolate,
        }))
        .await;
    }
}

fn demo_decision(recorder: &Recorder) {
    let r: f64 = rand::random();
    let d = if r < 0.90 {
        Decision::Allow
    } else if r < 0.97 {
        Decision::Deny
    } else if r < 0.99 {
        Decision::Throttle
    } else {
        Decision::Isolate
    };
    recorder.decision(d);
    recorder.slo(
        "enforcer",
        "decide",
        if d == Decision::Allow {
            "allow"
        } else {
            "restrict"
        },
    );
    if rand::random::<f64>() < 0.05 {
        recorder.dig_files(1, 4096 + (rand::random::<u64>() % 65_536));
    }
}
