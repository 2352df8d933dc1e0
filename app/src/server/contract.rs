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

    use crate::model::fleet::{Assignment, NodePolicy, Rulepack, RulepackRevision};

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
}
