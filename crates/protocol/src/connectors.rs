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

/// `host` and `port` (default 443) of an `https://` URL; brackets are
/// removed from an IPv6 literal. None when there is no usable host or port.
pub fn https_endpoint(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("https://").unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        None => 443,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0)?,
    };
    Some((host.to_owned(), port))
}

/// What an org lets its connectors make a node touch. A connector config may
/// come from anyone with the node-admin role (or whoever took over such an
/// account): without this list it could have every node of the org open any
/// file as a "secret" and probe any host and port of the node's network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectorAllowList {
    /// Folders (absolute, ending in `/`) that `file:` secret references may name.
    pub secret_dirs: Vec<String>,
    /// Prefixes that `env:` secret references' names must start with.
    pub env_prefixes: Vec<String>,
    /// Endpoints a connector may name (`host:port`, or `*.domain:port` for
    /// any host under a domain). The cloud providers' own endpoints (AWS STS
    /// of a region, Google's OAuth endpoint) are always allowed.
    pub endpoints: Vec<String>,
}

impl Default for ConnectorAllowList {
    fn default() -> Self {
        Self {
            secret_dirs: vec!["/etc/ritma-node/secrets/".into()],
            env_prefixes: vec!["RITMA_".into()],
            endpoints: vec![],
        }
    }
}

/// A path whose meaning does not depend on `.`/`..` tricks.
fn plain_absolute_path(path: &str) -> bool {
    path.starts_with('/')
        && !path
            .split('/')
            .any(|seg| seg == "." || seg == ".." || seg.contains('\\'))
        && !path.chars().any(char::is_control)
}

fn endpoint_matches(pattern: &str, host: &str, port: u16) -> bool {
    let Some((p_host, p_port)) = pattern.rsplit_once(':') else {
        return false;
    };
    if p_port.parse::<u16>().ok() != Some(port) {
        return false;
    }
    let (p_host, host) = (p_host.to_ascii_lowercase(), host.to_ascii_lowercase());
    match p_host.strip_prefix("*.") {
        Some(domain) => host
            .strip_suffix(domain)
            .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        None => p_host == host,
    }
}

impl Validate for ConnectorAllowList {
    fn validate(&self) -> Result<(), ValidationError> {
        validate::at_most("secret_dirs", self.secret_dirs.len(), MAX_ITEMS)?;
        validate::at_most("env_prefixes", self.env_prefixes.len(), MAX_ITEMS)?;
        validate::at_most("endpoints", self.endpoints.len(), 256)?;
        for d in &self.secret_dirs {
            validate::non_empty_text("secret_dirs", d, MAX_TEXT)?;
            if !plain_absolute_path(d) || !d.ends_with('/') || d == "/" {
                return Err(ValidationError::new(
                    "secret_dirs",
                    "each must be an absolute folder ending in '/', not '/' itself, without '.' or '..'",
                ));
            }
        }
        for e in &self.env_prefixes {
            validate::non_empty_text("env_prefixes", e, 64)?;
            if !e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ValidationError::new(
                    "env_prefixes",
                    "may hold only letters, digits and '_'",
                ));
            }
        }
        for e in &self.endpoints {
            validate::non_empty_text("endpoints", e, 260)?;
            let ok = e.rsplit_once(':').is_some_and(|(host, port)| {
                let host = host.strip_prefix("*.").unwrap_or(host);
                !host.is_empty()
                    && host.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '[' | ']')
                    })
                    && port.parse::<u16>().is_ok_and(|p| p != 0)
            });
            if !ok {
                return Err(ValidationError::new(
                    "endpoints",
                    "each must be host:port or *.domain:port",
                ));
            }
        }
        Ok(())
    }
}

impl ConnectorAllowList {
    fn secret_allowed(
        &self,
        field: &'static str,
        secret: &SecretRef,
    ) -> Result<(), ValidationError> {
        let allowed = match secret.0.split_once(':') {
            Some(("env", name)) => self
                .env_prefixes
                .iter()
                .any(|p| name.starts_with(p.as_str())),
            Some(("file", path)) => {
                plain_absolute_path(path)
                    && self
                        .secret_dirs
                        .iter()
                        .any(|d| path.starts_with(d.as_str()) && path.len() > d.len())
            }
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(ValidationError::new(
                field,
                "is outside the org's connector allow-list (secret_dirs / env_prefixes)",
            ))
        }
    }

