//! Org accounts on the bus: creating an org's NATS account, pushing account
//! JWTs (controller account exports, org imports, revocations), minting user
//! credentials in an org, and the controller's own connection into each org
//! account (for state changes and commands).

use std::collections::HashMap;
use std::sync::Arc;

use nkeys::KeyPair;
use ritma_bus::accounts::{self, OrgAccountRef, OrgAccountSpec, UserPermissions, UserSpec};
use ritma_bus::{BusKeys, claims_push, connect};
use ritma_db::orgs::{self, OrgRecord};
use ritma_protocol::OrgId;
use sqlx::PgPool;
use tokio::sync::Mutex;

use crate::crypto::MasterKey;
use crate::error::ApiError;

pub struct Accounts {
    pub keys: BusKeys,
    master: MasterKey,
    pool: PgPool,
    nats_urls: Vec<String>,
    tls: connect::BusTls,
    system: async_nats::Client,
    org_clients: Mutex<HashMap<String, async_nats::Client>>,
    /// Serialises account JWT pushes so a newer JWT is never overtaken.
    push_lock: Mutex<()>,
}

/// An org's decrypted keys, alive only while credentials are minted.
pub struct OrgKeys {
    pub account_public_key: String,
    pub signing: KeyPair,
}

impl Accounts {
    pub fn new(
        keys: BusKeys,
        master: MasterKey,
        pool: PgPool,
        nats_urls: Vec<String>,
        system: async_nats::Client,
        tls: connect::BusTls,
    ) -> Self {
        Self {
            keys,
            master,
            pool,
            nats_urls,
            tls,
            system,
            org_clients: Mutex::new(HashMap::new()),
            push_lock: Mutex::new(()),
        }
    }

    fn context(org: &str, purpose: &str) -> String {
        format!("ritma:org:{org}:{purpose}")
    }

    /// Encrypt a secret kept in the database (bound to `context`).
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Vec<u8> {
        self.master.encrypt(plaintext, context)
    }

