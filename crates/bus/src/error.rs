#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("nkey error: {0}")]
    Key(String),
    #[error("io error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed JWT: {0}")]
    MalformedJwt(String),
    #[error("JWT signature does not verify")]
    BadSignature,
    #[error("could not connect to NATS at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("the NATS server refused the account update: {0}")]
    ClaimsRejected(String),
    #[error("NATS request failed: {0}")]
    Request(String),
    #[error("JetStream error: {0}")]
    JetStream(String),
    #[error("refusing to sign {0:?}: not a NATS connect nonce")]
    NotANonce(String),
}

impl BusError {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    pub fn key(e: impl std::fmt::Display) -> Self {
        Self::Key(e.to_string())
    }
}
