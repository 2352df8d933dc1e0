//! The NATS server's connection events (`$SYS.ACCOUNT.<account>.CONNECT` and
//! `.DISCONNECT`, see [`crate::subjects::broker_connection_events`]), as
//! nats-server 2.9 and later publish them in the system account. Only the
//! fields the controller reads are kept; unknown fields are ignored.
//!
//! Who connected is read from the user JWT the server checked, never from
//! the `user` or `name` fields alone: the server reports a client's own
//! `nkey`/`user` connect options in `user`, and `name` is whatever the
//! client chose.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// `io.nats.server.advisory.v1.client_connect` / `client_disconnect`.
#[derive(Debug, Clone, Deserialize)]
pub struct BrokerClientEvent {
    #[serde(rename = "type", default)]
    pub event_type: String,
    /// When the server published the event (its clock).
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
    pub server: BrokerServer,
    pub client: BrokerClient,
    /// Disconnects only: the server's reason ("Client Closed", "Stale
    /// Connection", "Authentication Expired", ...).
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BrokerServer {
    #[serde(default)]
    pub name: String,
    /// The server's id: with the client id, names one connection in a cluster.
    pub id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BrokerClient {
    /// The connection id, unique on its server.
    pub id: u64,
    /// The account's public key.
    #[serde(default)]
    pub acc: String,
    /// As reported by the server; may be a client-chosen option (see module doc).
    #[serde(default)]
    pub user: String,
    /// The client-chosen connection name: never an identity.
    #[serde(default)]
    pub name: String,
    /// The user JWT the client authenticated with.
    #[serde(default)]
    pub jwt: String,
    #[serde(default)]
    pub start: Option<DateTime<Utc>>,
    /// Disconnects only: when the server closed the connection.
    #[serde(default)]
    pub stop: Option<DateTime<Utc>>,
}

impl BrokerClientEvent {
    /// When the event happened by the server's clock (a disconnect's `stop`).
    pub fn at(&self) -> Option<DateTime<Utc>> {
        self.client.stop.or(self.timestamp)
    }
}

impl BrokerClient {
    /// The public key of the user the server authenticated: the subject of
    /// the user JWT it verified the connection's signature against. None
    /// for connections without a user JWT (not a node).
    pub fn authenticated_user(&self) -> Option<String> {
        jwt_user(&self.jwt)
    }
}

/// The user key a user JWT names (its subject), without checking its
/// signature: the server did, before it let the connection in.
fn jwt_user(jwt: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Claims {
        sub: String,
    }
    let payload = jwt.split('.').nth(1)?;
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(payload.trim_end_matches('=').as_bytes())
        .ok()?;
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    let is_user_key = claims.sub.len() == 56
        && claims.sub.starts_with('U')
        && claims
            .sub
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    is_user_key.then_some(claims.sub)
}

/// The body of a [`crate::subjects::broker_account_connz`] request: open
/// connections with a subscription on `subject` (a node's command subjects:
/// only that node may subscribe there), with their JWTs. The server's
/// `user` filter is not used: nats-server 2.9 compares it with a
/// client-chosen option, not the JWT's user. The answer is checked with
/// [`BrokerConnzReply::names_user`].
pub fn broker_connz_request(subject: &str) -> serde_json::Value {
    serde_json::json!({ "filter_subject": subject, "auth": true, "state": 0, "limit": 16 })
}

/// One server's answer to a CONNZ request.
#[derive(Debug, Clone, Deserialize)]
pub struct BrokerConnzReply {
    #[serde(default)]
    pub data: Option<BrokerConnz>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BrokerConnz {
    #[serde(default)]
    pub connections: Vec<BrokerConnInfo>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BrokerConnInfo {
    #[serde(default)]
    pub cid: u64,
    #[serde(default)]
    pub jwt: String,
}

impl BrokerConnzReply {
    /// True when an open connection authenticated as `user_key` is listed.
    pub fn names_user(&self, user_key: &str) -> bool {
        self.data.as_ref().is_some_and(|d| {
            d.connections
                .iter()
                .any(|c| jwt_user(&c.jwt).as_deref() == Some(user_key))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt_with_sub(sub: &str) -> String {
        let enc =
            |v: serde_json::Value| data_encoding::BASE64URL_NOPAD.encode(v.to_string().as_bytes());
        format!(
            "{}.{}.sig",
            enc(serde_json::json!({"typ": "JWT", "alg": "ed25519-nkey"})),
            enc(serde_json::json!({"sub": sub, "nats": {"type": "user"}}))
        )
    }

    #[test]
    fn the_user_comes_from_the_jwt_not_from_the_reported_fields() {
        let real = format!("U{}", "A".repeat(55));
        let body = serde_json::json!({
            "type": "io.nats.server.advisory.v1.client_disconnect",
            "timestamp": "2026-12-06T06:00:00.123456789Z",
            "server": {"name": "s1", "id": "NSERVER", "ver": "2.9.10"},
            "client": {"id": 7, "acc": "ACC", "user": format!("U{}", "B".repeat(55)),
                       "name": "someone-else", "jwt": jwt_with_sub(&real),
                       "stop": "2026-12-06T06:00:00.1Z"},
            "reason": "Client Closed",
        });
        let e: BrokerClientEvent = serde_json::from_value(body).unwrap();
        assert_eq!(
            e.client.authenticated_user().as_deref(),
            Some(real.as_str())
        );
        assert_eq!(e.reason.as_deref(), Some("Client Closed"));
        assert_eq!(e.at(), e.client.stop);
    }

    #[test]
    fn connections_without_a_user_jwt_name_no_user() {
        for jwt in [
            "",
            "x",
            "a.b.c",
            &jwt_with_sub("ACCOUNTKEY"),
            &jwt_with_sub(&"U".repeat(56).replace('U', "u")),
        ] {
            let c = BrokerClient {
                id: 1,
                acc: String::new(),
                user: "U".into(),
                name: String::new(),
                jwt: jwt.into(),
                start: None,
                stop: None,
            };
            assert_eq!(c.authenticated_user(), None, "{jwt}");
        }
    }
}
