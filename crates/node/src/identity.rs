//! The node's identity: its NKey (made here, seed kept here, 0600) and what
//! enrollment returned. Later starts reuse it and never enroll again.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use nkeys::KeyPair;
use ritma_bus::creds::write_private;
use ritma_protocol::{NodeId, NodeSubject, OrgId, TenantId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    pub node_id: NodeId,
    pub org_id: OrgId,
    pub tenant_id: TenantId,
    pub public_key: String,
    pub controller_url: String,
    pub nats_urls: Vec<String>,
    pub inbox_prefix: String,
    pub heartbeat_secs: u32,
    pub enrolled_at: DateTime<Utc>,
    /// The org control key this node pinned (`V...`): the only signer of
    /// commands and policies it acts on. Empty in identities older than
    /// control keys (then pinned once from the controller; see trust.rs).
    #[serde(default)]
    pub control_key: String,
    /// The bus CA bundle (PEM) handed out at enrollment, pinned: the bus is
    /// verified against it alone (unless RITMA_NODE_CA_FILE says otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus_ca_pem: Option<String>,
}

impl Identity {
    pub fn scope(&self) -> NodeSubject {
        NodeSubject::new(
            self.org_id.clone(),
            self.tenant_id.clone(),
            self.node_id.clone(),
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path} is readable by others (mode {mode:o}); it must be 0600 (chmod 600 {path})")]
    TooOpen { path: String, mode: u32 },
    #[error("{0}")]
    Io(String),
    #[error("{path} is corrupt: {message}")]
    Corrupt { path: String, message: String },
}

/// Refuse secrets that others can read: a leaked seed is a stolen node.
pub fn check_private(path: &Path) -> Result<(), IdentityError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| IdentityError::Io(format!("{}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::TooOpen {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

/// The node key: loaded from `keystore`, or created there (0600) on first start.
pub fn key_load_or_create(keystore: &Path) -> Result<KeyPair, IdentityError> {
    if keystore.exists() {
        check_private(keystore)?;
        let seed = std::fs::read_to_string(keystore)
            .map_err(|e| IdentityError::Io(format!("{}: {e}", keystore.display())))?;
        return KeyPair::from_seed(seed.trim()).map_err(|e| IdentityError::Corrupt {
            path: keystore.display().to_string(),
            message: e.to_string(),
        });
    }
    let kp = KeyPair::new_user();
    let seed = kp.seed().map_err(|e| IdentityError::Io(e.to_string()))?;
    write_private(keystore, &seed).map_err(|e| IdentityError::Io(e.to_string()))?;
    Ok(kp)
}

pub fn identity_path(state_dir: &Path) -> PathBuf {
    state_dir.join("identity.json")
}

pub fn identity_load(state_dir: &Path) -> Result<Option<Identity>, IdentityError> {
    let path = identity_path(state_dir);
    if !path.exists() {
        return Ok(None);
    }
    check_private(&path)?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| IdentityError::Io(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| IdentityError::Corrupt {
            path: path.display().to_string(),
            message: e.to_string(),
        })
}

pub fn identity_save(state_dir: &Path, identity: &Identity) -> Result<(), IdentityError> {
    let text =
        serde_json::to_string_pretty(identity).map_err(|e| IdentityError::Io(e.to_string()))?;
    write_private(&identity_path(state_dir), &text).map_err(|e| IdentityError::Io(e.to_string()))
}

/// The state folder must not be writable by others (they could swap the identity).
pub fn state_dir_prepare(state_dir: &Path) -> Result<(), IdentityError> {
    use std::os::unix::fs::DirBuilderExt;
    if !state_dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(|e| IdentityError::Io(format!("{}: {e}", state_dir.display())))?;
    }
    let mode = std::fs::metadata(state_dir)
        .map_err(|e| IdentityError::Io(format!("{}: {e}", state_dir.display())))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o022 != 0 {
        return Err(IdentityError::TooOpen {
            path: state_dir.display().to_string(),
            mode,
        });
    }
    Ok(())
}
