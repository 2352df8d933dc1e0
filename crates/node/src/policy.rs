//! The node's policy: fetched from the controller (on a `policy_changed`
//! command and periodically), verified (hash, and the control key's
//! signatures over the revision and over its assignment to this node),
//! cached under the state folder, and reported as applied in heartbeats. A
//! bundle that fails verification is not applied: the cached policy stays,
//! and the refusal is reported until a bundle verifies again.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use ritma_protocol::PolicyBundle;
use ritma_protocol::policy::PolicyError;

/// What the heartbeat reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    pub version: Option<String>,
    pub synced_at: Option<DateTime<Utc>>,
    /// Why the last bundle served was refused (None: it was not).
    pub rejected: Option<String>,
}

pub struct PolicyStore {
    cache: PathBuf,
    applied: Mutex<Applied>,
    /// (sha256, mode) of the applied bundle: the same version served with
    /// other content or mode is a change, not "unchanged".
    applied_as: Mutex<Option<(String, ritma_protocol::EnforcementMode)>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The bundle does not verify; the cached policy stays.
    #[error(transparent)]
    Refused(#[from] PolicyError),
    #[error("policy cache: {0}")]
    Cache(String),
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
        let cached = std::fs::read(&cache)
            .ok()
            .and_then(|b| serde_json::from_slice::<PolicyBundle>(&b).ok())
            .filter(|b| b.verify().is_ok());
        Self {
            cache,
            applied: Mutex::new(Applied {
                version: cached.as_ref().map(|b| b.version.clone()),
                synced_at: None,
                rejected: None,
            }),
            applied_as: Mutex::new(cached.map(|b| (b.sha256, b.mode))),
        }
    }

    pub fn applied(&self) -> Applied {
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Apply what the controller assigns (None: nothing assigned), if it
    /// passes `check`; a refused bundle leaves the cached policy in place.
    pub fn apply(
        &self,
        bundle: Option<&PolicyBundle>,
        check: impl Fn(&PolicyBundle) -> Result<(), PolicyError>,
    ) -> Result<Outcome, ApplyError> {
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        let mut applied_as = self.applied_as.lock().unwrap_or_else(|e| e.into_inner());
        applied.synced_at = Some(Utc::now());
        if let Some(b) = bundle
            && let Err(e) = check(b)
        {
            // Bounded: the heartbeat carries it (at most 512 bytes there).
            applied.rejected = Some(e.to_string().chars().take(256).collect());
            return Err(ApplyError::Refused(e));
        }
        applied.rejected = None;
        match bundle {
            None if applied.version.is_none() => Ok(Outcome::Unchanged),
            None => {
                let _ = std::fs::remove_file(&self.cache);
                applied.version = None;
                *applied_as = None;
                Ok(Outcome::Cleared)
            }
            Some(b)
                if applied.version.as_deref() == Some(b.version.as_str())
                    && applied_as.as_ref() == Some(&(b.sha256.clone(), b.mode)) =>
            {
                Ok(Outcome::Unchanged)
            }
            Some(b) => {
                let cache_err = |e: String| ApplyError::Cache(e);
                let tmp = self.cache.with_extension("json.tmp");
                let text = serde_json::to_string(b).map_err(|e| cache_err(e.to_string()))?;
                ritma_bus::creds::write_private(&tmp, &text)
                    .map_err(|e| cache_err(e.to_string()))?;
                std::fs::rename(&tmp, &self.cache).map_err(|e| cache_err(e.to_string()))?;
                applied.version = Some(b.version.clone());
                *applied_as = Some((b.sha256.clone(), b.mode));
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
            node_id: None,
            rulepack_signed_by: String::new(),
            rulepack_signature: String::new(),
            signed_by: String::new(),
            assignment_signature: String::new(),
        }
    }

    fn hash_only(b: &PolicyBundle) -> Result<(), PolicyError> {
        b.verify()
    }

    #[test]
    fn applies_caches_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = PolicyStore::open(dir.path());
        assert_eq!(store.applied().version, None);
        let b1 = bundle(1, "{}");
        assert_eq!(
            store.apply(Some(&b1), hash_only).unwrap(),
            Outcome::Applied("base@1".into())
        );
        assert_eq!(
            store.apply(Some(&b1), hash_only).unwrap(),
            Outcome::Unchanged
        );
        let reopened = PolicyStore::open(dir.path());
        assert_eq!(reopened.applied().version.as_deref(), Some("base@1"));
        assert_eq!(reopened.apply(None, hash_only).unwrap(), Outcome::Cleared);
        assert_eq!(PolicyStore::open(dir.path()).applied().version, None);
    }

    #[test]
    fn refuses_a_bundle_whose_hash_does_not_match_and_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = PolicyStore::open(dir.path());
        store.apply(Some(&bundle(1, "{}")), hash_only).unwrap();
        let mut forged = bundle(2, r#"{"rules":[]}"#);
        forged.content = r#"{"rules":["allow-all"]}"#.into();
        assert!(store.apply(Some(&forged), hash_only).is_err());
        assert_eq!(store.applied().version.as_deref(), Some("base@1"));
        assert!(store.applied().rejected.unwrap().contains("base@2"));
        // The same version served with other content is refused too, and
        // the refusal clears once a good bundle is served again.
        let mut same_version = bundle(1, "{}");
        same_version.content = r#"{"x":1}"#.into();
        assert!(store.apply(Some(&same_version), hash_only).is_err());
        assert_eq!(store.applied().version.as_deref(), Some("base@1"));
        assert_eq!(
            store.apply(Some(&bundle(1, "{}")), hash_only).unwrap(),
            Outcome::Unchanged
        );
        assert_eq!(store.applied().rejected, None);
        assert_eq!(
            PolicyStore::open(dir.path()).applied().version.as_deref(),
            Some("base@1")
        );
    }
}
