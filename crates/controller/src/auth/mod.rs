//! Who is calling, and what they may do.
//!
//! Principals: the operator (the admin token: every org, console-wide
//! settings), people (an OIDC access token; memberships and roles per org
//! from a claim, plus time-boxed grants stored here), and, in development
//! only, people described by `x-user-id`/`x-org-id`/`x-roles` headers.
//! A person with no role in an org gets 404 for it, never 403, so the
//! existence of another org's objects is not revealed.

pub mod middleware;
pub mod oidc;

use std::collections::{BTreeMap, BTreeSet};

use ritma_protocol::OrgId;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    OrgOwner,
    OrgAdmin,
    NodeAdmin,
    Viewer,
    /// Read-only, granted by an org for a limited time.
    Support,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Self::OrgOwner,
        Self::OrgAdmin,
        Self::NodeAdmin,
        Self::Viewer,
        Self::Support,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrgOwner => "org_owner",
            Self::OrgAdmin => "org_admin",
            Self::NodeAdmin => "node_admin",
            Self::Viewer => "viewer",
            Self::Support => "support",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Everything the API lets someone do, per org.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nodes, tokens' metadata, summaries.
    ReadFleet,
    ReadAudit,
    /// Decommission, re-key, policies, connectors.
    ManageNodes,
    /// Enrollment tokens.
    ManageTokens,
    /// Integrator credentials and key governance.
    ManageIntegrators,
    /// Grant and revoke roles, console-wide settings of the org.
    ManageRoles,
    /// Alert rules and notification channels.
    ManageAlerts,
}

impl Role {
    pub fn allows(self, action: Action) -> bool {
        use Action::*;
        use Role::*;
        match action {
            ReadFleet => true,
            ReadAudit => matches!(self, OrgOwner | OrgAdmin | Support),
            ManageNodes => matches!(self, OrgOwner | OrgAdmin | NodeAdmin),
            ManageTokens | ManageIntegrators | ManageAlerts => matches!(self, OrgOwner | OrgAdmin),
            ManageRoles => matches!(self, OrgOwner),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PrincipalKind {
    /// The admin token: every org.
    Operator,
    Person {
        roles: BTreeMap<String, BTreeSet<Role>>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    #[serde(flatten)]
    pub kind: PrincipalKind,
    /// Where the request came from (peer address, or the proxy's X-Forwarded-For).
    #[serde(skip)]
    pub source: Option<String>,
}

impl Principal {
    pub fn is_operator(&self) -> bool {
        self.kind == PrincipalKind::Operator
    }

    pub fn roles_in(&self, org: &str) -> BTreeSet<Role> {
        match &self.kind {
            PrincipalKind::Operator => Role::ALL.into_iter().collect(),
            PrincipalKind::Person { roles } => roles.get(org).cloned().unwrap_or_default(),
        }
    }

    /// Allowed, 403 (member without the right role) or 404 (not a member).
    pub fn authorize(&self, org: &OrgId, action: Action) -> Result<(), ApiError> {
        let roles = self.roles_in(org.as_str());
        if roles.is_empty() {
            return Err(ApiError::NotFound(format!("org {org}")));
        }
        if roles.iter().any(|r| r.allows(action)) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "your roles in {org} do not allow this"
            )))
        }
    }

    /// Operator only (creating orgs is a console-wide act).
    pub fn require_operator(&self) -> Result<(), ApiError> {
        if self.is_operator() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "only the console operator may do this".into(),
            ))
        }
    }

    /// Who did it, for the audit trail.
    pub fn actor(&self) -> String {
        match (&self.kind, &self.email) {
            (PrincipalKind::Operator, _) => "operator".into(),
            (_, Some(email)) => format!("{} <{email}>", self.subject),
            _ => self.subject.clone(),
        }
    }
}

/// Parse memberships from a claim: `{"org": ["role"]}` or `["org:role"]`.
pub fn roles_from_claim(v: &serde_json::Value) -> BTreeMap<String, BTreeSet<Role>> {
    let mut out: BTreeMap<String, BTreeSet<Role>> = BTreeMap::new();
    match v {
        serde_json::Value::Object(map) => {
            for (org, roles) in map {
                let list: Vec<&str> = match roles {
                    serde_json::Value::Array(a) => a.iter().filter_map(|r| r.as_str()).collect(),
                    serde_json::Value::String(s) => vec![s.as_str()],
                    _ => vec![],
                };
                for r in list.into_iter().filter_map(Role::parse) {
                    out.entry(org.clone()).or_default().insert(r);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items.iter().filter_map(|i| i.as_str()) {
                if let Some((org, role)) = item.split_once(':')
                    && let Some(r) = Role::parse(role)
                {
                    out.entry(org.to_owned()).or_default().insert(r);
                }
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_matrix_matches_the_seed() {
        use Action::*;
        assert!(Role::Viewer.allows(ReadFleet) && !Role::Viewer.allows(ManageNodes));
        assert!(Role::Support.allows(ReadAudit) && !Role::Support.allows(ManageTokens));
        assert!(Role::NodeAdmin.allows(ManageNodes) && !Role::NodeAdmin.allows(ManageTokens));
        assert!(Role::OrgAdmin.allows(ManageTokens) && !Role::OrgAdmin.allows(ManageRoles));
        assert!(Role::OrgOwner.allows(ManageRoles));
    }

    #[test]
    fn claims_in_both_shapes() {
        let a = roles_from_claim(
            &serde_json::json!({"acme": ["viewer", "bogus"], "globex": "org_admin"}),
        );
        assert_eq!(a["acme"], BTreeSet::from([Role::Viewer]));
        assert_eq!(a["globex"], BTreeSet::from([Role::OrgAdmin]));
        let b = roles_from_claim(&serde_json::json!(["acme:node_admin", "nonsense"]));
        assert_eq!(b["acme"], BTreeSet::from([Role::NodeAdmin]));
    }

    #[test]
    fn outsiders_get_404_members_403() {
        let p = Principal {
            subject: "u".into(),
            email: None,
            name: None,
            kind: PrincipalKind::Person {
                roles: roles_from_claim(&serde_json::json!({"acme": ["viewer"]})),
            },
            source: None,
        };
        let acme = OrgId::new("acme").unwrap();
        let globex = OrgId::new("globex").unwrap();
        assert!(p.authorize(&acme, Action::ReadFleet).is_ok());
        assert!(matches!(
            p.authorize(&acme, Action::ManageNodes),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            p.authorize(&globex, Action::ReadFleet),
            Err(ApiError::NotFound(_))
        ));
    }
}
