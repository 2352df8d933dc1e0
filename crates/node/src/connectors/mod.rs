//! Connector dry runs, on the node's own machine.
//!
//! A dry run checks that a connector *could* work from this node, without
//! doing the real work: the host's own posture ([`host`]), the folders a
//! storage connector names ([`storage`]), and for cloud connectors that the
//! secret reference resolves locally and the endpoint answers a TCP connect
//! ([`cloud`]). No external command is run and no cloud API is called.
//!
//! Every finding message is for a person and never holds a secret's value.
//! Each blocking step runs under its own timeout and the whole run under
//! [`DRY_RUN_DEADLINE`], so a hung mount or a black-holed endpoint cannot
//! hang the node.

mod cloud;
mod host;
mod storage;

use std::time::Duration;

use chrono::Utc;
use ritma_protocol::SCHEMA_VERSION;
use ritma_protocol::connectors::{
    CheckStatus, ConnectorConfig, DryRunOutcome, DryRunReport, Finding, Severity,
};
use ritma_protocol::validate::Validate;

pub use host::{Listener, parse_proc_net_tcp};

/// Upper bound for the checks of one dry run (each step has a shorter limit).
pub const DRY_RUN_DEADLINE: Duration = Duration::from_secs(14);

/// Limit for one blocking filesystem step (a stat, a listing, a write).
pub(crate) const FS_TIMEOUT: Duration = Duration::from_secs(5);

/// Run the dry-run checks of one connector and report what they found.
pub async fn dry_run(connector_id: &str, config: &ConnectorConfig) -> DryRunReport {
    let started_at = Utc::now();
    let mut findings = Vec::new();
    match config.validate() {
        Ok(()) => {
            findings.push(finding(
                "config.valid",
                CheckStatus::Pass,
                Severity::Info,
                "configuration valid",
            ));
            let checks = async {
                match config {
                    ConnectorConfig::Host(h) => host::check(h).await,
                    ConnectorConfig::Storage(s) => storage::check(s).await,
                    ConnectorConfig::K8s(k) => cloud::check_k8s(k).await,
                    ConnectorConfig::Aws(a) => cloud::check_aws(a).await,
                    ConnectorConfig::Gcp(g) => cloud::check_gcp(g).await,
                }
            };
            match tokio::time::timeout(DRY_RUN_DEADLINE, checks).await {
                Ok(mut found) => findings.append(&mut found),
                Err(_) => findings.push(finding(
                    "dry_run.deadline",
                    CheckStatus::Error,
                    Severity::Medium,
                    format!(
                        "the checks did not finish within {} s and were abandoned; \
                         some target on this node is not responding",
                        DRY_RUN_DEADLINE.as_secs()
                    ),
                )),
            }
        }
        Err(e) => findings.push(finding(
            "config.valid",
            CheckStatus::Fail,
            Severity::High,
            format!("configuration invalid: {e}; no checks were run"),
        )),
    }
    DryRunReport {
        v: SCHEMA_VERSION,
        connector_id: connector_id.to_owned(),
        kind: config.kind(),
        started_at,
        finished_at: Utc::now(),
        outcome: DryRunOutcome::of(&findings),
        findings,
    }
}

pub(crate) fn finding(
    check: impl Into<String>,
    status: CheckStatus,
    severity: Severity,
    message: impl Into<String>,
) -> Finding {
    Finding {
        check: check.into(),
        status,
        severity,
        message: message.into(),
    }
}

/// Why a blocking step gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Blocked {
    /// It did not return within the limit (it may still be running).
    TimedOut,
    /// It panicked.
    Failed,
}

/// Run `f` on the blocking pool and wait at most `limit` for it. A call that
/// hangs (a dead NFS server, say) keeps its thread, but not the dry run.
pub(crate) async fn blocking<T, F>(limit: Duration, f: F) -> Result<T, Blocked>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    match tokio::time::timeout(limit, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err(Blocked::Failed),
        Err(_) => Err(Blocked::TimedOut),
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    /// Whether the tests run with effective uid 0 (root ignores file modes).
    pub fn is_root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
            })
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ritma_protocol::connectors::{ConnectorKind, GcpConnector, HostConnector, SecretRef};

    #[tokio::test]
    async fn invalid_config_fails_without_running_checks() {
        let config = ConnectorConfig::Gcp(GcpConnector {
            project_id: "bad project!".into(),
            credentials_ref: SecretRef("env:X".into()),
        });
        let report = dry_run("c-1", &config).await;
        assert_eq!(report.v, SCHEMA_VERSION);
        assert_eq!(report.connector_id, "c-1");
        assert_eq!(report.kind, ConnectorKind::Gcp);
        assert_eq!(report.outcome, DryRunOutcome::Fail);
        assert_eq!(report.findings.len(), 1);
        assert_eq!(report.findings[0].check, "config.valid");
        assert!(report.findings[0].message.contains("project_id"));
    }

    #[tokio::test]
    async fn inline_secret_is_refused_and_not_echoed() {
        let secret = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0";
        let config = ConnectorConfig::Gcp(GcpConnector {
            project_id: "acme-prod".into(),
            credentials_ref: SecretRef(secret.into()),
        });
        let report = dry_run("c-2", &config).await;
        assert_eq!(report.outcome, DryRunOutcome::Fail);
        assert!(report.findings.iter().all(|f| !f.message.contains(secret)));
    }

    #[tokio::test]
    async fn report_starts_with_valid_config_and_times_are_ordered() {
        let config = ConnectorConfig::Host(HostConnector {
            allowed_ports: vec![],
            protected_paths: vec![],
        });
        let report = dry_run("c-3", &config).await;
        assert_eq!(report.findings[0].check, "config.valid");
        assert_eq!(report.findings[0].status, CheckStatus::Pass);
        assert!(report.finished_at >= report.started_at);
        assert_eq!(report.outcome, DryRunOutcome::of(&report.findings));
    }

    #[tokio::test]
    async fn blocking_times_out() {
        let r = blocking(Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_millis(500));
        })
        .await;
        assert_eq!(r, Err(Blocked::TimedOut));
        assert_eq!(blocking(FS_TIMEOUT, || 7).await, Ok(7));
    }
}
