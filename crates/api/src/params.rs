//! The path parameters of the operations, one struct per shape of path.
//! Their fields are named as in the path templates of [`crate::routes`].

use schemars::JsonSchema;
use serde::Serialize;

/// No path parameters, or no query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct NoParams {}

/// `{org}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct OrgPath {
    #[schemars(regex(pattern = crate::ID_PATTERN))]
    pub org: String,
}

/// `{id}`: a node, on the node-facing and per-node routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct NodePath {
    #[schemars(regex(pattern = crate::ID_PATTERN))]
    pub id: String,
}

/// `{org}` and a node `{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct OrgNodePath {
    #[schemars(regex(pattern = crate::ID_PATTERN))]
    pub org: String,
    #[schemars(regex(pattern = crate::ID_PATTERN))]
    pub id: String,
}

/// `{org}` and the uuid `{id}` of a resource (token, job, assignment, channel, rule, silence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct OrgUuidPath {
    #[schemars(regex(pattern = crate::ID_PATTERN))]
    pub org: String,
    pub id: uuid::Uuid,
}

/// A node `{id}` and one of its connectors, `{cid}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct NodeConnectorPath {
    #[schemars(regex(pattern = crate::ID_PATTERN))]
    pub id: String,
    #[schemars(regex(pattern = crate::ID_PATTERN))]
    pub cid: String,
}

/// `{org}` and a rulepack `{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct RulepackPath {
    #[schemars(regex(pattern = crate::ID_PATTERN))]
    pub org: String,
    #[schemars(regex(pattern = crate::ID_PATTERN))]
    pub name: String,
}

/// `{org}` and a signing key's `{key_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct KeyPath {
    #[schemars(regex(pattern = crate::ID_PATTERN))]
    pub org: String,
    #[schemars(regex(pattern = r"^[A-Za-z0-9._:-]{1,128}$"))]
    pub key_id: String,
}

/// `{org}` and an integrator credential's NKey `{public_key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct IntegratorPath {
    #[schemars(regex(pattern = crate::ID_PATTERN))]
    pub org: String,
    pub public_key: String,
}

/// `{org}`, a role's `{subject}` and the `{role}` granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct RoleGrantPath {
    #[schemars(regex(pattern = crate::ID_PATTERN))]
    pub org: String,
    pub subject: String,
    pub role: String,
}

impl OrgPath {
    pub fn new(org: &str) -> Self {
        Self {
            org: org.to_owned(),
        }
    }
}

impl NodePath {
    pub fn new(id: &str) -> Self {
        Self { id: id.to_owned() }
    }
}

impl OrgNodePath {
    pub fn new(org: &str, id: &str) -> Self {
        Self {
            org: org.to_owned(),
            id: id.to_owned(),
        }
    }
}

impl NodeConnectorPath {
    pub fn new(id: &str, cid: &str) -> Self {
        Self {
            id: id.to_owned(),
            cid: cid.to_owned(),
        }
    }
}
