//! Connector configurations and dry-run results. Configs are typed per
//! kind and never hold a secret: credentials are references (`env:NAME`,
//! `file:/path`) that only the node resolves, on its own machine.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validate::{self, Validate, ValidationError};

const MAX_ITEMS: usize = 64;
const MAX_TEXT: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorKind {
    /// The node's own posture: file permissions, listening ports, kernel settings.
    Host,
    /// Paths the node must reach (and optionally write), with free space.
    Storage,
    K8s,
    Aws,
    Gcp,
}

impl ConnectorKind {
    pub const ALL: [ConnectorKind; 5] =
        [Self::Host, Self::Storage, Self::K8s, Self::Aws, Self::Gcp];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Storage => "storage",
            Self::K8s => "k8s",
            Self::Aws => "aws",
            Self::Gcp => "gcp",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where the node finds a secret: `env:NAME` or `file:/absolute/path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct SecretRef(pub String);

impl SecretRef {
    pub fn validate(&self, field: &'static str) -> Result<(), ValidationError> {
        validate::non_empty_text(field, &self.0, MAX_TEXT)?;
        match self.0.split_once(':') {
            Some(("env", name))
                if !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                Ok(())
            }
            Some(("file", path)) if path.starts_with('/') => Ok(()),
            _ => Err(ValidationError::new(
                field,
                "must be a reference, env:NAME or file:/absolute/path; secrets themselves are never stored",
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostConnector {
    /// Listening TCP ports that are expected; any other is a finding.
    #[serde(default)]
    pub allowed_ports: Vec<u16>,
    /// Extra files that must not be group- or world-writable.
    #[serde(default)]
    pub protected_paths: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoragePath {
    /// Absolute path of a folder.
    pub path: String,
    /// Check that the node can create a file there.
    #[serde(default)]
    pub writable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StorageConnector {
    pub paths: Vec<StoragePath>,
    /// Warn below this much free space on a path's filesystem.
    #[serde(default)]
    pub min_free_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct K8sConnector {
    /// `https://host:port` of the API server.
    pub api_server: String,
    pub namespace: String,
    pub token_ref: SecretRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsConnector {
    pub region: String,
    /// 12 digits.
    pub account_id: String,
    #[serde(default)]
    pub role_arn: Option<String>,
    pub credentials_ref: SecretRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GcpConnector {
    pub project_id: String,
    pub credentials_ref: SecretRef,
}

/// A connector's configuration, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConnectorConfig {
    Host(HostConnector),
    Storage(StorageConnector),
    K8s(K8sConnector),
    Aws(AwsConnector),
    Gcp(GcpConnector),
}

impl ConnectorConfig {
    pub fn kind(&self) -> ConnectorKind {
        match self {
            Self::Host(_) => ConnectorKind::Host,
            Self::Storage(_) => ConnectorKind::Storage,
            Self::K8s(_) => ConnectorKind::K8s,
            Self::Aws(_) => ConnectorKind::Aws,
            Self::Gcp(_) => ConnectorKind::Gcp,
        }
    }
}

fn absolute(field: &'static str, path: &str) -> Result<(), ValidationError> {
    validate::non_empty_text(field, path, MAX_TEXT)?;
    if !path.starts_with('/') {
        return Err(ValidationError::new(field, "must be an absolute path"));
    }
    Ok(())
}

fn name_like(field: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    validate::non_empty_text(field, value, max)?;
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(ValidationError::new(
            field,
            "may hold only letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(())
}

impl Validate for ConnectorConfig {
    fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Self::Host(h) => {
                validate::at_most("allowed_ports", h.allowed_ports.len(), 1024)?;
                validate::at_most("protected_paths", h.protected_paths.len(), MAX_ITEMS)?;
                for p in &h.protected_paths {
                    absolute("protected_paths", p)?;
                }
                Ok(())
            }
            Self::Storage(s) => {
                if s.paths.is_empty() {
                    return Err(ValidationError::new("paths", "must name at least one path"));
                }
                validate::at_most("paths", s.paths.len(), MAX_ITEMS)?;
                for p in &s.paths {
                    absolute("paths.path", &p.path)?;
                }
                Ok(())
            }
            Self::K8s(k) => {
                validate::non_empty_text("api_server", &k.api_server, MAX_TEXT)?;
                if !k.api_server.starts_with("https://") {
                    return Err(ValidationError::new(
                        "api_server",
                        "must be an https:// URL",
                    ));
                }
                name_like("namespace", &k.namespace, 63)?;
                k.token_ref.validate("token_ref")
            }
            Self::Aws(a) => {
                name_like("region", &a.region, 32)?;
                if a.account_id.len() != 12 || !a.account_id.chars().all(|c| c.is_ascii_digit()) {
                    return Err(ValidationError::new("account_id", "must be 12 digits"));
                }
                if let Some(arn) = &a.role_arn {
                    validate::non_empty_text("role_arn", arn, MAX_TEXT)?;
                    if !arn.starts_with("arn:aws:iam::") {
                        return Err(ValidationError::new(
                            "role_arn",
                            "must be an IAM role ARN (arn:aws:iam::...)",
                        ));
                    }
                }
                a.credentials_ref.validate("credentials_ref")
            }
            Self::Gcp(g) => {
                name_like("project_id", &g.project_id, 30)?;
                g.credentials_ref.validate("credentials_ref")
            }
        }
    }
}

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    /// The check ran and found a problem.
    Fail,
    /// A remote endpoint or a secret the check needs could not be reached.
    Unreachable,
    /// The check could not run (e.g. a file it needs is unreadable).
    Error,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    /// Stable id of the check, e.g. `host.port.listening`.
    pub check: String,
    pub status: CheckStatus,
    pub severity: Severity,
    /// What was found, for a person (never a secret's value).
    pub message: String,
}

