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

    /// Move to the bus CA bundle the controller sent, if the pinned key
    /// signed it and it differs from `pinned_pem`; the new bundle is saved
    /// in identity.json and written to bus-ca.pem, which the bus client
    /// reads at its next (re)connect. True when it moved.
    pub fn bus_ca_follow(&self, offered: &trust::SignedBusCa, pinned_pem: Option<&str>) -> bool {
        if pinned_pem == Some(offered.pem.as_str())
            || !offered.pem.contains("-----BEGIN CERTIFICATE-----")
        {
            return false;
        }
        let statement = trust::bus_ca_statement(&self.org, &offered.pem);
        if let Err(e) = trust::verify(
            &self.get(),
            &offered.signed_by,
            &statement,
            &offered.signature,
        ) {
            tracing::warn!(error = %e, "bus CA bundle offered but not signed by the pinned key; ignored");
            return false;
        }
        let saved = identity::identity_load(&self.state_dir).and_then(|id| match id {
            Some(mut id) => {
                id.bus_ca_pem = Some(offered.pem.clone());
                identity::identity_save(&self.state_dir, &id)
            }
            None => Ok(()),
        });
        let written = saved.map_err(|e| e.to_string()).and_then(|()| {
            ritma_bus::creds::write_private(&self.state_dir.join("bus-ca.pem"), &offered.pem)
                .map_err(|e| e.to_string())
        });
        match written {
            Ok(()) => {
                tracing::info!("bus CA bundle updated (signed by the org's control key)");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "could not save the new bus CA bundle");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bus_ca_bundle_is_taken_only_when_the_pinned_key_signed_it() {
        let dir = tempfile::tempdir().unwrap();
        let org = OrgId::new("acme").unwrap();
        let key = trust::control_key_new();
        let pinned = PinnedKey::new(org.clone(), key.public_key(), dir.path().to_owned());
        let pem = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
        let offer = |signer: &nkeys::KeyPair, claimed: &str| trust::SignedBusCa {
            pem: pem.into(),
            signed_by: claimed.into(),
            signature: trust::sign(signer, &trust::bus_ca_statement(&org, pem)).unwrap(),
        };
        let rogue = trust::control_key_new();
        assert!(!pinned.bus_ca_follow(&offer(&rogue, &rogue.public_key()), None));
        assert!(!pinned.bus_ca_follow(&offer(&rogue, &key.public_key()), None));
        assert!(!dir.path().join("bus-ca.pem").exists());
        assert!(pinned.bus_ca_follow(&offer(&key, &key.public_key()), None));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("bus-ca.pem")).unwrap(),
            pem
        );
        // The same bundle again is no change.
        assert!(!pinned.bus_ca_follow(&offer(&key, &key.public_key()), Some(pem)));
    }
}
