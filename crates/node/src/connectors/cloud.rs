//! Cloud dry runs (k8s, AWS, GCP): the secret reference resolves on this
//! node, and the endpoint answers a TCP connect. No API call is made and no
//! secret is read beyond checking that it can be opened; no message ever
//! holds a secret's value.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use ritma_protocol::connectors::{
    AwsConnector, CheckStatus, Finding, GcpConnector, K8sConnector, SecretRef, Severity,
};
use tokio::net::TcpStream;

use super::{Blocked, FS_TIMEOUT, blocking, finding};

/// Limit for one TCP connect, name resolution included.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

pub(super) async fn check_k8s(k: &K8sConnector) -> Vec<Finding> {
    match k8s_endpoint(&k.api_server) {
        Some((host, port)) => check_cloud("k8s", &k.token_ref, &host, port).await,
        None => {
            let mut f = vec![secret_finding("k8s", &k.token_ref).await];
            f.push(finding(
                "k8s.endpoint",
                CheckStatus::Fail,
                Severity::High,
                format!(
                    "api_server {:?} has no usable host[:port]; expected https://host[:port]",
                    k.api_server
                ),
            ));
            f
        }
    }
}

pub(super) async fn check_aws(a: &AwsConnector) -> Vec<Finding> {
    let host = format!("sts.{}.amazonaws.com", a.region);
    check_cloud("aws", &a.credentials_ref, &host, 443).await
}

pub(super) async fn check_gcp(g: &GcpConnector) -> Vec<Finding> {
    check_cloud("gcp", &g.credentials_ref, "oauth2.googleapis.com", 443).await
}

async fn check_cloud(kind: &str, secret: &SecretRef, host: &str, port: u16) -> Vec<Finding> {
    let (s, r) = tokio::join!(secret_finding(kind, secret), reach(kind, host, port));
    vec![s, r]
}

/// `host` and `port` (default 443) of the API server URL.
pub(crate) fn k8s_endpoint(api_server: &str) -> Option<(String, u16)> {
    ritma_protocol::connectors::https_endpoint(api_server)
}

/// Resolve a secret reference on this node without revealing its value.
async fn secret_finding(kind: &str, secret: &SecretRef) -> Finding {
    let id = format!("{kind}.secret");
    let reference = secret.0.as_str();
    match reference.split_once(':') {
        Some(("env", name)) => match std::env::var_os(name) {
            None => finding(
                id,
                CheckStatus::Fail,
                Severity::High,
                format!("secret {reference} is not set on this node"),
            ),
            Some(v) if v.is_empty() => finding(
                id,
                CheckStatus::Fail,
                Severity::High,
                format!("secret {reference} is set but empty on this node"),
            ),
            Some(_) => finding(
                id,
                CheckStatus::Pass,
                Severity::High,
                format!("secret {reference} is set on this node"),
            ),
        },
        Some(("file", path)) => {
            let owned = path.to_owned();
            match blocking(FS_TIMEOUT, move || secret_file_status(&owned)).await {
                Ok(Ok(mode)) => finding(
                    id,
                    CheckStatus::Pass,
                    Severity::High,
                    format!(
                        "secret {reference} exists, is readable by the node and is private (mode {mode:04o})"
                    ),
                ),
                Ok(Err(problem)) => finding(
                    id,
                    CheckStatus::Fail,
                    Severity::High,
                    format!("secret {reference} {problem}"),
                ),
                Err(Blocked::TimedOut) => finding(
                    id,
                    CheckStatus::Unreachable,
                    Severity::High,
                    format!(
                        "secret {reference} did not respond within {} s (a hung network mount?)",
                        FS_TIMEOUT.as_secs()
                    ),
                ),
                Err(Blocked::Failed) => finding(
                    id,
                    CheckStatus::Error,
                    Severity::High,
                    format!("checking secret {reference} failed unexpectedly"),
                ),
            }
        }
        // Validation refuses anything else; never echo what it was.
        _ => finding(
            id,
            CheckStatus::Fail,
            Severity::High,
            "the secret reference is not env:NAME or file:/absolute/path",
        ),
    }
}