    pub fn unseal(&self, data: &[u8], context: &str) -> Result<Vec<u8>, ApiError> {
        self.master
            .decrypt(data, context)
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    pub fn org_keys(&self, org: &OrgRecord) -> Result<OrgKeys, ApiError> {
        let seed = self
            .master
            .decrypt(
                &org.nats_signing_seed_enc,
                &Self::context(&org.id, "signing"),
            )
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let seed = String::from_utf8(seed).map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(OrgKeys {
            account_public_key: org.nats_account_public_key.clone(),
            signing: KeyPair::from_seed(&seed).map_err(|e| ApiError::Internal(e.to_string()))?,
        })
    }

    /// Push the controller account and every org account: run at start so the
    /// resolver always matches the database.
    pub async fn reconcile_all(&self) -> Result<(), ApiError> {
        let orgs = orgs::org_list(&self.pool).await?;
        self.push_controller_account(&orgs).await?;
        for org in &orgs {
            let jwt = self.org_account_jwt(org).await?;
            // One org over the bound must not keep the controller (and every
            // other org) down: the broker keeps that org's last account JWT.
            if let Err(e) = self.fits(&jwt) {
                tracing::error!(org = %org.id, error = %e, "org account not pushed at start");
                continue;
            }
            self.push(&jwt).await?;
        }
        Ok(())
    }

    /// The claims update is one message: bigger than the servers take, it
    /// would fail with a less helpful error.
    fn fits(&self, jwt: &str) -> Result<(), ApiError> {
        let max = self.system.server_info().max_payload;
        if max > 0 && jwt.len() > max {
            return Err(ApiError::Bus(format!(
                "an account JWT of {} bytes exceeds the server's max_payload of {max} bytes \
                 (too many live revocations; see deploy/README.md)",
                jwt.len()
            )));
        }
        Ok(())
    }

    async fn push(&self, jwt: &str) -> Result<(), ApiError> {
        self.fits(jwt)?;
        let _guard = self.push_lock.lock().await;
        claims_push::push_account_jwt(&self.system, jwt)
            .await
            .map_err(|e| ApiError::Bus(e.to_string()))
    }

    async fn push_controller_account(&self, orgs: &[OrgRecord]) -> Result<(), ApiError> {
        let refs: Vec<OrgAccountRef> = orgs
            .iter()
            .filter_map(|o| {
                Some(OrgAccountRef {
                    org: OrgId::new(o.id.clone()).ok()?,
                    account_public_key: o.nats_account_public_key.clone(),
                })
            })
            .collect();
        let jwt = accounts::controller_account_jwt(
            &self.keys.operator,
            &self.keys.controller_account.public_key(),
            &refs,
        )
        .map_err(|e| ApiError::Bus(e.to_string()))?;
        self.push(&jwt).await
    }

    pub async fn push_org_account(&self, org: &OrgRecord) -> Result<(), ApiError> {
        let jwt = self.org_account_jwt(org).await?;
        self.push(&jwt).await
    }

    /// The org's account JWT with the revocations that still matter.
    async fn org_account_jwt(&self, org: &OrgRecord) -> Result<String, ApiError> {
        let org_id = OrgId::new(org.id.clone()).map_err(|e| ApiError::Internal(e.to_string()))?;
        let revocations = orgs::org_revocations(&self.pool, &org.id).await?;
        accounts::org_account_jwt(
            &self.keys.operator,
            &OrgAccountSpec {
                org: &org_id,
                account_public_key: &org.nats_account_public_key,
                signing_key_public: &org.nats_signing_public_key,
                controller_account: &self.keys.controller_account,
                revocations: &revocations,
            },
        )
        .map_err(|e| ApiError::Bus(e.to_string()))
    }

    /// Create an org with its own NATS account.
    pub async fn org_create(&self, id: &OrgId, name: &str) -> Result<OrgRecord, ApiError> {
        let account = KeyPair::new_account();
        let signing = KeyPair::new_account();
        let seed = |kp: &KeyPair| kp.seed().map_err(|e| ApiError::Internal(e.to_string()));
        let record = OrgRecord {
            id: id.to_string(),
            name: name.to_owned(),
            nats_account_public_key: account.public_key(),
            nats_account_seed_enc: self.master.encrypt(
                seed(&account)?.as_bytes(),
                &Self::context(id.as_str(), "account"),
            ),
            nats_signing_public_key: signing.public_key(),
            nats_signing_seed_enc: self.master.encrypt(
                seed(&signing)?.as_bytes(),
                &Self::context(id.as_str(), "signing"),
            ),
            created_at: chrono::Utc::now(),
        };
        orgs::org_insert(&self.pool, &record).await.map_err(|e| {
            if e.is_unique_violation() {
                ApiError::Conflict(format!("org {id} already exists"))
            } else {
                e.into()
            }
        })?;
        // Export first, then the import that needs it.
        let all = orgs::org_list(&self.pool).await?;
        self.push_controller_account(&all).await?;
        self.push_org_account(&record).await?;
        Ok(record)
    }

    /// A user JWT in `org`'s account for a key someone else holds (a node,
    /// an integrator). Its expiry is recorded first, so a later revocation of
    /// the key knows how long it must stay in the account JWT.
    pub async fn mint_user(
        &self,
        org: &OrgRecord,
        name: &str,
        user_public_key: &str,
        permissions: &UserPermissions,
        expires_at: Option<i64>,
    ) -> Result<String, ApiError> {
        let expiry = match expires_at {
            Some(secs) => Some(chrono::DateTime::from_timestamp(secs, 0).ok_or_else(|| {
                ApiError::Internal(format!("credential expiry {secs} out of range"))
            })?),
            None => None,
        };
        orgs::credential_expiry_record(&self.pool, &org.id, user_public_key, expiry).await?;
        self.sign_user(org, name, user_public_key, permissions, expires_at)
    }

    /// Sign a user JWT in `org`'s account (nothing recorded: the
    /// controller's own users, whose keys it never revokes).
    fn sign_user(
        &self,
        org: &OrgRecord,
        name: &str,
        user_public_key: &str,
        permissions: &UserPermissions,
        expires_at: Option<i64>,
    ) -> Result<String, ApiError> {
        let keys = self.org_keys(org)?;
        accounts::user_jwt(
            &keys.signing,
            &UserSpec {
                name,
                user_public_key,
                account_public_key: &keys.account_public_key,
                permissions,
                expires_at,
            },
        )
        .map_err(|e| ApiError::Bus(e.to_string()))
    }

    /// Revoke a user key in its org account, at the broker, now.
    pub async fn revoke_user(&self, org: &OrgRecord, public_key: &str) -> Result<(), ApiError> {
        orgs::org_revocation_insert(&self.pool, &org.id, public_key).await?;
        self.push_org_account(org).await
    }

    /// The system account's client (the broker's connection events).
    pub fn system_client(&self) -> async_nats::Client {
        self.system.clone()
    }

    /// The controller's connection inside `org`'s account.
    pub async fn org_client(&self, org_id: &str) -> Result<async_nats::Client, ApiError> {
        let mut clients = self.org_clients.lock().await;
        if let Some(c) = clients.get(org_id) {
            return Ok(c.clone());
        }
        let org = orgs::org_get(&self.pool, org_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("org {org_id}")))?;
        let org_key = OrgId::new(org.id.clone()).map_err(|e| ApiError::Internal(e.to_string()))?;
        let user = KeyPair::new_user();
        let jwt = self.sign_user(
            &org,
            "ritma-controller",
            &user.public_key(),
            &UserPermissions::controller_in_org(&org_key),
            None,
        )?;
        let client = connect::connect_with_tls(
            connect::ConnectSpec {
                urls: self.nats_urls.clone(),
                name: format!("ritma-controller/{org_id}"),
                jwt: connect::SharedJwt::new(jwt),
                key: Arc::new(user),
                inbox_prefix: Some("_INBOX_ritma_controller".into()),
                retry_initial: false,
            },
            &self.tls,
        )
        .await
        .map_err(|e| ApiError::Bus(e.to_string()))?;
        clients.insert(org_id.to_owned(), client.clone());
        Ok(client)
    }
}
