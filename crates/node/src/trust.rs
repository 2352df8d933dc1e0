//! The org control key this node pinned at enrollment (kept in
//! identity.json), and how it moves: only along a rotation signed by the key
//! it already trusts.

use std::path::PathBuf;
use std::sync::RwLock;

use ritma_protocol::OrgId;
use ritma_protocol::trust::{self, KeyRotation};

use crate::identity;

pub struct PinnedKey {
    org: OrgId,
    key: RwLock<String>,
    state_dir: PathBuf,
}

impl PinnedKey {
    pub fn new(org: OrgId, key: String, state_dir: PathBuf) -> Self {
        Self {
            org,
            key: RwLock::new(key),
            state_dir,
        }
    }

    /// The pinned public key (empty: none pinned, everything is refused).
    pub fn get(&self) -> String {
        self.key.read().map(|k| k.clone()).unwrap_or_default()
    }

    /// Follow the org's rotations from the pinned key; pin (and save) the
    /// newest key reached. True when it moved.
    pub fn follow(&self, chain: &[KeyRotation]) -> bool {
        let current = self.get();
        if current.is_empty() || chain.is_empty() {
            return false;
        }
        let newest = trust::chain_follow(&self.org, &current, chain);
        if newest == current {
            return false;
        }
        match self.save(&newest) {
            Ok(()) => {
                tracing::info!(from = %current, to = %newest, "control key rotated; following the signed hand-over");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "could not save the rotated control key; keeping the old one");
                false
            }
        }
    }

    /// Pin `key` when none is pinned yet (a node enrolled before control
    /// keys existed takes its org's key once, from the controller it
    /// refreshes its credentials with). True when it pinned.
    pub fn adopt_if_unpinned(&self, key: &str) -> bool {
        if !self.get().is_empty() || !trust::is_control_key(key) {
            return false;
        }
        match self.save(key) {
            Ok(()) => {
                tracing::warn!(
                    key,
                    "no control key was pinned; pinned the org's current one"
                );
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "could not save the control key");
                false
            }
        }
    }

    fn save(&self, key: &str) -> Result<(), identity::IdentityError> {
        if let Some(mut id) = identity::identity_load(&self.state_dir)? {
            id.control_key = key.to_owned();
            identity::identity_save(&self.state_dir, &id)?;
        }
        if let Ok(mut k) = self.key.write() {
            *k = key.to_owned();
        }
        Ok(())
    }
}
