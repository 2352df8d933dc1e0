//! The node's policy: fetched from the controller (on a `policy_changed`
//! command and periodically), verified against its hash, cached under the
//! state folder, and reported as applied in heartbeats.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use ritma_protocol::PolicyBundle;

/// What the heartbeat reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    pub version: Option<String>,
    pub synced_at: Option<DateTime<Utc>>,
}

pub struct PolicyStore {
    cache: PathBuf,
    applied: Mutex<Applied>,
}

#[derive(Debug, PartialEq)]
pub enum Outcome {
    Unchanged,
    Applied(String),
    Cleared,
}

impl PolicyStore {
    /// Load the cached policy, if any (a corrupt cache is ignored: the next
    /// sync replaces it).
    pub fn open(state_dir: &Path) -> Self {
        let cache = state_dir.join("policy.json");
        let version = std::fs::read(&cache)
            .ok()
            .and_then(|b| serde_json::from_slice::<PolicyBundle>(&b).ok())
            .filter(|b| b.verify().is_ok())
            .map(|b| b.version);
        Self {
            cache,
            applied: Mutex::new(Applied {
                version,
                synced_at: None,
            }),
        }
    }

    pub fn applied(&self) -> Applied {
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Apply what the controller assigns (None: nothing assigned).
    pub fn apply(&self, bundle: Option<&PolicyBundle>) -> anyhow::Result<Outcome> {
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        applied.synced_at = Some(Utc::now());
        match bundle {
            None if applied.version.is_none() => Ok(Outcome::Unchanged),
            None => {
                let _ = std::fs::remove_file(&self.cache);
                applied.version = None;
                Ok(Outcome::Cleared)
            }
            Some(b) if applied.version.as_deref() == Some(b.version.as_str()) => {
                Ok(Outcome::Unchanged)
            }
            Some(b) => {
                b.verify()?;
                let tmp = self.cache.with_extension("json.tmp");
                ritma_bus::creds::write_private(&tmp, &serde_json::to_string(b)?)?;
                std::fs::rename(&tmp, &self.cache)?;
                applied.version = Some(b.version.clone());
                Ok(Outcome::Applied(b.version.clone()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ritma_protocol::EnforcementMode;
    use ritma_protocol::policy::{content_sha256, policy_version};

    fn bundle(rev: i32, content: &str) -> PolicyBundle {
        PolicyBundle {
            version: policy_version("base", rev),
            rulepack: "base".into(),
            revision: rev,
            mode: EnforcementMode::Observe,
            frameworks: vec![],
            sha256: content_sha256(content),
            content: content.into(),
            assigned_at: Utc::now(),
        }
    }

    #[test]
    fn applies_caches_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = PolicyStore::open(dir.path());
        assert_eq!(store.applied().version, None);
        let b1 = bundle(1, "{}");
        assert_eq!(
            store.apply(Some(&b1)).unwrap(),
            Outcome::Applied("base@1".into())
        );
        assert_eq!(store.apply(Some(&b1)).unwrap(), Outcome::Unchanged);
        let reopened = PolicyStore::open(dir.path());
        assert_eq!(reopened.applied().version.as_deref(), Some("base@1"));
        assert_eq!(reopened.apply(None).unwrap(), Outcome::Cleared);
        assert_eq!(PolicyStore::open(dir.path()).applied().version, None);
    }

    #[test]
    fn refuses_a_bundle_whose_hash_does_not_match_and_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = PolicyStore::open(dir.path());
        store.apply(Some(&bundle(1, "{}"))).unwrap();
        let mut forged = bundle(2, r#"{"rules":[]}"#);
        forged.content = r#"{"rules":["allow-all"]}"#.into();
        assert!(store.apply(Some(&forged)).is_err());
        assert_eq!(store.applied().version.as_deref(), Some("base@1"));
        assert_eq!(
            PolicyStore::open(dir.path()).applied().version.as_deref(),
            Some("base@1")
        );
    }
}