/// The mode of a private, readable secret file, or what is wrong with it
/// (a phrase following "secret file:/path"). Only opens the file.
fn secret_file_status(path: &str) -> Result<u32, String> {
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            "does not exist on this node".to_owned()
        } else {
            format!("cannot be reached: {e}")
        }
    })?;
    if !meta.is_file() {
        return Err("is not a regular file".to_owned());
    }
    std::fs::File::open(path).map_err(|e| format!("cannot be read by the node: {e}"))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o066 != 0 {
        return Err(format!(
            "has mode {mode:04o}: it is readable or writable by group or others; \
             restrict it with chmod 600 {path}"
        ));
    }
    Ok(mode)
}

/// Open (and drop) a TCP connection to `host:port` within [`CONNECT_TIMEOUT`].
async fn reach(kind: &str, host: &str, port: u16) -> Finding {
    let id = format!("{kind}.endpoint");
    let target = format!("{host}:{port}");
    let shown = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        target.clone()
    };
    let attempt = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port))).await;
    let error = match attempt {
        Ok(Ok(_stream)) => {
            return finding(
                id,
                CheckStatus::Pass,
                Severity::Medium,
                format!("{shown} is reachable (TCP connect; no API call was made)"),
            );
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
    };
    finding(
        id,
        CheckStatus::Unreachable,
        Severity::Medium,
        format!("could not reach {shown}: {error}; the configuration itself is valid"),
    )
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;
    use crate::connectors::dry_run;
    use crate::connectors::test_util::is_root;
    use ritma_protocol::connectors::{ConnectorConfig, DryRunOutcome};

    fn secret_file(dir: &tempfile::TempDir, mode: u32) -> (String, &'static str) {
        let value = "s3cr3t-token-value";
        let path = dir.path().join("token");
        std::fs::write(&path, value).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (format!("file:{}", path.display()), value)
    }

    fn unset_env_name() -> String {
        format!("RITMA_TEST_UNSET_{}", uuid::Uuid::new_v4().simple())
    }

    fn k8s(api_server: String, token_ref: String) -> ConnectorConfig {
        ConnectorConfig::K8s(K8sConnector {
            api_server,
            namespace: "ritma".into(),
            token_ref: SecretRef(token_ref),
        })
    }

    fn get<'a>(findings: &'a [Finding], check: &str) -> &'a Finding {
        findings
            .iter()
            .find(|f| f.check == check)
            .unwrap_or_else(|| panic!("no {check} in {findings:#?}"))
    }

    #[test]
    fn parses_api_server_endpoints() {
        let e = k8s_endpoint;
        assert_eq!(e("https://k8s:6443"), Some(("k8s".into(), 6443)));
        assert_eq!(
            e("https://k8s.example.com"),
            Some(("k8s.example.com".into(), 443))
        );
        assert_eq!(
            e("https://10.0.0.1:6443/api?x=1"),
            Some(("10.0.0.1".into(), 6443))
        );
        assert_eq!(e("https://[::1]:6443/"), Some(("::1".into(), 6443)));
        assert_eq!(e("https://[fd00::1]"), Some(("fd00::1".into(), 443)));
        assert_eq!(e("https://u@k8s:8443"), Some(("k8s".into(), 8443)));
        assert_eq!(e("https://"), None);
        assert_eq!(e("https://k8s:notaport"), None);
        assert_eq!(e("https://k8s:0"), None);
        assert_eq!(e("https://[::1"), None);
    }

    #[tokio::test]
    async fn secret_file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let (reference, value) = secret_file(&dir, 0o644);
        let f = secret_finding("k8s", &SecretRef(reference.clone())).await;
        assert_eq!(f.check, "k8s.secret");
        assert_eq!(f.status, CheckStatus::Fail);
        assert!(f.message.contains("mode 0644"), "{}", f.message);
        assert!(!f.message.contains(value));

        std::fs::set_permissions(
            dir.path().join("token"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let f = secret_finding("k8s", &SecretRef(reference)).await;
        assert_eq!(f.status, CheckStatus::Pass, "{}", f.message);
        assert!(f.message.contains("mode 0600"));
        assert!(!f.message.contains(value));
    }

    #[tokio::test]
    async fn secret_file_missing_or_unreadable_fails() {
        let dir = tempfile::tempdir().unwrap();
        let missing = format!("file:{}", dir.path().join("nope").display());
        let f = secret_finding("aws", &SecretRef(missing.clone())).await;
        assert_eq!(f.status, CheckStatus::Fail);
        assert_eq!(
            f.message,
            format!("secret {missing} does not exist on this node")
        );

        let folder = format!("file:{}", dir.path().display());
        let f = secret_finding("aws", &SecretRef(folder)).await;
        assert_eq!(f.status, CheckStatus::Fail);
        assert!(f.message.ends_with("is not a regular file"));

        if !is_root() {
            let (reference, _) = secret_file(&dir, 0o000);
            let f = secret_finding("aws", &SecretRef(reference)).await;
            assert_eq!(f.status, CheckStatus::Fail);
            assert!(
                f.message.contains("cannot be read by the node"),
                "{}",
                f.message
            );
        }
    }

    #[tokio::test]
    async fn env_secret_presence_only() {
        let name = unset_env_name();
        let f = secret_finding("gcp", &SecretRef(format!("env:{name}"))).await;
        assert_eq!(f.status, CheckStatus::Fail);
        assert_eq!(
            f.message,
            format!("secret env:{name} is not set on this node")
        );

        // PATH is set for any test process; its value must not be echoed.
        let path = std::env::var("PATH").unwrap();
        let f = secret_finding("gcp", &SecretRef("env:PATH".into())).await;
        assert_eq!(f.status, CheckStatus::Pass);
        assert_eq!(f.message, "secret env:PATH is set on this node");
        assert!(!f.message.contains(&path));
    }

    #[tokio::test]
    async fn k8s_closed_port_is_unreachable() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir = tempfile::tempdir().unwrap();
        let (reference, value) = secret_file(&dir, 0o600);
        let report = dry_run("k-1", &k8s(format!("https://127.0.0.1:{port}"), reference)).await;
        let f = &report.findings;
        assert_eq!(f[0].check, "config.valid");
        assert_eq!(f[0].message, "configuration valid");
        assert_eq!(get(f, "k8s.secret").status, CheckStatus::Pass);
        let e = get(f, "k8s.endpoint");
        assert_eq!(e.status, CheckStatus::Unreachable);
        assert!(
            e.message
                .starts_with(&format!("could not reach 127.0.0.1:{port}: ")),
            "{}",
            e.message
        );
        assert!(e.message.ends_with("; the configuration itself is valid"));
        assert_eq!(report.outcome, DryRunOutcome::Incomplete);
        assert!(f.iter().all(|f| !f.message.contains(value)));
    }

    #[tokio::test]
    async fn k8s_open_port_passes() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let (reference, _) = secret_file(&dir, 0o600);
        let report = dry_run("k-2", &k8s(format!("https://127.0.0.1:{port}/"), reference)).await;
        let e = get(&report.findings, "k8s.endpoint");
        assert_eq!(e.status, CheckStatus::Pass, "{}", e.message);
        assert!(e.message.contains("is reachable"));
        assert_eq!(
            report.outcome,
            DryRunOutcome::Pass,
            "{:#?}",
            report.findings
        );
        drop(l);
    }

    #[tokio::test]
    async fn missing_env_secret_still_checks_the_endpoint() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let name = unset_env_name();
        let report = dry_run(
            "k-3",
            &k8s(format!("https://127.0.0.1:{port}"), format!("env:{name}")),
        )
        .await;
        assert_eq!(
            get(&report.findings, "k8s.secret").message,
            format!("secret env:{name} is not set on this node")
        );
        assert_eq!(
            get(&report.findings, "k8s.endpoint").status,
            CheckStatus::Pass
        );
        assert_eq!(report.outcome, DryRunOutcome::Fail);
    }

    #[tokio::test]
    async fn cloud_endpoints_are_named_in_findings() {
        // Whether or not this machine has internet access, the finding names
        // the endpoint and ends within the connect timeout.
        let started = std::time::Instant::now();
        let aws = check_aws(&AwsConnector {
            region: "eu-west-1".into(),
            account_id: "123456789012".into(),
            role_arn: None,
            credentials_ref: SecretRef("env:PATH".into()),
        })
        .await;
        let e = get(&aws, "aws.endpoint");
        assert!(
            e.message.contains("sts.eu-west-1.amazonaws.com:443"),
            "{}",
            e.message
        );
        assert!(matches!(
            e.status,
            CheckStatus::Pass | CheckStatus::Unreachable
        ));
        let gcp = check_gcp(&GcpConnector {
            project_id: "acme-prod".into(),
            credentials_ref: SecretRef("env:PATH".into()),
        })
        .await;
        assert!(
            get(&gcp, "gcp.endpoint")
                .message
                .contains("oauth2.googleapis.com:443")
        );
        assert!(started.elapsed() < CONNECT_TIMEOUT * 2 + Duration::from_secs(1));
    }
}
