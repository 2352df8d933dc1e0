//! Clients of the optional upstream services. Each is off unless its URL is
//! configured; tests run them against real HTTP stand-ins.

pub mod billing;
pub mod ritma_cloud;

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{service} unreachable: {message}")]
    Unreachable {
        service: &'static str,
        message: String,
    },
    #[error("{service} answered {status}: {message}")]
    Refused {
        service: &'static str,
        status: u16,
        message: String,
    },
    #[error("{service} sent an unreadable answer: {message}")]
    Malformed {
        service: &'static str,
        message: String,
    },
}

impl From<UpstreamError> for crate::error::ApiError {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::Refused { status: 404, .. } => Self::NotFound(e.to_string()),
            other => Self::Upstream(other.to_string()),
        }
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(3))
        .build()
        .unwrap_or_default()
}

/// Send, and read a JSON answer or a precise error.
async fn send_json<T: serde::de::DeserializeOwned>(
    service: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<T, UpstreamError> {
    let resp = request
        .send()
        .await
        .map_err(|e| UpstreamError::Unreachable {
            service,
            message: e.to_string(),
        })?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| UpstreamError::Unreachable {
        service,
        message: e.to_string(),
    })?;
    if !status.is_success() {
        return Err(UpstreamError::Refused {
            service,
            status: status.as_u16(),
            message: String::from_utf8_lossy(&body).chars().take(300).collect(),
        });
    }
    serde_json::from_slice(&body).map_err(|e| UpstreamError::Malformed {
        service,
        message: e.to_string(),
    })
}
