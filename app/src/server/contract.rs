//! The console's page models read the controller's answers as the contract
//! (`ritma_api`) writes them: one sample of each, through JSON, into the
//! model the page uses. A field renamed or retyped in the contract fails here
//! before it fails in a browser.

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use ritma_api::policies::{AssignedPolicy, AssignmentView, NodePolicies, RulepackView};
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use ritma_api::alerts::{
        AlertList, AlertView, ChannelCreated, ChannelView, DeliveryList, DeliveryView, RuleList,
        RuleView, SilenceList, SilenceView,
    };
    use ritma_api::connectors::{ConnectorList, ConnectorView};
    use ritma_api::keys::{CloudSyncStatus, KeyList, KeySummaryView, KeyView};
    use ritma_api::usage::{
        DailyUsage, EnforcementCounts, NodeEventsSummary, NodeSloSummary, SloTotal, TenantUsage,
        UsageSummary, UsageTotals,
    };
    use ritma_protocol::alerts::AlertEvent;
    use ritma_protocol::connectors::ConnectorKind;
    use ritma_protocol::{KeyStatus, NodeStatus};

    use crate::model::alerts::{Alert, Channel, Delivery, Rule, Silence};
    use crate::model::fleet::{Assignment, Items, NodePolicy, Rulepack, RulepackRevision};

    fn through_json<T: DeserializeOwned>(value: &impl Serialize) -> T {
        let json = serde_json::to_string(value).expect("contract types serialise");
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
    }

    fn assignment() -> AssignmentView {
        AssignmentView {
            id: Default::default(),
            scope_kind: "tenant".into(),
            scope_value: "prod".into(),
            rulepack: "baseline".into(),
            revision: None,
            mode: "enforce".into(),
            created_by: "ops@example.com".into(),
            created_at: Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap(),
            nodes: 3,
        }
    }

    #[test]
    fn policy_pages_read_the_contracts_answers() {
        let pack = RulepackView {
            name: "baseline".into(),
            revision: 2,
            latest_revision: 2,
            version: "baseline@2".into(),
            description: String::new(),
            frameworks: vec!["cis".into()],
            sha256: "ab".repeat(32),
            content: None,
            created_by: "ops".into(),
            created_at: Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap(),
            signed_by: Some("control-1".into()),
        };
        let listed: Rulepack = through_json(&pack);
        assert_eq!(listed.latest_revision, 2);
        let created: RulepackRevision = through_json(&pack);
        assert_eq!(created.version, "baseline@2");

        let a: Assignment = through_json(&assignment());
        assert_eq!(
            (a.scope_text(), a.revision_text()),
            ("tenant prod".into(), "latest".into())
        );

        let mut policies = NodePolicies {
            node_id: "n-1".into(),
            assigned: Some(AssignedPolicy {
                version: "baseline@2".into(),
                rulepack: "baseline".into(),
                revision: 2,
                mode: "enforce".into(),
                sha256: "ab".repeat(32),
                assignment_id: None,
                scope_kind: None,
                scope_value: None,
            }),
            applied: None,
            last_policy_sync_at: None,
            drifted: false,
            drift_since: None,
            assignments: vec![assignment()],
        };
        let p: NodePolicy = through_json(&policies);
        assert_eq!(p.assigned.map(|a| a.scope_kind), Some(String::new()));
        policies.assigned = None;
        let p: NodePolicy = through_json(&policies);
        assert_eq!((p.assigned, p.assignments.len()), (None, 1));
    }

    #[test]
    fn the_keys_page_reads_the_contracts_answers() {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
        let list = KeyList {
            items: vec![KeyView {
                key_id: "signing-1".into(),
                org_id: "acme".into(),
                label: "prod".into(),
                status: KeyStatus::Compromised,
                source: "console".into(),
                created_at: at,
                rotated_at: None,
                rotate_by: Some(at),
                expires_at: None,
                last_used_at: None,
                updated_at: at,
                updated_by: "ops".into(),
                nodes_using: 4,
            }],
            cloud: CloudSyncStatus::default(),
        };
        let read: crate::model::fleet::KeyList = through_json(&list);
        let key = &read.items[0];
        assert_eq!((key.status.as_str(), key.nodes_using), ("compromised", 4));
        assert_eq!(read.cloud.map(|c| c.configured), Some(false));
        let summary = KeySummaryView {
            active: 1,
            revoked: 0,
            compromised: 1,
            expired: 0,
            rotation_due: 1,
            nodes_with_warnings: 4,
            cloud: None,
        };
        let read: crate::model::fleet::KeySummary = through_json(&summary);
        assert_eq!((read.compromised, read.nodes_with_warnings), (1, 4));
    }

    #[test]
    fn the_connector_pages_read_the_contracts_answers() {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
        let list = ConnectorList {
            items: vec![ConnectorView {
                id: "ports".into(),
                node_id: "n-1".into(),
                tenant_id: "prod".into(),
                kind: ConnectorKind::Host,
                config: serde_json::json!({ "kind": "host", "allowed_ports": [22] }),
                created_at: at,
                updated_at: at,
                last_run: Some(serde_json::json!({
                    "v": 1, "connector_id": "ports", "kind": "host",
                    "started_at": "2026-12-01T10:00:00Z", "finished_at": "2026-12-01T10:00:01Z",
                    "outcome": "fail", "findings": [],
                })),
                last_run_at: Some(at),
                last_outcome: Some("fail".into()),
                node_hostname: "web-1".into(),
                node_status: NodeStatus::Online,
            }],
        };
        let read: Items<crate::model::fleet::Connector> = through_json(&list);
        let c = &read.items[0];
        assert_eq!(
            (c.kind.as_str(), c.config_text().contains("22")),
            ("host", true)
        );
        assert_eq!(
            c.last_run.as_ref().map(|r| r.outcome.as_str()),
            Some("fail")
        );
        assert_eq!(c.node_hostname.as_deref(), Some("web-1"));
    }

    #[test]
    fn the_alert_pages_read_the_contracts_answers() {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
        let channel = ChannelView {
            id: Default::default(),
            org_id: "acme".into(),
            name: "ops hook".into(),
            kind: "webhook".into(),
            target: "https://hooks.example:443".into(),
            created_by: "ops".into(),
            created_at: at,
        };
        let created: crate::model::alerts::ChannelCreated = through_json(&ChannelCreated {
            channel: channel.clone(),
            secret: Some("s".repeat(32)),
        });
        assert_eq!(created.secret.map(|s| s.len()), Some(32));
        let channels: Items<Channel> = through_json(&ritma_api::alerts::ChannelList {
            items: vec![channel],
        });
        assert_eq!(channels.items[0].name, "ops hook");
        let deliveries: Items<Delivery> = through_json(&DeliveryList {
            items: vec![DeliveryView {
                id: 7,
                channel_id: None,
                alert_id: None,
                rule_name: Some("offline".into()),
                event: Some("node_offline".into()),
                node_id: Some("n-1".into()),
                status: "firing".into(),
                state: "failed".into(),
                attempts: 3,
                response_status: Some(500),
                last_error: Some("HTTP 500".into()),
                created_at: at,
                next_attempt_at: None,
                delivered_at: None,
            }],
        });
        assert_eq!(
            (
                deliveries.items[0].attempts,
                deliveries.items[0].state.as_str()
            ),
            (3, "failed")
        );
        let rules: Items<Rule> = through_json(&RuleList {
            items: vec![RuleView {
                id: Default::default(),
                org_id: "acme".into(),
                name: "offline".into(),
                event: AlertEvent::NodeOffline,
                tenant_id: None,
                labels: [("env".to_owned(), "prod".to_owned())].into(),
                for_secs: 60,
                repeat_secs: 14_400,
                threshold: None,
                channels: vec![Default::default()],
                created_by: "ops".into(),
                created_at: at,
            }],
        });
        assert_eq!(
            (rules.items[0].event.as_str(), rules.items[0].for_secs),
            ("node_offline", 60)
        );
        let silences: Items<Silence> = through_json(&SilenceList {
            items: vec![SilenceView {
                id: Default::default(),
                org_id: "acme".into(),
                rule_id: None,
                event: Some(AlertEvent::PolicyDrift),
                tenant_id: None,
                node_id: Some("n-1".into()),
                labels: Default::default(),
                comment: "kernel upgrade".into(),
                created_by: "ops".into(),
                starts_at: at,
                ends_at: at,
                active: false,
            }],
        });
        assert_eq!(silences.items[0].event.as_deref(), Some("policy_drift"));
        let alerts: Items<Alert> = through_json(&AlertList {
            items: vec![AlertView {
                id: Default::default(),
                org_id: "acme".into(),
                rule_id: Default::default(),
                rule_name: "offline".into(),
                event: AlertEvent::NodeOffline,
                tenant_id: Some("prod".into()),
                node_id: Some("n-1".into()),
                state: "firing".into(),
                detail: "no heartbeat for 95 s".into(),
                opened_at: at,
                fired_at: Some(at),
                resolved_at: None,
                silenced: false,
            }],
        });
        assert_eq!(alerts.items[0].rule_name, "offline");
    }

    #[test]
    fn the_usage_and_node_pages_read_the_contracts_answers() {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let used = UsageTotals {
            decisions: 26_920,
            dig_files: 3,
            storage_bytes: 47_377_864,
            snapshot_exports: 1,
        };
        let usage: crate::model::fleet::UsageSummary = through_json(&UsageSummary {
            org_id: "acme".into(),
            period: "2026-12".into(),
            period_idx: 683,
            from: at,
            to: at,
            totals: used,
            tenants: vec![TenantUsage {
                tenant_id: "prod".into(),
                nodes: 3,
                usage: used,
            }],
            daily: vec![DailyUsage {
                day: at,
                usage: used,
            }],
        });
        assert_eq!(usage.totals.storage_bytes, 47_377_864);
        assert_eq!(
            (usage.tenants[0].nodes, usage.tenants[0].m.decisions),
            (3, 26_920)
        );
        assert!(
            usage.daily[0].day.starts_with("2026-12-01"),
            "{}",
            usage.daily[0].day
        );
        let slo: crate::model::fleet::SloSummary = through_json(&NodeSloSummary {
            node_id: "n-1".into(),
            from: at,
            to: at,
            totals: vec![SloTotal {
                component: "policy".into(),
                operation: "evaluate".into(),
                outcome: "ok".into(),
                count: 12,
            }],
            totals_truncated: false,
            buckets: vec![],
            next_cursor: None,
        });
        assert_eq!(slo.totals[0].count, 12);
        let events: crate::model::fleet::EnforcementSummary = through_json(&NodeEventsSummary {
            node_id: "n-1".into(),
            from: at,
            to: at,
            totals: EnforcementCounts {
                allow: 5,
                deny: 2,
                throttle: 1,
                isolate: 0,
            },
            buckets: vec![],
            next_cursor: None,
        });
        assert_eq!((events.totals.allow, events.totals.deny), (5, 2));
    }

    #[test]
    fn the_billing_and_enrollment_pages_read_the_contracts_answers() {
        use ritma_api::usage::{BillingEstimate, BillingLine, TenantBill};
        let bill: crate::model::fleet::BillingEstimate = through_json(&BillingEstimate {
            org_id: "acme".into(),
            period: "2026-12".into(),
            period_idx: 683,
            currency: "EUR".into(),
            source: "price_table".into(),
            label: "Estimate; not an invoice.".into(),
            tenants: vec![TenantBill {
                tenant_id: "prod".into(),
                source: "price_table".into(),
                currency: "EUR".into(),
                lines: vec![BillingLine {
                    metric: "storage_bytes".into(),
                    quantity: 47_377_864.into(),
                    priced_quantity: Some(0.0441),
                    per: Some(1_073_741_824.0),
                    unit: "GiB".into(),
                    unit_price: 0.02,
                    amount: 0.0,
                }],
                total: 0.0,
                note: None,
            }],
            total: 0.0,
        });
        let line = &bill.tenants[0].lines[0];
        // A whole quantity stays whole (no `47377864.0` on the page).
        assert_eq!(line.quantity.0, "47377864");
        assert_eq!(
            line.priced_quantity.as_ref().map(|q| q.0.as_str()),
            Some("0.0441")
        );
        let template: crate::model::fleet::ConfigTemplate =
            through_json(&ritma_api::service::ConfigTemplate {
                org_id: "acme".into(),
                tenant_id: "prod".into(),
                env: [("RITMA_NODE_ORG_ID".to_owned(), "acme".to_owned())].into(),
                env_file: "RITMA_NODE_ORG_ID=acme\n".into(),
                systemd_unit: "[Unit]".into(),
                install_command: "sudo tee".into(),
            });
        assert_eq!(template.env_file, "RITMA_NODE_ORG_ID=acme\n");
    }
}
