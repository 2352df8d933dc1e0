//! The daemon's HTTP calls to the controller.

use std::time::Duration;

use data_encoding::BASE64URL_NOPAD;
use nkeys::KeyPair;
use ritma_api::ErrorBody;
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
    base: String,
    http: reqwest::Client,
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
            base: base.trim_end_matches('/').to_owned(),
            http: http.build()?,
        })
    }

    async fn post<B: serde::Serialize, R: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, ClientError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |e: reqwest::Error| ClientError::Unreachable {
            url: url.clone(),
            message: e.to_string(),
        };
        let resp = self
            .http
            .post(&url)
            .json(body)
            .send()
            .await
            .map_err(unreachable)?;
        let status = resp.status();
        if status.is_success() {
            return resp.json().await.map_err(unreachable);
        }
        let err: ErrorBody = resp.json().await.unwrap_or(ErrorBody {
            error: "unknown".into(),
            message: status.to_string(),
        });
        Err(ClientError::Refused {
            status: status.as_u16(),
            code: err.error,
            message: err.message,
        })
    }

    pub async fn register(&self, req: &RegisterRequest) -> Result<RegisterResponse, ClientError> {
        self.post("/api/nodes/register", req).await
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
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                message: e.to_string(),
            })?;
        let req = CredentialsRequest {
            timestamp,
            signature: BASE64URL_NOPAD.encode(&signature),
        };
        self.post(&format!("/api/nodes/{node}/credentials"), &req)
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
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                message: e.to_string(),
            })?;
        let req = PolicyFetchRequest {
            timestamp,
            signature: BASE64URL_NOPAD.encode(&signature),
        };
        self.post(&format!("/api/nodes/{node}/policy"), &req).await
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
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                message: e.to_string(),
            })?;
        let req = RekeyRequest {
            new_public_key: new_public_key.to_owned(),
            timestamp,
            signature: BASE64URL_NOPAD.encode(&signature),
        };
        self.post(&format!("/api/nodes/{node}/rekey"), &req).await
    }
}
