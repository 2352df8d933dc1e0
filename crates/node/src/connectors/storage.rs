//! Storage dry run: each configured folder exists, is a directory, can be
//! listed and, when it must be writable, takes a file. Every path is checked
//! concurrently under its own timeout, so a hung network mount shows up as
//! `unreachable` instead of hanging the node.

use std::io::Write;
use std::path::Path;

use futures::future::join_all;
use ritma_protocol::connectors::{CheckStatus, Finding, Severity, StorageConnector, StoragePath};

use super::{Blocked, FS_TIMEOUT, blocking, finding};

pub(super) async fn check(config: &StorageConnector) -> Vec<Finding> {
    let mut findings: Vec<Finding> = join_all(config.paths.iter().cloned().map(check_path))
        .await
        .into_iter()
        .flatten()
        .collect();
    if let Some(min) = config.min_free_bytes {
        // Free space needs statfs(2); this crate uses no unsafe code and has
        // no binding for it, so say plainly that it was not checked.
        findings.push(finding(
            "storage.free_space",
            CheckStatus::Error,
            Severity::Info,
            format!(
                "free space was not checked: this node build cannot query filesystem sizes \
                 (min_free_bytes = {min} was not verified)"
            ),
        ));
    }
    findings
}

async fn check_path(target: StoragePath) -> Vec<Finding> {
    let path = target.path.clone();
    match blocking(FS_TIMEOUT, move || check_path_blocking(&target)).await {
        Ok(found) => found,
        Err(Blocked::TimedOut) => vec![finding(
            format!("storage.path.reachable:{path}"),
            CheckStatus::Unreachable,
            Severity::High,
            format!(
                "{path} did not respond within {} s (a hung network mount?); nothing else was checked there",
                FS_TIMEOUT.as_secs()
            ),
        )],
        Err(Blocked::Failed) => vec![finding(
            format!("storage.path.reachable:{path}"),
            CheckStatus::Error,
            Severity::High,
            format!("checking {path} failed unexpectedly"),
        )],
    }
}

fn check_path_blocking(target: &StoragePath) -> Vec<Finding> {
    let path = target.path.as_str();
    let mut found = Vec::new();

    let exists = format!("storage.path.exists:{path}");
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            found.push(finding(
                exists,
                CheckStatus::Fail,
                Severity::High,
                format!("{path} does not exist on this node"),
            ));
            return found;
        }
        Err(e) => {
            found.push(finding(
                exists,
                CheckStatus::Fail,
                Severity::High,
                format!("cannot reach {path}: {e}"),
            ));
            return found;
        }
        Ok(m) if !m.is_dir() => {
            found.push(finding(
                exists,
                CheckStatus::Fail,
                Severity::High,
                format!("{path} exists but is not a directory"),
            ));
            return found;
        }
        Ok(_) => found.push(finding(
            exists,
            CheckStatus::Pass,
            Severity::High,
            format!("{path} exists and is a directory"),
        )),
    }

    let readable = format!("storage.path.readable:{path}");
    match std::fs::read_dir(path).and_then(|mut entries| entries.next().transpose()) {
        Ok(_) => found.push(finding(
            readable,
            CheckStatus::Pass,
            Severity::High,
            format!("{path} can be listed"),
        )),
        Err(e) => found.push(finding(
            readable,
            CheckStatus::Fail,
            Severity::High,
            format!("cannot list {path}: {e}"),
        )),
    }

    if target.writable {
        found.push(write_probe(path));
    }
    found
}