    /// Whether `config` stays inside this list (checked when a connector is
    /// saved and again before every dry run, as the list may have narrowed).
    pub fn permits(&self, config: &ConnectorConfig) -> Result<(), ValidationError> {
        match config {
            ConnectorConfig::Host(_) | ConnectorConfig::Storage(_) => Ok(()),
            ConnectorConfig::K8s(k) => {
                self.secret_allowed("token_ref", &k.token_ref)?;
                let allowed = https_endpoint(&k.api_server).is_some_and(|(host, port)| {
                    self.endpoints
                        .iter()
                        .any(|p| endpoint_matches(p, &host, port))
                });
                if allowed {
                    Ok(())
                } else {
                    Err(ValidationError::new(
                        "api_server",
                        "is outside the org's connector allow-list (endpoints)",
                    ))
                }
            }
            ConnectorConfig::Aws(a) => self.secret_allowed("credentials_ref", &a.credentials_ref),
            ConnectorConfig::Gcp(g) => self.secret_allowed("credentials_ref", &g.credentials_ref),
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

    #[test]
    fn the_allow_list_confines_secret_references_and_endpoints() {
        let list = ConnectorAllowList {
            secret_dirs: vec!["/etc/ritma-node/secrets/".into()],
            env_prefixes: vec!["RITMA_".into()],
            endpoints: vec!["k8s.internal:6443".into(), "*.eks.example.com:443".into()],
        };
        list.validate().unwrap();
        let k8s = |api: &str, token: &str| {
            parse(&format!(
                r#"{{"kind":"k8s","api_server":"{api}","namespace":"ritma","token_ref":"{token}"}}"#
            ))
            .unwrap()
        };
        let aws = |r: &str| {
            parse(&format!(
                r#"{{"kind":"aws","region":"eu-west-1","account_id":"123456789012","credentials_ref":"{r}"}}"#
            ))
            .unwrap()
        };
        assert!(
            list.permits(&k8s("https://k8s.internal:6443", "env:RITMA_K8S"))
                .is_ok()
        );
        assert!(
            list.permits(&k8s("https://a.eks.example.com/", "env:RITMA_K8S"))
                .is_ok()
        );
        assert!(
            list.permits(&aws("file:/etc/ritma-node/secrets/aws"))
                .is_ok()
        );
        for refused in [
            k8s("https://k8s.internal:22", "env:RITMA_K8S"),
            k8s("https://169.254.169.254", "env:RITMA_K8S"),
            k8s("https://eks.example.com", "env:RITMA_K8S"),
            k8s("https://evil-eks.example.com", "env:RITMA_K8S"),
            k8s("https://k8s.internal:6443", "env:AWS_SECRET_ACCESS_KEY"),
            aws("file:/etc/shadow"),
            aws("file:/etc/ritma-node/secrets/../../shadow"),
            aws("file:/etc/ritma-node/secrets/./x/../../../shadow"),
            aws("file:/etc/ritma-node/secrets/"),
            aws("file:/etc/ritma-node/secrets-evil/x"),
        ] {
            assert!(list.permits(&refused).is_err(), "{refused:?}");
        }
        // Host and storage connectors name no secrets nor endpoints.
        assert!(
            ConnectorAllowList::default()
                .permits(&parse(r#"{"kind":"host","allowed_ports":[22]}"#).unwrap())
                .is_ok()
        );
    }

    #[test]
    fn an_allow_list_itself_must_be_well_formed() {
        for bad in [
            r#"{"secret_dirs":["/"],"env_prefixes":[],"endpoints":[]}"#,
            r#"{"secret_dirs":["/etc/x"],"env_prefixes":[],"endpoints":[]}"#,
            r#"{"secret_dirs":["/etc/../x/"],"env_prefixes":[],"endpoints":[]}"#,
            r#"{"secret_dirs":["relative/"],"env_prefixes":[],"endpoints":[]}"#,
            r#"{"secret_dirs":[],"env_prefixes":["A-B"],"endpoints":[]}"#,
            r#"{"secret_dirs":[],"env_prefixes":[],"endpoints":["host"]}"#,
            r#"{"secret_dirs":[],"env_prefixes":[],"endpoints":["host:0"]}"#,
            r#"{"secret_dirs":[],"env_prefixes":[],"endpoints":["a b:443"]}"#,
        ] {
            let list: ConnectorAllowList = serde_json::from_str(bad).unwrap();
            assert!(list.validate().is_err(), "{bad}");
        }
        ConnectorAllowList::default().validate().unwrap();
    }
}
