//! The daemon's HTTP calls to the controller, through the contract's typed
//! client; refusals sorted into permanent and worth retrying.

use std::time::Duration;

use data_encoding::BASE64URL_NOPAD;
use nkeys::KeyPair;
use ritma_api::client::{self as api, Client};
use ritma_api::endpoint::{Endpoint, RequestBody, ResponseBody};
use ritma_api::params::{NoParams, NodePath};
use ritma_api::{ErrorBody, routes};
use ritma_protocol::NodeId;
use ritma_protocol::enrollment::{
    CredentialsRequest, CredentialsResponse, RegisterRequest, RegisterResponse, RekeyRequest,
    credentials_challenge, rekey_challenge,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("controller unreachable at {url}: {message}")]
    Unreachable { url: String, message: String },
    /// The controller answered with a refusal that retrying will not change.
    #[error("controller refused ({status} {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
}

impl ClientError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Refused { status, .. } if *status < 500)
    }
}

pub struct ControllerClient {
    client: Client,
}

impl ControllerClient {
    /// A client of the controller at `base`; with `ca_file`, its HTTPS
    /// certificate must chain to that bundle alone.
    pub fn new(base: &str, ca_file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let mut http = reqwest::Client::builder().timeout(Duration::from_secs(15));
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("RITMA_NODE_CA_FILE {}: {e}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| anyhow::anyhow!("RITMA_NODE_CA_FILE {}: {e}", path.display()))?;
            http = http.tls_built_in_root_certs(false);
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        Ok(Self {
            client: Client::new(http.build()?, base),
        })
    }

    /// Calls `E` (a node-facing operation: its body proves the node's key).
    async fn call<E: Endpoint<Query = NoParams>>(
        &self,
        path: &E::Path,
        body: &<E::Request as RequestBody>::Value,
    ) -> Result<<E::Response as ResponseBody>::Value, ClientError> {
        self.client
            .call::<E>(path, &NoParams {}, body)
            .await
            .map_err(|e| match e {
                api::ClientError::Status { status, body, .. } => {
                    let body = body.unwrap_or(ErrorBody {
                        error: "unknown".into(),
                        message: status.to_string(),
                    });
                    ClientError::Refused {
                        status,
                        code: body.error,
                        message: body.message,
                    }
                }
                other => ClientError::Unreachable {
                    url: self.client.base().to_owned(),
                    message: other.to_string(),
                },
            })
    }

    fn unsigned(&self, e: nkeys::error::Error) -> ClientError {
        ClientError::Unreachable {
            url: self.client.base().to_owned(),
            message: e.to_string(),
        }
    }

    pub async fn register(&self, req: &RegisterRequest) -> Result<RegisterResponse, ClientError> {
        self.call::<routes::RegisterNode>(&NoParams {}, req).await
    }

    /// A fresh JWT, proving possession of the node key by a signature.
    pub async fn refresh(
        &self,
        node: &NodeId,
        key: &KeyPair,
    ) -> Result<CredentialsResponse, ClientError> {
        let timestamp = chrono::Utc::now().timestamp();
        let signature = key
            .sign(credentials_challenge(node, timestamp).as_bytes())
            .map_err(|e| self.unsigned(e))?;
        let req = CredentialsRequest {
            timestamp,
            signature: BASE64URL_NOPAD.encode(&signature),
        };
        self.call::<routes::RefreshNodeCredentials>(&NodePath::new(node.as_str()), &req)
            .await
    }

    /// The policy bundle assigned to this node, proven by its key.
    pub async fn policy(
        &self,
        node: &NodeId,
        key: &KeyPair,
    ) -> Result<ritma_protocol::policy::PolicyFetchResponse, ClientError> {
        use ritma_protocol::policy::{PolicyFetchRequest, policy_challenge};
        let timestamp = chrono::Utc::now().timestamp();
        let signature = key
            .sign(policy_challenge(node, timestamp).as_bytes())
            .map_err(|e| self.unsigned(e))?;
        let req = PolicyFetchRequest {
            timestamp,
            signature: BASE64URL_NOPAD.encode(&signature),
        };
        self.call::<routes::FetchNodePolicy>(&NodePath::new(node.as_str()), &req)
            .await
    }

    /// Move to `new_public_key`, proven by the current key.
    pub async fn rekey(
        &self,
        node: &NodeId,
        current: &KeyPair,
        new_public_key: &str,
    ) -> Result<CredentialsResponse, ClientError> {
        let timestamp = chrono::Utc::now().timestamp();
        let signature = current
            .sign(rekey_challenge(node, new_public_key, timestamp).as_bytes())
            .map_err(|e| self.unsigned(e))?;
        let req = RekeyRequest {
            new_public_key: new_public_key.to_owned(),
            timestamp,
            signature: BASE64URL_NOPAD.encode(&signature),
        };
        self.call::<routes::RekeyNode>(&NodePath::new(node.as_str()), &req)
            .await
    }
}
