//! The claim shapes of every NATS identity the product mints: the operator,
//! the system and controller accounts, one account per org, and users (nodes,
//! integrators, the controller itself). Permission sets are decided here and
//! nowhere else.

use std::collections::BTreeMap;

use nkeys::KeyPair;
use ritma_protocol::{NodeSubject, OrgId, TenantId, subjects};
use serde_json::{Value, json};

use crate::BusError;
use crate::jwt::{self, Claims};

/// No limit, in the server's terms.
const UNLIMITED: i64 = -1;

/// Room for headers (`Nats-Msg-Id`, JetStream's own) and the JSON envelope
/// above the protocol's largest body.
pub const PAYLOAD_HEADROOM_BYTES: i64 = 16 * 1024;

/// The largest message a node or an integrator may publish, enforced by the
/// broker from the user JWT: the protocol's largest message plus headroom.
/// A bigger publish closes that connection (`Maximum Payload Violation`) and
/// nothing of it is stored.
pub const USER_MAX_PAYLOAD_BYTES: i64 =
    ritma_protocol::MAX_MESSAGE_BYTES as i64 + PAYLOAD_HEADROOM_BYTES;

/// A node holds two subscriptions (its commands, its reply inbox); the rest
/// is margin for a client library's own.
pub const NODE_MAX_SUBSCRIPTIONS: i64 = 10;

/// An integrator subscribes to a handful of subjects; this bounds what one
/// credential can cost the broker.
pub const INTEGRATOR_MAX_SUBSCRIPTIONS: i64 = 100;

/// What one user may cost the broker: subscriptions and the largest message
/// (`None`: no limit, for the controller's own users).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserLimits {
    pub subs: Option<i64>,
    pub payload: Option<i64>,
}

impl UserLimits {
    pub const UNLIMITED: Self = Self {
        subs: None,
        payload: None,
    };
}

impl Default for UserLimits {
    fn default() -> Self {
        Self::UNLIMITED
    }
}

fn nats_limits(jetstream: bool) -> Value {
    let js = if jetstream { UNLIMITED } else { 0 };
    json!({
        "subs": UNLIMITED, "data": UNLIMITED, "payload": UNLIMITED,
        "imports": UNLIMITED, "exports": UNLIMITED, "wildcards": true,
        "conn": UNLIMITED, "leaf": UNLIMITED,
        "mem_storage": js, "disk_storage": js, "streams": js, "consumer": js,
    })
}

pub fn operator_jwt(operator: &KeyPair, system_account: &str) -> Result<String, BusError> {
    let nats = json!({ "type": "operator", "version": 2, "system_account": system_account });
    jwt::encode(
        Claims::new(operator, &operator.public_key(), "ritma", nats),
        operator,
    )
}

pub fn system_account_jwt(operator: &KeyPair, account: &str) -> Result<String, BusError> {
    let nats = json!({
        "type": "account", "version": 2, "limits": nats_limits(false),
        // The system account's own service exports, as nsc writes them.
        "exports": [
            { "name": "account-monitoring-services", "subject": "$SYS.REQ.ACCOUNT.*.*",
              "type": "service", "response_type": "Stream", "account_token_position": 4 },
            { "name": "account-monitoring-streams", "subject": "$SYS.ACCOUNT.*.>",
              "type": "stream", "account_token_position": 3 }
        ],
    });
    jwt::encode(Claims::new(operator, account, "SYS", nats), operator)
}

/// What the controller account needs to know about one org.
#[derive(Debug, Clone)]
pub struct OrgAccountRef {
    pub org: OrgId,
    pub account_public_key: String,
}

