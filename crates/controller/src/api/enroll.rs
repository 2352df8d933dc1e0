//! Node enrollment and credential refresh. Both hand out a short-lived user
//! JWT scoped to the node's own subjects; neither ever sees the node's seed.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{Duration, Utc};
use data_encoding::BASE64URL_NOPAD;
use nkeys::KeyPair;
use ritma_bus::accounts::UserPermissions;
use ritma_db::nodes::{self, NewNode, NodeRecord};
use ritma_db::{orgs, tokens};
use ritma_protocol::enrollment::{
    CredentialsRequest, CredentialsResponse, RegisterRequest, RegisterResponse, RekeyRequest,
    credentials_challenge, rekey_challenge,
};
use ritma_protocol::{NodeId, NodeStatus, NodeSubject, OrgId, TenantId};

use super::{AppState, JsonBody, PathParams, path_id};
use crate::crypto::sha256;
use crate::error::ApiError;

/// How far a refresh request's timestamp may be from the controller's clock.
const CLOCK_SKEW_SECS: i64 = 300;

/// A node re-keys at most once in this long: each re-key adds a revocation
/// to the org's account JWT, kept until the old key's credentials expire
/// (the node JWT lifetime, 1 h by default), so this bounds what one node,
/// even a compromised one, can add there (deploy/README.md).
pub const REKEY_MIN_INTERVAL_SECS: i64 = 3600;

fn refused(code: &'static str, message: &str) -> ApiError {
    ApiError::TokenRefused {
        code,
        message: message.into(),
    }
}

fn scope_of(node: &NodeRecord) -> Result<NodeSubject, ApiError> {
    let internal = |e: ritma_protocol::IdError| ApiError::Internal(e.to_string());
    Ok(NodeSubject::new(
        OrgId::new(node.org_id.clone()).map_err(internal)?,
        TenantId::new(node.tenant_id.clone()).map_err(internal)?,
        NodeId::new(node.id.clone()).map_err(internal)?,
    ))
}

fn node_id_of(node: &NodeRecord) -> NodeId {
    // Ids in the table passed NodeId's check when they were written.
    NodeId::new(node.id.clone())
        .unwrap_or_else(|_| NodeId::derive(&node.hostname, &node.public_key))
}

/// Mint the node's bus credential.
async fn node_jwt(
    state: &AppState,
    node: &NodeRecord,
) -> Result<(String, chrono::DateTime<Utc>), ApiError> {
    let org = orgs::org_get(&state.pool, &node.org_id)
        .await?
        .ok_or_else(|| {
            ApiError::Internal(format!(
                "org {} of node {} is missing",
                node.org_id, node.id
            ))
        })?;
    let scope = scope_of(node)?;
    let expires_at = Utc::now() + Duration::seconds(state.node_jwt_ttl_secs);
    let jwt = state
        .accounts
        .mint_user(
            &org,
            &format!("node-{}", node.id),
            &node.public_key,
            &UserPermissions::node(&scope),
            Some(expires_at.timestamp()),
        )
        .await?;
    Ok((jwt, expires_at))
}