/// Create, write and remove a uniquely named file in `dir`.
fn write_probe(dir: &str) -> Finding {
    let id = format!("storage.path.writable:{dir}");
    let name = format!(
        ".ritma-dry-run-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    let file = Path::new(dir).join(&name);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&file)
        .and_then(|mut f| f.write_all(b"ritma connector dry run\n"));
    if let Err(e) = written {
        // create_new may have made the file before the write failed.
        let _ = std::fs::remove_file(&file);
        return finding(
            id,
            CheckStatus::Fail,
            Severity::High,
            format!("cannot create a file in {dir}: {e}"),
        );
    }
    match std::fs::remove_file(&file) {
        Ok(()) => finding(
            id,
            CheckStatus::Pass,
            Severity::High,
            format!("{dir} is writable (created and removed a test file)"),
        ),
        Err(e) => finding(
            id,
            CheckStatus::Fail,
            Severity::Medium,
            format!(
                "created {} but could not remove it: {e}; remove it by hand",
                file.display()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::connectors::test_util::is_root;

    fn storage(paths: &[(&Path, bool)]) -> StorageConnector {
        StorageConnector {
            paths: paths
                .iter()
                .map(|(p, writable)| StoragePath {
                    path: p.display().to_string(),
                    writable: *writable,
                })
                .collect(),
            min_free_bytes: None,
        }
    }

    fn status_of(findings: &[Finding], check: &str) -> CheckStatus {
        findings
            .iter()
            .find(|f| f.check == check)
            .unwrap_or_else(|| panic!("no {check} in {findings:#?}"))
            .status
    }

    #[tokio::test]
    async fn writable_dir_passes_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().display().to_string();
        let f = check(&storage(&[(dir.path(), true)])).await;
        assert_eq!(f.len(), 3, "{f:#?}");
        assert!(f.iter().all(|f| f.status == CheckStatus::Pass), "{f:#?}");
        assert_eq!(
            status_of(&f, &format!("storage.path.writable:{p}")),
            CheckStatus::Pass
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn missing_dir_and_plain_file_fail() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let f = check(&storage(&[(&missing, true), (&file, false)])).await;
        assert_eq!(f.len(), 2, "{f:#?}");
        assert_eq!(
            f[0].check,
            format!("storage.path.exists:{}", missing.display())
        );
        assert_eq!(f[0].status, CheckStatus::Fail);
        assert!(f[0].message.ends_with("does not exist on this node"));
        assert_eq!(f[1].status, CheckStatus::Fail);
        assert!(f[1].message.contains("is not a directory"));
    }

    #[tokio::test]
    async fn read_only_dir_is_not_writable() {
        let dir = tempfile::tempdir().unwrap();
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        let f = check(&storage(&[(&ro, true)])).await;
        let id = format!("storage.path.writable:{}", ro.display());
        assert_eq!(
            status_of(&f, &format!("storage.path.readable:{}", ro.display())),
            CheckStatus::Pass
        );
        if is_root() {
            // Root writes regardless of the mode; only the probe's cleanup can be checked.
            assert_eq!(status_of(&f, &id), CheckStatus::Pass);
        } else {
            assert_eq!(status_of(&f, &id), CheckStatus::Fail);
            let w = f.iter().find(|f| f.check == id).unwrap();
            assert!(
                w.message.starts_with("cannot create a file in"),
                "{}",
                w.message
            );
            assert!(w.message.contains("ermission denied"), "{}", w.message);
        }
        assert_eq!(std::fs::read_dir(&ro).unwrap().count(), 0);
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[tokio::test]
    async fn not_writable_flag_skips_the_write_probe() {
        let dir = tempfile::tempdir().unwrap();
        let f = check(&storage(&[(dir.path(), false)])).await;
        assert_eq!(f.len(), 2);
        assert!(
            !f.iter()
                .any(|f| f.check.starts_with("storage.path.writable:"))
        );
    }

    #[tokio::test]
    async fn free_space_is_reported_as_not_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = storage(&[(dir.path(), false)]);
        s.min_free_bytes = Some(1 << 30);
        let f = check(&s).await;
        let free = f.iter().find(|f| f.check == "storage.free_space").unwrap();
        assert_eq!(free.status, CheckStatus::Error);
        assert!(free.message.contains("not checked"));
    }
}
