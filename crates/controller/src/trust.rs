//! Org control keys on the controller's side: each org's key (created on
//! first use, its seed encrypted under the master key like the account
//! seeds, in its own table apart from the rows it signs), the signatures it
//! makes (commands, rulepack revisions, assignments), and its rotation.

use nkeys::KeyPair;
use ritma_db::control_keys::{self, ControlKeyRecord};
use ritma_db::policies::{self, Signed};
use ritma_protocol::trust::{self, KeyRotation};
use ritma_protocol::{OrgId, PolicyBundle};
use sqlx::PgPool;

use crate::crypto::MasterKey;
use crate::error::ApiError;

pub struct ControlKeys {
    master: MasterKey,
    pool: PgPool,
    /// Lifetime of each command (seconds).
    pub command_ttl_secs: i64,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

impl ControlKeys {
    pub fn new(master: MasterKey, pool: PgPool, command_ttl_secs: i64) -> Self {
        Self {
            master,
            pool,
            command_ttl_secs,
        }
    }

    fn context(org: &str) -> String {
        format!("ritma:org:{org}:control")
    }

    fn open(&self, record: &ControlKeyRecord) -> Result<KeyPair, ApiError> {
        let seed = self
            .master
            .decrypt(&record.seed_enc, &Self::context(&record.org_id))
            .map_err(internal)?;
        let seed = String::from_utf8(seed).map_err(internal)?;
        KeyPair::from_seed(&seed).map_err(internal)
    }

    fn seal(&self, org: &str, key: &KeyPair) -> Result<Vec<u8>, ApiError> {
        let seed = key.seed().map_err(internal)?;
        Ok(self.master.encrypt(seed.as_bytes(), &Self::context(org)))
    }

    /// The org's active key (made and stored on first use).
    pub async fn key(&self, org: &str) -> Result<KeyPair, ApiError> {
        let record = match control_keys::control_key_active(&self.pool, org).await? {
            Some(r) => r,
            None => {
                let key = trust::control_key_new();
                let sealed = self.seal(org, &key)?;
                control_keys::control_key_insert_first(&self.pool, org, &key.public_key(), &sealed)
                    .await?
            }
        };
        self.open(&record)
    }

    /// The org's rotations, oldest first, for nodes that pinned an older key.
    pub async fn chain(&self, org: &str) -> Result<Vec<KeyRotation>, ApiError> {
        Ok(control_keys::control_key_chain(&self.pool, org)
            .await?
            .into_iter()
            .map(|(previous, key, signature)| KeyRotation {
                previous,
                key,
                signature,
            })
            .collect())
    }

    /// Sign a rulepack revision as it is created.
    pub fn rulepack_sign(
        key: &KeyPair,
        org: &str,
        name: &str,
        revision: i32,
        sha256: &str,
        frameworks: &[String],
    ) -> Result<Signed, ritma_db::DbError> {
        let statement = trust::rulepack_statement(org, name, revision, sha256, frameworks);
        Ok(Signed {
            signed_by: key.public_key(),
            signature: trust::sign(key, &statement)
                .map_err(|e| ritma_db::DbError::Corrupt(e.to_string()))?,
        })
    }

    /// Sign the assignment of `bundle` to its node (as it is served).
    pub fn assignment_sign(
        key: &KeyPair,
        org: &OrgId,
        bundle: &mut PolicyBundle,
    ) -> Result<(), ApiError> {
        let node = bundle
            .node_id
            .clone()
            .ok_or_else(|| internal("a bundle is served to a node"))?;
        let statement = trust::assignment_statement(
            org,
            &node,
            &bundle.version,
            &bundle.sha256,
            bundle.mode.as_str(),
            bundle.assigned_at.timestamp(),
        );
        bundle.signed_by = key.public_key();
        bundle.assignment_signature = trust::sign(key, &statement).map_err(internal)?;
        Ok(())
    }

    /// Sign the bus CA bundle for nodes (they move to it from the one they pinned).
    pub fn bus_ca_sign(
        key: &KeyPair,
        org: &OrgId,
        pem: &str,
    ) -> Result<trust::SignedBusCa, ApiError> {
        Ok(trust::SignedBusCa {
            pem: pem.to_owned(),
            signed_by: key.public_key(),
            signature: trust::sign(key, &trust::bus_ca_statement(org, pem)).map_err(internal)?,
        })
    }

    /// Replace the org's key: the new one is endorsed by the old one (nodes
    /// follow that link without enrolling again), and every revision whose
    /// signature still verifies under the old key is signed again with the
    /// new one. A revision edited in the database does not verify, so it is
    /// not laundered by the rotation; it stays refused.
    /// Runs in the caller's transaction (which also records the audit entry).
    /// Returns (previous key, new key, revisions signed again).
    pub async fn rotate(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        org: &OrgId,
    ) -> Result<(String, String, u64), ApiError> {
        // The org's first key, if it has none yet.
        self.key(org.as_str()).await?;
        let current = control_keys::control_key_lock_active(tx, org.as_str())
            .await?
            .ok_or_else(|| internal("the org's control key vanished"))?;
        let old = self.open(&current)?;
        let new = trust::control_key_new();
        let endorsement = trust::sign(&old, &trust::rotation_statement(org, &new.public_key()))
            .map_err(internal)?;
        control_keys::control_key_rotate(
            tx,
            org.as_str(),
            &current.public_key,
            &new.public_key(),
            &self.seal(org.as_str(), &new)?,
            &endorsement,
        )
        .await?;
        let mut resigned = 0;
        for r in policies::rulepack_signed_all(tx, org.as_str()).await? {
            let statement = trust::rulepack_statement(
                org.as_str(),
                &r.name,
                r.revision,
                &r.sha256,
                &r.frameworks.0,
            );
            let verifies = matches!(
                (&r.signed_by, &r.signature),
                (Some(by), Some(sig)) if trust::verify(&current.public_key, by, &statement, sig).is_ok()
            ) && ritma_protocol::policy::content_sha256(&r.content) == r.sha256;
            if !verifies {
                tracing::warn!(org = %org, rulepack = %r.name, revision = r.revision,
                    "rulepack revision does not verify under the outgoing control key; not signed again");
                continue;
            }
            let signed = Self::rulepack_sign(
                &new,
                org.as_str(),
                &r.name,
                r.revision,
                &r.sha256,
                &r.frameworks.0,
            )?;
            policies::rulepack_signature_set(tx, org.as_str(), &r.name, r.revision, &signed)
                .await?;
            resigned += 1;
        }
        Ok((current.public_key, new.public_key(), resigned))
    }
}