pub async fn register(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> Result<Json<RegisterResponse>, ApiError> {
    req.validate()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let valid_key =
        KeyPair::from_public_key(&req.public_key).is_ok() && req.public_key.starts_with('U');
    if !valid_key {
        return Err(ApiError::BadRequest(
            "public_key must be an NKey user public key (U...)".into(),
        ));
    }
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    tokens::token_enrollment_key_lock(&mut tx, &req.public_key).await?;
    let token_hash = sha256(req.token.trim().as_bytes());
    let token = tokens::token_get_by_hash(&mut tx, &token_hash)
        .await?
        .ok_or_else(|| refused("invalid_token", "enrollment token is not valid"))?;
    token_usable(&token)?;

    // The same key enrolling again gets its node back (idempotent, no use consumed).
    if let Some(existing) = nodes::node_lock_by_public_key(&mut tx, &req.public_key).await? {
        if existing.org_id != token.org_id || existing.tenant_id != token.tenant_id {
            return Err(ApiError::Conflict(
                "this key is enrolled in another scope".into(),
            ));
        }
        if existing.status == NodeStatus::Decommissioned.as_str() {
            return Err(refused(
                "node_decommissioned",
                "this node was decommissioned; enroll with a new key",
            ));
        }
        tx.commit().await.map_err(ritma_db::DbError::from)?;
        return respond(&state, &existing).await;
    }
    // A key is one identity: an integrator's key cannot become a node's
    // (revoking one would cut off the other).
    if ritma_db::access::integrator_key_in_use(&mut tx, &req.public_key).await? {
        return Err(ApiError::Conflict(
            "this key is an integrator's; a node makes its own key".into(),
        ));
    }
    // Checked again, for certain, when the use is taken at the end.
    if token.uses >= token.max_uses {
        return Err(refused(
            "token_used_up",
            "enrollment token has no uses left",
        ));
    }
    let node_id = req
        .node_id
        .clone()
        .unwrap_or_else(|| NodeId::derive(&req.hostname, &req.public_key));
    if nodes::node_lock(&mut tx, node_id.as_str()).await?.is_some() {
        return Err(ApiError::Conflict(format!(
            "node id {node_id} is already enrolled with another key"
        )));
    }
    // The token's labels are the operator's word and win over the node's.
    let mut labels: BTreeMap<String, String> = req.labels.clone();
    labels.extend(token.labels.0.clone());
    let node = match nodes::node_insert(
        &mut tx,
        &NewNode {
            id: node_id.as_str(),
            org_id: &token.org_id,
            tenant_id: &token.tenant_id,
            public_key: &req.public_key,
            hostname: &req.hostname,
            labels: &labels,
            capabilities: &req.capabilities,
            agent_version: Some(&req.agent_version),
            enrollment_token_id: token.id,
        },
    )
    .await
    {
        Ok(node) => node,
        // Another key took this id since the check above.
        Err(e) if e.is_unique_violation() => {
            return Err(ApiError::Conflict(format!(
                "node id {node_id} is already enrolled with another key"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let enrolled = format!("enrolled with token {}", token.id);
    ritma_db::outbox::enrollment_record(&mut tx, &node, enrolled).await?;
    // Its policy is known from the start (the node fetches it once connected).
    ritma_db::policies::policies_recompute_for(&mut tx, &node.org_id, Some(&node.id)).await?;
    // The token's use and the audit entry come last: both serialize
    // enrollments (one token row, one audit chain) until the commit, so
    // everything else above runs side by side.
    if !tokens::token_use_take(&mut tx, token.id).await? {
        let now = tokens::token_get_by_hash(&mut tx, &token_hash)
            .await?
            .unwrap_or(token);
        token_usable(&now)?;
        return Err(refused(
            "token_used_up",
            "enrollment token has no uses left",
        ));
    }
    ritma_db::audit::audit_append(
        &mut tx,
        &ritma_db::audit::AuditEntry {
            org_id: Some(node.org_id.clone()),
            actor: format!("enrollment-token:{}", token.id),
            action: "node.enroll".into(),
            target: node.id.clone(),
            source: None,
            before: None,
            after: Some(serde_json::json!({
                "tenant_id": node.tenant_id, "hostname": node.hostname,
                "public_key": node.public_key, "labels": node.labels.0,
            })),
        },
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    tracing::info!(node = %node.id, org = %node.org_id, tenant = %node.tenant_id, "node enrolled");
    respond(&state, &node).await
}

/// Refused while the token is revoked or expired.
fn token_usable(token: &tokens::TokenRecord) -> Result<(), ApiError> {
    if token.revoked_at.is_some() {
        return Err(refused("token_revoked", "enrollment token was revoked"));
    }
    if token.expires_at <= Utc::now() {
        return Err(refused("token_expired", "enrollment token has expired"));
    }
    Ok(())
}

async fn respond(state: &AppState, node: &NodeRecord) -> Result<Json<RegisterResponse>, ApiError> {
    let (jwt, jwt_expires_at) = node_jwt(state, node).await?;
    let scope = scope_of(node)?;
    Ok(Json(RegisterResponse {
        inbox_prefix: scope.inbox_prefix(),
        node_id: scope.node,
        org_id: scope.org,
        tenant_id: scope.tenant,
        jwt,
        jwt_expires_at,
        nats_urls: state.public_nats_urls.to_vec(),
        heartbeat_secs: state.default_heartbeat_secs,
        control_key: state.control.key(&node.org_id).await?.public_key(),
        bus_ca_pem: state.bus_ca_pem.as_deref().map(str::to_owned),
    }))
}

/// A signed request must be recent (against replays of an old signature).
fn check_fresh(timestamp: i64) -> Result<(), ApiError> {
    // abs_diff: any i64 from the client, no overflow (i64::MIN once panicked here).
    if Utc::now().timestamp().abs_diff(timestamp) > CLOCK_SKEW_SECS.unsigned_abs() {
        return Err(refused(
            "stale_request",
            "timestamp is more than five minutes off",
        ));
    }
    Ok(())
}

/// `signature` (base64url) must be the node key's signature of `challenge`.
fn verify_node_signature(
    public_key: &str,
    challenge: &str,
    signature: &str,
) -> Result<(), ApiError> {
    let denied = || refused("invalid_signature", "signature does not prove the node key");
    let signature = BASE64URL_NOPAD
        .decode(signature.as_bytes())
        .map_err(|_| denied())?;
    let key = KeyPair::from_public_key(public_key).map_err(|_| denied())?;
    key.verify(challenge.as_bytes(), &signature)
        .map_err(|_| denied())
}

/// The node `id_raw`, when the request is fresh, signed by its key over
/// `challenge(id, timestamp)`, and the node is not decommissioned.
async fn node_proven(
    state: &AppState,
    id_raw: &str,
    timestamp: i64,
    signature: &str,
    challenge: fn(&NodeId, i64) -> String,
) -> Result<NodeRecord, ApiError> {
    let denied = || refused("invalid_signature", "signature does not prove the node key");
    let node_id: NodeId = path_id(id_raw, "node")?;
    check_fresh(timestamp)?;
    let node = nodes::node_get_any(&state.pool, node_id.as_str())
        .await?
        .ok_or_else(denied)?;
    verify_node_signature(&node.public_key, &challenge(&node_id, timestamp), signature)?;
    if node.status == NodeStatus::Decommissioned.as_str() {
        return Err(refused(
            "node_decommissioned",
            "this node was decommissioned",
        ));
    }
    Ok(node)
}

/// The policy bundle a node must apply, for a node that proves its key.
pub async fn policy_fetch(
    State(state): State<AppState>,
    PathParams(id_raw): PathParams<String>,
    JsonBody(req): JsonBody<ritma_protocol::policy::PolicyFetchRequest>,
) -> Result<Json<ritma_protocol::policy::PolicyFetchResponse>, ApiError> {
    use ritma_protocol::policy::{PolicyBundle, policy_challenge, policy_version};
    let node = node_proven(
        &state,
        &id_raw,
        req.timestamp,
        &req.signature,
        policy_challenge,
    )
    .await?;
    let org = OrgId::new(node.org_id.clone()).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut bundle = ritma_db::policies::policy_for_node(&state.pool, &node.id)
        .await?
        .map(|(pack, mode, assigned_at)| PolicyBundle {
            version: policy_version(&pack.name, pack.revision),
            rulepack: pack.name,
            revision: pack.revision,
            mode: ritma_protocol::EnforcementMode::parse(&mode)
                .unwrap_or(ritma_protocol::EnforcementMode::Observe),
            frameworks: pack.frameworks.0,
            sha256: pack.sha256,
            content: pack.content,
            assigned_at,
            node_id: Some(node_id_of(&node)),
            // The revision's signature as made at its creation: never made
            // again here, so a row edited later does not verify.
            rulepack_signed_by: pack.signed_by.unwrap_or_default(),
            rulepack_signature: pack.signature.unwrap_or_default(),
            signed_by: String::new(),
            assignment_signature: String::new(),
        });
    let key = state.control.key(org.as_str()).await?;
    if let Some(bundle) = bundle.as_mut() {
        crate::trust::ControlKeys::assignment_sign(&key, &org, bundle)?;
    }
    let bus_ca = match state.bus_ca_pem.as_deref() {
        Some(pem) => Some(crate::trust::ControlKeys::bus_ca_sign(&key, &org, pem)?),
        None => None,
    };
    Ok(Json(ritma_protocol::policy::PolicyFetchResponse {
        bundle,
        key_rotations: state.control.chain(org.as_str()).await?,
        bus_ca,
    }))
}

/// A fresh JWT for a node that proves it holds its key.
pub async fn credentials(
    State(state): State<AppState>,
    PathParams(id_raw): PathParams<String>,
    JsonBody(req): JsonBody<CredentialsRequest>,
) -> Result<Json<CredentialsResponse>, ApiError> {
    let node = node_proven(
        &state,
        &id_raw,
        req.timestamp,
        &req.signature,
        credentials_challenge,
    )
    .await?;
    let (jwt, jwt_expires_at) = node_jwt(&state, &node).await?;
    Ok(Json(CredentialsResponse {
        jwt,
        jwt_expires_at,
        nats_urls: state.public_nats_urls.to_vec(),
        control_key: state.control.key(&node.org_id).await?.public_key(),
    }))
}

/// Re-key: the node proves its current key and moves to a new one. The old
/// key is revoked at the broker at once; the reply is a JWT for the new key.
pub async fn rekey(
    State(state): State<AppState>,
    PathParams(id_raw): PathParams<String>,
    JsonBody(req): JsonBody<RekeyRequest>,
) -> Result<Json<CredentialsResponse>, ApiError> {
    let denied = || refused("invalid_signature", "signature does not prove the node key");
    let node_id: NodeId = path_id(&id_raw, "node")?;
    check_fresh(req.timestamp)?;
    if KeyPair::from_public_key(&req.new_public_key).is_err()
        || !req.new_public_key.starts_with('U')
    {
        return Err(ApiError::BadRequest(
            "new_public_key must be an NKey user public key (U...)".into(),
        ));
    }
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    let node = nodes::node_lock(&mut tx, node_id.as_str())
        .await?
        .ok_or_else(denied)?;
    verify_node_signature(
        &node.public_key,
        &rekey_challenge(&node_id, &req.new_public_key, req.timestamp),
        &req.signature,
    )?;
    if node.status == NodeStatus::Decommissioned.as_str() {
        return Err(refused(
            "node_decommissioned",
            "this node was decommissioned",
        ));
    }
    if req.new_public_key == node.public_key {
        return Err(ApiError::BadRequest(
            "new_public_key is the current key".into(),
        ));
    }
    if let Some(last) = nodes::node_rekeyed_at(&mut tx, &node.id).await? {
        let next = last + Duration::seconds(REKEY_MIN_INTERVAL_SECS);
        let wait = (next - Utc::now()).num_seconds();
        if wait > 0 {
            tracing::warn!(node = %node.id, retry_after_secs = wait, "re-key refused: too soon after the last one");
            return Err(ApiError::RateLimited {
                code: "rekey_too_soon",
                message: format!(
                    "this node re-keyed at {last}; a node may re-key once per {REKEY_MIN_INTERVAL_SECS} s (retry in {wait} s)"
                ),
                retry_after_secs: wait.unsigned_abs(),
            });
        }
    }
    nodes::node_set_public_key(&mut tx, &node.id, &req.new_public_key)
        .await
        .map_err(|e| {
            if e.is_unique_violation() {
                ApiError::Conflict("that key belongs to another node".into())
            } else {
                e.into()
            }
        })?;
    ritma_db::audit::audit_append(
        &mut tx,
        &ritma_db::audit::AuditEntry {
            org_id: Some(node.org_id.clone()),
            actor: format!("node:{}", node.id),
            action: "node.rekey".into(),
            target: node.id.clone(),
            source: None,
            before: Some(serde_json::json!({ "public_key": node.public_key })),
            after: Some(serde_json::json!({ "public_key": req.new_public_key })),
        },
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    let org = orgs::org_get(&state.pool, &node.org_id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("org {} missing", node.org_id)))?;
    state.accounts.revoke_user(&org, &node.public_key).await?;
    let mut rekeyed = node;
    rekeyed.public_key = req.new_public_key;
    let (jwt, jwt_expires_at) = node_jwt(&state, &rekeyed).await?;
    tracing::info!(node = %rekeyed.id, "node re-keyed; old key revoked at the broker");
    Ok(Json(CredentialsResponse {
        jwt,
        jwt_expires_at,
        nats_urls: state.public_nats_urls.to_vec(),
        control_key: state.control.key(&rekeyed.org_id).await?.public_key(),
    }))
}