/// The overall result of a dry run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DryRunOutcome {
    /// Every check passed.
    Pass,
    /// Some check failed.
    Fail,
    /// Nothing failed, but some target could not be reached.
    Incomplete,
}

impl DryRunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Incomplete => "incomplete",
        }
    }

    pub fn of(findings: &[Finding]) -> Self {
        if findings.iter().any(|f| f.status == CheckStatus::Fail) {
            Self::Fail
        } else if findings
            .iter()
            .any(|f| matches!(f.status, CheckStatus::Unreachable | CheckStatus::Error))
        {
            Self::Incomplete
        } else {
            Self::Pass
        }
    }
}

/// The node's reply to a `connector_dry_run` command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DryRunReport {
    pub v: u16,
    pub connector_id: String,
    pub kind: ConnectorKind,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: DryRunOutcome,
    pub findings: Vec<Finding>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ConnectorConfig, String> {
        let c: ConnectorConfig = serde_json::from_str(json).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn accepts_each_kind() {
        for ok in [
            r#"{"kind":"host","allowed_ports":[22,443]}"#,
            r#"{"kind":"storage","paths":[{"path":"/var/lib","writable":true}]}"#,
            r#"{"kind":"k8s","api_server":"https://k8s:6443","namespace":"ritma","token_ref":"env:K8S_TOKEN"}"#,
            r#"{"kind":"aws","region":"eu-west-1","account_id":"123456789012","credentials_ref":"file:/etc/ritma/aws"}"#,
            r#"{"kind":"gcp","project_id":"acme-prod","credentials_ref":"env:GCP_KEY"}"#,
        ] {
            parse(ok).unwrap();
        }
    }

    #[test]
    fn refuses_inline_secrets_and_bad_fields() {
        for (bad, field) in [
            (
                r#"{"kind":"k8s","api_server":"https://k","namespace":"n","token_ref":"eyJhbGciOi"}"#,
                "token_ref",
            ),
            (
                r#"{"kind":"aws","region":"eu","account_id":"123","credentials_ref":"env:A"}"#,
                "account_id",
            ),
            (
                r#"{"kind":"aws","region":"eu","account_id":"123456789012","credentials_ref":"AKIAXXXX:secret"}"#,
                "credentials_ref",
            ),
            (r#"{"kind":"storage","paths":[]}"#, "paths"),
            (
                r#"{"kind":"storage","paths":[{"path":"relative"}]}"#,
                "paths.path",
            ),
            (
                r#"{"kind":"k8s","api_server":"http://k","namespace":"n","token_ref":"env:T"}"#,
                "api_server",
            ),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(field), "{bad}: {err}");
        }
        // Unknown fields (a pasted `secret_access_key`, say) are refused outright.
        assert!(
            parse(r#"{"kind":"gcp","project_id":"p","credentials_ref":"env:G","private_key":"x"}"#)
                .is_err()
        );
        assert!(parse(r#"{"kind":"ftp"}"#).is_err());
    }

    #[test]
    fn outcome_of_findings() {
        let f = |status| Finding {
            check: "c".into(),
            status,
            severity: Severity::Low,
            message: String::new(),
        };
        assert_eq!(
            DryRunOutcome::of(&[f(CheckStatus::Pass)]),
            DryRunOutcome::Pass
        );
        assert_eq!(
            DryRunOutcome::of(&[f(CheckStatus::Pass), f(CheckStatus::Unreachable)]),
            DryRunOutcome::Incomplete
        );
        assert_eq!(
            DryRunOutcome::of(&[f(CheckStatus::Unreachable), f(CheckStatus::Fail)]),
            DryRunOutcome::Fail
        );
    }
}
