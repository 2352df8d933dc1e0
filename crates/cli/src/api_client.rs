//! A small client of the controller API for the CLI.

use serde::Serialize;
use serde::de::DeserializeOwned;

pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').into(),
            token: token.into(),
            http: reqwest::Client::new(),
        }
    }

    async fn decode<R: DeserializeOwned>(resp: reqwest::Response) -> anyhow::Result<R> {
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            anyhow::bail!("controller answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }

    pub async fn get<R: DeserializeOwned>(&self, path: &str) -> anyhow::Result<R> {
        Self::decode(
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .send()
                .await?,
        )
        .await
    }

    async fn send<B: Serialize, R: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &B,
    ) -> anyhow::Result<R> {
        Self::decode(
            self.http
                .request(method, format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .json(body)
                .send()
                .await?,
        )
        .await
    }

    pub async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<R> {
        self.send(reqwest::Method::POST, path, body).await
    }

    pub async fn put<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<R> {
        self.send(reqwest::Method::PUT, path, body).await
    }

    /// POST that treats 409 (already exists) as success.
    pub async fn post_idempotent<B: Serialize>(&self, path: &str, body: &B) -> anyhow::Result<()> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await?;
        let status = resp.status();
        if status.is_success() || status == reqwest::StatusCode::CONFLICT {
            return Ok(());
        }
        anyhow::bail!(
            "controller answered {status}: {}",
            resp.text().await.unwrap_or_default()
        )
    }
}