/// The controller's own account: JetStream on, and for every org a
/// token-required service export of that org's subject space, which the org
/// account imports. A node's JetStream publish in its org account so reaches
/// the central stream here, which acks it.
pub fn controller_account_jwt(
    operator: &KeyPair,
    account: &str,
    orgs: &[OrgAccountRef],
) -> Result<String, BusError> {
    let exports: Vec<Value> = orgs
        .iter()
        .map(|o| {
            json!({
                "name": format!("org-{}", o.org),
                "subject": subjects::org_all(&o.org),
                "type": "service",
                "token_req": true,
                "response_type": "Singleton",
            })
        })
        .collect();
    let nats = json!({
        "type": "account", "version": 2, "limits": nats_limits(true), "exports": exports,
    });
    jwt::encode(
        Claims::new(operator, account, "ritma-controller", nats),
        operator,
    )
}

/// The activation that lets `org_account` import the controller's export of
/// the org's subject space; signed by the controller account.
pub fn activation_jwt(
    controller_account: &KeyPair,
    org: &OrgId,
    org_account: &str,
) -> Result<String, BusError> {
    let nats = json!({
        "type": "activation", "version": 2,
        "subject": subjects::org_all(org),
        "kind": "service",
    });
    jwt::encode(
        Claims::new(controller_account, org_account, &format!("org-{org}"), nats),
        controller_account,
    )
}

/// Everything needed to (re)issue an org's account JWT.
pub struct OrgAccountSpec<'a> {
    pub org: &'a OrgId,
    pub account_public_key: &'a str,
    pub signing_key_public: &'a str,
    pub controller_account: &'a KeyPair,
    /// User public keys revoked in this account, with the time from which
    /// every JWT of theirs issued before it is invalid.
    pub revocations: &'a BTreeMap<String, i64>,
}

pub fn org_account_jwt(operator: &KeyPair, spec: &OrgAccountSpec<'_>) -> Result<String, BusError> {
    let token = activation_jwt(spec.controller_account, spec.org, spec.account_public_key)?;
    let nats = json!({
        "type": "account", "version": 2, "limits": nats_limits(false),
        "signing_keys": [spec.signing_key_public],
        "imports": [{
            "name": "ritma-ingest",
            "subject": subjects::org_all(spec.org),
            "account": spec.controller_account.public_key(),
            "token": token,
            "type": "service",
        }],
        "revocations": spec.revocations,
    });
    jwt::encode(
        Claims::new(
            operator,
            spec.account_public_key,
            &format!("org-{}", spec.org),
            nats,
        ),
        operator,
    )
}

/// A user's permissions.
#[derive(Debug, Clone, Default)]
pub struct UserPermissions {
    pub publish_allow: Vec<String>,
    pub publish_deny: Vec<String>,
    pub subscribe_allow: Vec<String>,
    /// Allow replying once to requests (nodes answer dry-run commands).
    pub allow_responses: bool,
    /// Subscription and payload limits carried in the user JWT.
    pub limits: UserLimits,
}

impl UserPermissions {
    /// A node publishes only its own telemetry and subscribes only its own
    /// commands and its own reply inbox.
    pub fn node(scope: &NodeSubject) -> Self {
        use ritma_protocol::TelemetryKind;
        let inbox = scope.inbox_prefix();
        Self {
            publish_allow: TelemetryKind::ALL
                .iter()
                .map(|k| scope.telemetry(*k))
                .collect(),
            publish_deny: vec![],
            subscribe_allow: vec![scope.commands_wildcard(), format!("{inbox}.>")],
            allow_responses: true,
            limits: UserLimits {
                subs: Some(NODE_MAX_SUBSCRIPTIONS),
                payload: Some(USER_MAX_PAYLOAD_BYTES),
            },
        }
    }

    /// Read-only: publishing anything is denied. `subjects` are what the
    /// controller granted; empty means the default (telemetry and state
    /// changes, never commands nor the audit trail).
    pub fn integrator(org: &OrgId, tenant: Option<&TenantId>, subjects: &[String]) -> Self {
        let subscribe_allow = if subjects.is_empty() {
            subjects::integrator_subjects(org, tenant, &[])
        } else {
            subjects.to_vec()
        };
        Self {
            publish_allow: vec![],
            publish_deny: vec![">".into()],
            subscribe_allow,
            allow_responses: false,
            limits: UserLimits {
                subs: Some(INTEGRATOR_MAX_SUBSCRIPTIONS),
                payload: Some(USER_MAX_PAYLOAD_BYTES),
            },
        }
    }

