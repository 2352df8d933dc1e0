//! Message bodies of the simulated nodes, built with the protocol's types.

use std::collections::BTreeMap;

use chrono::Utc;
use ritma_protocol::{
    EnforcementSummary, Heartbeat, HostFacts, NodeHealth, NodeId, SCHEMA_VERSION, SloCount,
    SloSummary, SpoolStats, Telemetry, TelemetryKind, UsageReport,
};

fn host(node: &NodeId) -> HostFacts {
    HostFacts {
        hostname: node.to_string(),
        os: "linux".into(),
        kernel: "6.1.0-sim".into(),
        arch: "x86_64".into(),
        cpus: 4,
        memory_bytes: 8 << 30,
        uptime_secs: 3600,
    }
}

/// One message body of `kind` for `node`, built with the protocol's types.
pub fn message(node: &NodeId, kind: TelemetryKind, seq: u64, interval_secs: u32) -> Vec<u8> {
    let now = Utc::now();
    let start = now - chrono::Duration::seconds(60);
    let m = match kind {
        TelemetryKind::Heartbeat => Telemetry::Heartbeat(Box::new(Heartbeat {
            v: SCHEMA_VERSION,
            node_id: node.clone(),
            seq,
            sent_at: now,
            status: NodeHealth::Ok,
            agent_version: "ritma-sim".into(),
            interval_secs: interval_secs.clamp(1, 3600),
            policy_version: Some("p1".into()),
            last_policy_sync_at: Some(start),
            last_evidence_batch_at: None,
            key_id: None,
            slo_counters: BTreeMap::from([("decisions".into(), seq)]),
            host: host(node),
            spool: SpoolStats::default(),
            policy_rejected: None,
        })),
        TelemetryKind::Usage => Telemetry::Usage(UsageReport {
            v: SCHEMA_VERSION,
            node_id: node.clone(),
            seq,
            sent_at: now,
            period_start: start,
            period_end: now,
            decisions: 1200 + seq % 100,
            dig_files: 3,
            storage_bytes: 1 << 20,
            snapshot_exports: 0,
        }),
        TelemetryKind::Events => Telemetry::Events(EnforcementSummary {
            v: SCHEMA_VERSION,
            node_id: node.clone(),
            seq,
            sent_at: now,
            period_start: start,
            period_end: now,
            allow: 1000,
            deny: 12,
            throttle: 3,
            isolate: 0,
        }),
        TelemetryKind::Slo => Telemetry::Slo(SloSummary {
            v: SCHEMA_VERSION,
            node_id: node.clone(),
            seq,
            sent_at: now,
            period_start: start,
            period_end: now,
            counts: vec![SloCount {
                component: "enforcer".into(),
                operation: "decide".into(),
                outcome: "ok".into(),
                count: 1000,
            }],
        }),
    };
    m.encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_decode_as_their_kind() {
        let node = NodeId::new("sim-1").unwrap_or_else(|_| unreachable!());
        for kind in TelemetryKind::ALL {
            let body = message(&node, kind, 7, 10);
            let decoded = Telemetry::decode(kind, &body);
            assert!(decoded.is_ok(), "{kind}: {decoded:?}");
        }
    }
}
