//! Connecting with a user JWT and its nkey. The JWT is read through a shared
//! cell at every (re)connect, so a refreshed credential is picked up by the
//! next reconnect without rebuilding the client.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::{Auth, AuthError, ConnectOptions};
use nkeys::KeyPair;

use crate::BusError;

/// A JWT that can be replaced while a connection uses it.
#[derive(Clone)]
pub struct SharedJwt(Arc<RwLock<String>>);

impl SharedJwt {
    pub fn new(jwt: String) -> Self {
        Self(Arc::new(RwLock::new(jwt)))
    }

    pub fn set(&self, jwt: String) {
        if let Ok(mut guard) = self.0.write() {
            *guard = jwt;
        }
    }

    pub fn get(&self) -> String {
        self.0.read().map(|g| g.clone()).unwrap_or_default()
    }
}

/// Sign a server's connect nonce, refusing anything not shaped like one: a
/// server (or whoever poses as one) must not get the node key's signature
/// over other bytes, such as a request the controller would take as signed
/// by the node (those carry [`ritma_protocol::enrollment::SIGNED_REQUEST_CONTEXT`]).
pub fn sign_nonce(key: &KeyPair, nonce: &[u8]) -> Result<Vec<u8>, BusError> {
    if !ritma_protocol::enrollment::is_nats_nonce(nonce) {
        return Err(BusError::NotANonce(
            String::from_utf8_lossy(nonce).chars().take(64).collect(),
        ));
    }
    key.sign(nonce).map_err(BusError::key)
}

pub struct ConnectSpec {
    pub urls: Vec<String>,
    pub name: String,
    pub jwt: SharedJwt,
    pub key: Arc<KeyPair>,
    pub inbox_prefix: Option<String>,
    /// Keep retrying the first connect instead of failing (daemons).
    pub retry_initial: bool,
}

pub fn options(spec: &ConnectSpec) -> ConnectOptions {
    let jwt = spec.jwt.clone();
    let key = spec.key.clone();
    let mut opts = ConnectOptions::with_auth_callback(move |nonce| {
        let jwt = jwt.get();
        let key = key.clone();
        async move {
            let signature = sign_nonce(&key, &nonce).map_err(AuthError::new)?;
            let mut auth = Auth::new();
            auth.jwt = Some(jwt);
            auth.signature = Some(signature);
            Ok(auth)
        }
    })
    .name(&spec.name)
    .connection_timeout(Duration::from_secs(5))
    .ping_interval(Duration::from_secs(20))
    .max_reconnects(None::<usize>);
    if let Some(prefix) = &spec.inbox_prefix {
        opts = opts.custom_inbox_prefix(prefix);
    }
    if spec.retry_initial {
        opts = opts.retry_on_initial_connect();
    }
    opts
}

/// TLS towards the bus. With `ca_file`, the server's certificate must chain
/// to that bundle and to nothing else (the system's roots are not loaded)
/// and name the host dialled; TLS is then required whatever the URL scheme.
/// `required` alone: TLS with the system's roots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BusTls {
    pub ca_file: Option<PathBuf>,
    pub required: bool,
}

impl BusTls {
    /// TLS is on for every connection made with these settings.
    pub fn enforced(&self) -> bool {
        self.required || self.ca_file.is_some()
    }

    pub fn apply(&self, mut opts: ConnectOptions) -> ConnectOptions {
        if let Some(ca) = &self.ca_file {
            opts = opts.add_root_certificates(ca.clone());
        }
        if self.enforced() {
            opts = opts.require_tls(true);
        }
        opts
    }
}

pub async fn connect(spec: ConnectSpec) -> Result<async_nats::Client, BusError> {
    connect_with_tls(spec, &BusTls::default()).await
}

pub async fn connect_with_tls(
    spec: ConnectSpec,
    tls: &BusTls,
) -> Result<async_nats::Client, BusError> {
    let url = spec.urls.join(",");
    tls.apply(options(&spec))
        .connect(spec.urls.clone())
        .await
        .map_err(|e| BusError::Connect {
            url,
            message: e.to_string(),
        })
}

/// Connect as an unrestricted user of an account the caller holds the key of.
pub async fn connect_as(
    urls: &[String],
    name: &str,
    jwt: String,
    key: &KeyPair,
) -> Result<async_nats::Client, BusError> {
    connect_as_tls(urls, name, jwt, key, &BusTls::default()).await
}

/// [`connect_as`] with TLS settings.
pub async fn connect_as_tls(
    urls: &[String],
    name: &str,
    jwt: String,
    key: &KeyPair,
    tls: &BusTls,
) -> Result<async_nats::Client, BusError> {
    let key = KeyPair::from_seed(&key.seed().map_err(BusError::key)?).map_err(BusError::key)?;
    connect_with_tls(
        ConnectSpec {
            urls: urls.to_vec(),
            name: name.to_owned(),
            jwt: SharedJwt::new(jwt),
            key: Arc::new(key),
            inbox_prefix: None,
            retry_initial: false,
        },
        tls,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use ritma_protocol::NodeId;

    #[test]
    fn the_node_key_signs_nonces_and_nothing_else() {
        let key = KeyPair::new_user();
        let nonce = b"kZ3oN1_-abcDEF0";
        let sig = sign_nonce(&key, nonce).unwrap();
        assert!(key.verify(nonce, &sig).is_ok());
        // What a rogue server could ask for instead: a request the
        // controller would take as the node's (a re-key to the server's key),
        // or any statement of the control plane.
        let node = NodeId::new("web-1").unwrap();
        let asks = [
            ritma_protocol::enrollment::rekey_challenge(&node, "UROGUE", 1_765_000_000),
            ritma_protocol::enrollment::credentials_challenge(&node, 1_765_000_000),
            ritma_protocol::trust::command_statement("{}"),
            "x".repeat(15) + "\n",
            String::new(),
        ];
        for ask in asks {
            assert!(
                matches!(
                    sign_nonce(&key, ask.as_bytes()),
                    Err(BusError::NotANonce(_))
                ),
                "{ask:?}"
            );
        }
    }
}