    /// The controller inside an org account: it publishes state changes,
    /// commands, audit entries and alerts of that org, and reads replies on
    /// its own inbox.
    pub fn controller_in_org(org: &OrgId) -> Self {
        Self {
            publish_allow: vec![
                subjects::state_changes(org, None),
                subjects::org_commands(org),
                subjects::audit(org),
                subjects::alerts(org),
                subjects::jobs(org),
                subjects::activity(org),
            ],
            publish_deny: vec![],
            subscribe_allow: vec![
                subjects::state_changes(org, None),
                "_INBOX_ritma_controller.>".into(),
            ],
            allow_responses: false,
            limits: UserLimits::UNLIMITED,
        }
    }

    /// The console's live feed, a user of the controller account: subscribe
    /// to the node state changes, alert notifications, bulk job progress and
    /// rollup cues of every org (each org account's service import delivers them here)
    /// and nothing else; publishing anything, replies included, is denied.
    pub fn console() -> Self {
        Self {
            publish_allow: vec![],
            publish_deny: vec![">".into()],
            subscribe_allow: vec![
                subjects::all_state_changes(),
                subjects::all_alerts(),
                subjects::all_jobs(),
                subjects::all_activity(),
            ],
            allow_responses: false,
            limits: UserLimits {
                subs: Some(CONSOLE_MAX_SUBS),
                payload: Some(CONSOLE_MAX_PAYLOAD),
            },
        }
    }

    fn to_json(&self) -> Value {
        let mut pub_ = serde_json::Map::new();
        if !self.publish_allow.is_empty() {
            pub_.insert("allow".into(), json!(self.publish_allow));
        }
        if !self.publish_deny.is_empty() {
            pub_.insert("deny".into(), json!(self.publish_deny));
        }
        let mut v = json!({ "pub": pub_, "sub": { "allow": self.subscribe_allow } });
        if self.allow_responses {
            v["resp"] = json!({ "max": 1, "ttl": 0 });
        }
        v
    }
}

/// A user JWT in an org (or the controller) account, signed by that
/// account's signing key (`issuer_account` names the account).
pub struct UserSpec<'a> {
    pub name: &'a str,
    pub user_public_key: &'a str,
    pub account_public_key: &'a str,
    pub permissions: &'a UserPermissions,
    pub expires_at: Option<i64>,
}

pub fn user_jwt(signing_key: &KeyPair, spec: &UserSpec<'_>) -> Result<String, BusError> {
    let mut nats = spec.permissions.to_json();
    nats["type"] = json!("user");
    nats["version"] = json!(2);
    let limits = spec.permissions.limits;
    nats["subs"] = json!(limits.subs.unwrap_or(UNLIMITED));
    nats["data"] = json!(UNLIMITED);
    nats["payload"] = json!(limits.payload.unwrap_or(UNLIMITED));
    if signing_key.public_key() != spec.account_public_key {
        nats["issuer_account"] = json!(spec.account_public_key);
    }
    let mut claims = Claims::new(signing_key, spec.user_public_key, spec.name, nats);
    if let Some(exp) = spec.expires_at {
        claims = claims.expires_at(exp);
    }
    jwt::encode(claims, signing_key)
}

/// A user with every permission in its account (the controller's own users).
pub fn unrestricted_user_jwt(
    account: &KeyPair,
    user_public_key: &str,
    name: &str,
) -> Result<String, BusError> {
    let nats = json!({
        "type": "user", "version": 2, "pub": {}, "sub": {},
        "subs": UNLIMITED, "data": UNLIMITED, "payload": UNLIMITED,
    });
    jwt::encode(Claims::new(account, user_public_key, name, nats), account)
}

