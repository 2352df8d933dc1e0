//! Property tests (run with the normal test suite): subjects build and parse
//! back exactly; no decoder panics on any input; valid messages round-trip.
//! The cargo-fuzz targets in `fuzz/` explore the same functions for longer.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use proptest::prelude::*;
use ritma_protocol::enrollment::RegisterRequest;
use ritma_protocol::subjects::{self, matches};
use ritma_protocol::{
    Command, NodeId, NodeSubject, OrgId, StateChange, Telemetry, TelemetryKind, TenantId,
};

const ID: &str = "[a-z0-9][a-z0-9-]{0,62}";

fn kind() -> impl Strategy<Value = TelemetryKind> {
    prop::sample::select(TelemetryKind::ALL.to_vec())
}

fn scope() -> impl Strategy<Value = NodeSubject> {
    (ID, ID, ID).prop_map(|(o, t, n)| {
        NodeSubject::new(
            OrgId::new(o).unwrap(),
            TenantId::new(t).unwrap(),
            NodeId::new(n).unwrap(),
        )
    })
}

/// Subject-like strings: tokens from a small alphabet that hits the parser's
/// edge cases (empty tokens, wildcards, upper case, long ids).
fn subject_like() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("ritma".to_string()),
        Just("node".to_string()),
        Just("heartbeat".to_string()),
        Just("usage".to_string()),
        Just(String::new()),
        Just("*".to_string()),
        Just(">".to_string()),
        "[a-zA-Z0-9_-]{0,70}",
        "\\PC{0,8}",
    ];
    prop::collection::vec(token, 0..9).prop_map(|t| t.join("."))
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "\\PC{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("v".to_string()),
                    Just("node_id".to_string()),
                    Just("seq".to_string()),
                    Just("sent_at".to_string()),
                    Just("period_start".to_string()),
                    Just("period_end".to_string()),
                    Just("decisions".to_string()),
                    Just("counts".to_string()),
                    Just("host".to_string()),
                    Just("command".to_string()),
                    Just("kind".to_string()),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..8,
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn telemetry_subjects_round_trip(s in scope(), k in kind()) {
        let subject = s.telemetry(k);
        prop_assert_eq!(NodeSubject::parse_telemetry(&subject).unwrap(), (s.clone(), k));
        prop_assert!(matches(&subjects::all_telemetry(), &subject));
        prop_assert!(matches(&subjects::org_all(&s.org), &subject));
        prop_assert!(matches(&subjects::integrator_scope(&s.org, Some(&s.tenant)), &subject));
        prop_assert!(matches(&subjects::state_changes(&s.org, Some(&s.tenant)), &s.state()));
        prop_assert!(matches(&s.commands_wildcard(), &s.command("policy_changed")));
        // Nothing a node may publish is another node's or another kind's subject.
        prop_assert!(NodeSubject::parse_telemetry(&s.command("x")).is_err());
        prop_assert!(NodeSubject::parse_telemetry(&s.state()).is_err());
    }

    #[test]
    fn subject_parser_never_panics_and_accepts_only_canonical_subjects(subject in subject_like()) {
        if let Ok((s, k)) = NodeSubject::parse_telemetry(&subject) {
            prop_assert_eq!(s.telemetry(k), subject);
        }
    }

    #[test]
    fn subject_parser_on_any_string(subject in "\\PC{0,200}") {
        if let Ok((s, k)) = NodeSubject::parse_telemetry(&subject) {
            prop_assert_eq!(s.telemetry(k), subject);
        }
    }

    #[test]
    fn derived_node_ids_are_always_valid(host in "\\PC{0,300}", key in "\\PC{0,80}") {
        let id = NodeId::derive(&host, &key);
        prop_assert!(NodeId::new(id.as_str()).is_ok(), "{}", id);
    }

    #[test]
    fn decoders_never_panic_on_bytes(k in kind(), body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Telemetry::decode(k, &body);
        let _ = serde_json::from_slice::<Command>(&body);
        let _ = serde_json::from_slice::<StateChange>(&body);
        if let Ok(r) = serde_json::from_slice::<RegisterRequest>(&body) {
            let _ = r.validate();
        }
    }

    #[test]
    fn decoders_never_panic_on_json(k in kind(), value in json_value()) {
        let body = serde_json::to_vec(&value).unwrap();
        if let Ok(m) = Telemetry::decode(k, &body) {
            prop_assert_eq!(Telemetry::decode(k, &m.encode()).unwrap(), m);
        }
        let _ = serde_json::from_slice::<Command>(&body);
        let _ = serde_json::from_slice::<StateChange>(&body);
        if let Ok(r) = serde_json::from_slice::<RegisterRequest>(&body) {
            let _ = r.validate();
        }
    }

    #[test]
    fn valid_usage_reports_round_trip_and_out_of_range_ones_are_refused(
        node in ID,
        seq in any::<u64>(),
        decisions in any::<u64>(),
        period in 0i64..200_000,
    ) {
        let end = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let body = serde_json::to_vec(&serde_json::json!({
            "v": 1, "node_id": node, "seq": seq, "sent_at": end,
            "period_start": end - chrono::Duration::seconds(period), "period_end": end,
            "decisions": decisions, "dig_files": 0, "storage_bytes": 0, "snapshot_exports": 0,
        }))
        .unwrap();
        let in_range = decisions <= i64::MAX as u64 && period <= 86_400;
        match Telemetry::decode(TelemetryKind::Usage, &body) {
            Ok(m) => {
                prop_assert!(in_range);
                prop_assert_eq!(m.seq(), seq);
                prop_assert_eq!(Telemetry::decode(TelemetryKind::Usage, &m.encode()).unwrap(), m);
            }
            Err(e) => {
                prop_assert!(!in_range, "{}", e);
                prop_assert_eq!(e.reason(), "invalid");
            }
        }
    }

    #[test]
    fn slo_counts_beyond_a_stored_counter_are_refused(node in ID, count in any::<u64>()) {
        let end = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let body = serde_json::to_vec(&serde_json::json!({
            "v": 1, "node_id": node, "seq": 1, "sent_at": end,
            "period_start": end - chrono::Duration::seconds(10), "period_end": end,
            "counts": [{"component": "agent", "operation": "sync", "outcome": "ok", "count": count}],
        }))
        .unwrap();
        match Telemetry::decode(TelemetryKind::Slo, &body) {
            Ok(_) => prop_assert!(count <= i64::MAX as u64),
            Err(e) => {
                prop_assert!(count > i64::MAX as u64, "{}", e);
                prop_assert_eq!(e.reason(), "invalid");
            }
        }
    }
}
