//! The one typed client of the REST API (feature `client`), shared by the
//! console, the CLI and the simulator: `call::<E>(path, query, body)` for
//! any [`Endpoint`] `E`, the answer read as the operation's own type and a
//! refusal as the contract's [`ErrorBody`].

use std::time::Duration;

use serde::Serialize;

use crate::endpoint::{Endpoint, Method, RequestBody, ResponseBody};
use crate::error::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer: cannot connect, timed out, or the connection broke.
    #[error("the controller did not answer: {0}")]
    Transport(#[from] reqwest::Error),
    /// An answer other than success; `body` is the contract's error body
    /// when the controller sent one.
    #[error("the controller answered {status}: {}", .body.as_ref().map_or(.text.as_str(), |b| b.message.as_str()))]
    Status {
        status: u16,
        body: Option<ErrorBody>,
        /// The raw answer (at most 500 characters), for logs.
        text: String,
    },
    /// A success whose body is not the operation's type.
    #[error("unexpected answer from the controller: {0}")]
    Decode(#[from] serde_json::Error),
    /// A path parameter that is not a string or a number.
    #[error("path parameter {0} has no text form")]
    Path(String),
}

impl ClientError {
    /// The HTTP status, for a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The contract's error code (`not_found`, `node_unreachable`, ...), for a refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Status { body: Some(b), .. } => Some(b.error.as_str()),
            _ => None,
        }
    }

    /// The refusal's sentence for people, else the error's own text.
    pub fn message(&self) -> String {
        match self {
            ClientError::Status { body: Some(b), .. } if !b.message.is_empty() => b.message.clone(),
            ClientError::Status { status, text, .. } => format!("{status}: {text}"),
            other => other.to_string(),
        }
    }
}

/// A client of one controller, calling with one bearer token (or none).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    bearer: Option<String>,
    headers: Vec<(&'static str, String)>,
}

impl Client {
    /// `base` is the controller's URL (`http://127.0.0.1:8080`).
    pub fn new(http: reqwest::Client, base: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            bearer: None,
            headers: Vec::new(),
        }
    }

    /// A client with reasonable timeouts (3 s to connect, `timeout` in all).
    pub fn with_timeout(base: &str, timeout: Duration) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(timeout)
            .build()?;
        Ok(Self::new(http, base))
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The same client, calling with `token` as its bearer.
    pub fn bearer(&self, token: &str) -> Self {
        Self {
            bearer: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// The same client, sending `name: value` with every call (the console
    /// forwards the browser's address as `x-forwarded-for`).
    pub fn header(&self, name: &'static str, value: String) -> Self {
        let mut out = self.clone();
        out.headers.retain(|(n, _)| *n != name);
        out.headers.push((name, value));
        out
    }

    /// Calls `E` and reads its answer.
    pub async fn call<E: Endpoint>(
        &self,
        path: &E::Path,
        query: &E::Query,
        body: &<E::Request as RequestBody>::Value,
    ) -> Result<<E::Response as ResponseBody>::Value, ClientError> {
        let resp = self.send::<E>(path, query, body, None).await?;
        let bytes = resp.bytes().await?;
        Ok(<E::Response as ResponseBody>::decode(&bytes)?)
    }

    /// Calls `E` and reads its answer as `T`: a view of that answer (the
    /// console's page models), which must read the operation's own type
    /// (the console tests that each does).
    pub async fn call_as<E: Endpoint, T: serde::de::DeserializeOwned>(
        &self,
        path: &E::Path,
        query: &E::Query,
        body: &<E::Request as RequestBody>::Value,
    ) -> Result<T, ClientError> {
        let resp = self.send::<E>(path, query, body, None).await?;
        let bytes = resp.bytes().await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Calls `E` and hands back the successful answer unread, for a body the
    /// caller streams (the exports); `timeout` replaces the client's own.
    pub async fn stream<E: Endpoint>(
        &self,
        path: &E::Path,
        query: &E::Query,
        timeout: Duration,
    ) -> Result<reqwest::Response, ClientError>
    where
        E::Request: RequestBody<Value = ()>,
    {
        self.send::<E>(path, query, &(), Some(timeout)).await
    }

    async fn send<E: Endpoint>(
        &self,
        path: &E::Path,
        query: &E::Query,
        body: &<E::Request as RequestBody>::Value,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, ClientError> {
        let url = format!("{}{}", self.base, fill_path(E::PATH, path)?);
        let method = match E::METHOD {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut req = self.http.request(method, url).query(query);
        if let Some(token) = &self.bearer {
            req = req.bearer_auth(token);
        }
        for (name, value) in &self.headers {
            req = req.header(*name, value);
        }
        if <E::Request as RequestBody>::PRESENT {
            req = req.json(body);
        }
        if let Some(timeout) = timeout {
            req = req.timeout(timeout);
        }
        let resp = req.send().await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        Err(ClientError::Status {
            status: status.as_u16(),
            body: serde_json::from_str(&text).ok(),
            text: text.chars().take(500).collect(),
        })
    }
}

/// `template` with each `{name}` replaced by the percent-encoded value of
/// the field `name` of `params`.
pub fn fill_path<P: Serialize>(template: &str, params: &P) -> Result<String, ClientError> {
    let values = serde_json::to_value(params)?;
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let name = &rest[open + 1..open + close];
        let text = match values.get(name) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => return Err(ClientError::Path(name.to_owned())),
        };
        out.push_str(&encode_segment(&text));
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so a
/// value is always one path segment.
fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{NoParams, OrgNodePath, RoleGrantPath};

    #[test]
    fn a_path_is_filled_with_one_encoded_segment_per_parameter() {
        let path = OrgNodePath {
            org: "acme".into(),
            id: "node-1".into(),
        };
        assert_eq!(
            fill_path("/api/orgs/{org}/nodes/{id}", &path).expect("fills"),
            "/api/orgs/acme/nodes/node-1"
        );
        let hostile = RoleGrantPath {
            org: "acme".into(),
            subject: "../../admin?x=1#".into(),
            role: "a b/c".into(),
        };
        assert_eq!(
            fill_path("/api/orgs/{org}/roles/{subject}/{role}", &hostile).expect("fills"),
            "/api/orgs/acme/roles/..%2F..%2Fadmin%3Fx%3D1%23/a%20b%2Fc"
        );
        assert_eq!(
            fill_path("/api/me", &NoParams {}).expect("fills"),
            "/api/me"
        );
    }

    #[test]
    fn a_path_parameter_the_type_lacks_is_an_error() {
        assert!(matches!(
            fill_path("/api/orgs/{org}", &NoParams {}),
            Err(ClientError::Path(name)) if name == "org"
        ));
    }
}