/// Subscriptions the console's bus user may hold (it needs four).
pub const CONSOLE_MAX_SUBS: i64 = 6;
/// Largest message the console's bus user may publish (it may publish
/// nothing; the limit bounds what a stolen credential could try).
pub const CONSOLE_MAX_PAYLOAD: i64 = 1024;

/// The console's live-feed user JWT, in the controller account, signed by
/// that account's key: [`UserPermissions::console`], a few subscriptions, a
/// small payload limit, and an expiry (the console renews it).
pub fn console_user_jwt(
    controller_account: &KeyPair,
    user_public_key: &str,
    expires_at: i64,
) -> Result<String, BusError> {
    let mut nats = UserPermissions::console().to_json();
    nats["type"] = json!("user");
    nats["version"] = json!(2);
    nats["subs"] = json!(CONSOLE_MAX_SUBS);
    nats["data"] = json!(UNLIMITED);
    nats["payload"] = json!(CONSOLE_MAX_PAYLOAD);
    jwt::encode(
        Claims::new(controller_account, user_public_key, "ritma-console", nats)
            .expires_at(expires_at),
        controller_account,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org_jwt_with(revoked: usize) -> String {
        let operator = KeyPair::new_operator();
        let account = KeyPair::new_account();
        let signing = KeyPair::new_account();
        let controller = KeyPair::new_account();
        let org = OrgId::new("acme").unwrap();
        let revocations: BTreeMap<String, i64> = (0..revoked)
            .map(|i| (format!("U{:055}", i), 1_765_000_000 + i as i64))
            .collect();
        org_account_jwt(
            &operator,
            &OrgAccountSpec {
                org: &org,
                account_public_key: &account.public_key(),
                signing_key_public: &signing.public_key(),
                controller_account: &controller,
                revocations: &revocations,
            },
        )
        .unwrap()
    }

    /// The bound stated in deploy/README.md: with the default `max_payload`
    /// (1 MiB) an org's account JWT holds about 11,000 live revocations;
    /// 20,000 would not fit, hence the pruning.
    #[test]
    fn live_revocations_that_fit_in_one_account_jwt() {
        const MIB: usize = 1024 * 1024;
        let base = org_jwt_with(0).len();
        let per_entry = (org_jwt_with(1000).len() - base) as f64 / 1000.0;
        let fit = ((MIB - base) as f64 / per_entry) as usize;
        eprintln!("{fit} live revocations fit ({per_entry} B each, {base} B without)");
        assert!(
            (11_000..11_500).contains(&fit),
            "{fit} ({per_entry} B each)"
        );
        assert!(org_jwt_with(11_000).len() < MIB);
        assert!(org_jwt_with(20_000).len() > MIB);
    }

    #[test]
    fn node_and_integrator_jwts_carry_limits() {
        let account = KeyPair::new_account();
        let user = KeyPair::new_user();
        let org = OrgId::new("acme").unwrap();
        let scope = NodeSubject::new(
            org.clone(),
            TenantId::new("prod").unwrap(),
            ritma_protocol::NodeId::new("n1").unwrap(),
        );
        for (perms, subs) in [
            (UserPermissions::node(&scope), NODE_MAX_SUBSCRIPTIONS),
            (
                UserPermissions::integrator(&org, None, &[]),
                INTEGRATOR_MAX_SUBSCRIPTIONS,
            ),
        ] {
            let jwt = user_jwt(
                &account,
                &UserSpec {
                    name: "u",
                    user_public_key: &user.public_key(),
                    account_public_key: &account.public_key(),
                    permissions: &perms,
                    expires_at: Some(2_000_000_000),
                },
            )
            .unwrap();
            let claims = jwt::decode_verified(&jwt).unwrap();
            assert_eq!(claims.nats["subs"], subs);
            assert_eq!(claims.nats["payload"], USER_MAX_PAYLOAD_BYTES);
            assert!(USER_MAX_PAYLOAD_BYTES > ritma_protocol::MAX_MESSAGE_BYTES as i64);
        }
    }
}
