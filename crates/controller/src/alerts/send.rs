//! One delivery attempt to one channel: a signed webhook, a Slack-style
//! message, an e-mail over SMTP with STARTTLS, or the org's bus subject.

use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, Mac};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use ritma_protocol::alerts::AlertNotification;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::settings::AlertSettings;
use super::target;
use crate::accounts::Accounts;

/// What a channel keeps sealed: the URL (Slack URLs are secrets themselves)
/// or the address, and the webhook's signing secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelSecret {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The AES-GCM context that binds a sealed channel secret to its row.
pub fn seal_context(org_id: &str, channel_id: uuid::Uuid) -> String {
    format!("alert-channel:{org_id}:{channel_id}")
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth another try later (network, 5xx, 429, timeouts).
    #[error("{0}")]
    Retry(String, Option<u16>),
    /// Retrying cannot help (refused target, 4xx, bad configuration).
    #[error("{0}")]
    Permanent(String, Option<u16>),
}

impl SendError {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Retry(_, s) | Self::Permanent(_, s) => *s,
        }
    }
}

/// The webhook body: the notification plus what changes per attempt.
#[derive(Serialize)]
struct WebhookBody<'a> {
    #[serde(flatten)]
    notification: &'a AlertNotification,
    delivery_id: i64,
    sent_at: chrono::DateTime<Utc>,
}

pub const SIGNATURE_HEADER: &str = "x-ritma-signature";
pub const TIMESTAMP_HEADER: &str = "x-ritma-timestamp";
pub const DELIVERY_HEADER: &str = "x-ritma-delivery";

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub struct Sender<'a> {
    pub settings: &'a AlertSettings,
    pub accounts: &'a Accounts,
}

impl Sender<'_> {
    pub async fn send(
        &self,
        kind: &str,
        secret: &ChannelSecret,
        notification: &AlertNotification,
        delivery_id: i64,
    ) -> Result<Option<u16>, SendError> {
        match kind {
            "webhook" => {
                let body = serde_json::to_vec(&WebhookBody {
                    notification,
                    delivery_id,
                    sent_at: Utc::now(),
                })
                .map_err(|e| SendError::Permanent(e.to_string(), None))?;
                let key = secret.secret.as_deref().unwrap_or_default();
                let headers = [
                    (SIGNATURE_HEADER, signature(key, &body)),
                    (TIMESTAMP_HEADER, Utc::now().timestamp().to_string()),
                    (DELIVERY_HEADER, delivery_id.to_string()),
                ];
                self.post(secret, body, &headers).await.map(Some)
            }
            "slack" => {
                let body = serde_json::to_vec(&serde_json::json!({
                    "text": slack_text(notification),
                }))
                .map_err(|e| SendError::Permanent(e.to_string(), None))?;
                self.post(secret, body, &[]).await.map(Some)
            }
            "email" => self.email(secret, notification).await.map(|()| None),
            other => Err(SendError::Permanent(
                format!("unknown channel kind {other}"),
                None,
            )),
        }
    }

    async fn post(
        &self,
        secret: &ChannelSecret,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> Result<u16, SendError> {
        let permanent = |e: target::TargetError| SendError::Permanent(e.to_string(), None);
        let url = target::parse(secret.url.as_deref().unwrap_or_default()).map_err(permanent)?;
        let addr = target::resolve(&url, &self.settings.allowed_networks)
            .await
            .map_err(|e| match e {
                target::TargetError::Resolve(..) => SendError::Retry(e.to_string(), None),
                other => permanent(other),
            })?;
        let host = url.host_str().unwrap_or_default().to_owned();
        // One client per attempt, pinned to the address just checked, no redirects.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(self.settings.timeout_secs.max(1)))
            .resolve(&host, addr)
            .user_agent(concat!("ritma-controller/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SendError::Permanent(e.to_string(), None))?;
        let mut request = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| SendError::Retry(format!("{host}: {e}"), None))?;
        let status = response.status();
        let code = status.as_u16();
        if status.is_success() {
            return Ok(code);
        }
        let what = format!("{host} answered {status}");
        if status.is_server_error() || code == 429 || code == 408 {
            Err(SendError::Retry(what, Some(code)))
        } else {
            Err(SendError::Permanent(what, Some(code)))
        }
    }

    async fn email(&self, secret: &ChannelSecret, n: &AlertNotification) -> Result<(), SendError> {
        let s = self.settings;
        let config = |m: String| SendError::Permanent(m, None);
        let relay = s
            .smtp_url
            .as_deref()
            .ok_or_else(|| config("no SMTP relay is configured (RITMA_SMTP_URL)".into()))?;
        let relay =
            reqwest::Url::parse(relay).map_err(|e| config(format!("RITMA_SMTP_URL: {e}")))?;
        let host = relay
            .host_str()
            .ok_or_else(|| config("RITMA_SMTP_URL has no host".into()))?
            .to_owned();
        let mut tls = TlsParameters::builder(host.clone());
        if let Some(ca) = &s.smtp_ca_file {
            let pem = std::fs::read(ca).map_err(|e| config(format!("{}: {e}", ca.display())))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| config(format!("{}: {e}", ca.display())))?;
            tls = tls.add_root_certificate(cert);
        }
        let tls = tls.build().map_err(|e| config(e.to_string()))?;
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
            .port(relay.port().unwrap_or(587))
            .tls(Tls::Required(tls))
            .timeout(Some(Duration::from_secs(s.timeout_secs.max(1))));
        if let Some(user) = &s.smtp_username {
            let password = match &s.smtp_password_file {
                Some(f) => std::fs::read_to_string(f)
                    .map_err(|e| config(format!("{}: {e}", f.display())))?
                    .trim()
                    .to_owned(),
                None => String::new(),
            };
            transport = transport.credentials(Credentials::new(user.clone(), password));
        }
        let to = secret.address.as_deref().unwrap_or_default();
        let message = Message::builder()
            .from(
                s.smtp_from
                    .parse()
                    .map_err(|e| config(format!("RITMA_SMTP_FROM: {e}")))?,
            )
            .to(to.parse().map_err(|e| config(format!("{to}: {e}")))?)
            .subject(n.headline())
            .header(ContentType::TEXT_PLAIN)
            .body(email_text(n))
            .map_err(|e| config(e.to_string()))?;
        transport
            .build()
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| {
                if e.is_permanent() {
                    SendError::Permanent(format!("{host}: {e}"), None)
                } else {
                    SendError::Retry(format!("{host}: {e}"), None)
                }
            })
    }

    /// Publish on `ritma.<org>.alerts`.
    pub async fn bus(&self, n: &AlertNotification) -> Result<(), SendError> {
        let client = self
            .accounts
            .org_client(n.org_id.as_str())
            .await
            .map_err(|e| SendError::Retry(e.to_string(), None))?;
        let body = serde_json::to_vec(n).map_err(|e| SendError::Permanent(e.to_string(), None))?;
        client
            .publish(ritma_protocol::subjects::alerts(&n.org_id), body.into())
            .await
            .map_err(|e| SendError::Retry(e.to_string(), None))?;
        client
            .flush()
            .await
            .map_err(|e| SendError::Retry(e.to_string(), None))
    }
}

fn where_of(n: &AlertNotification) -> String {
    match (&n.tenant_id, &n.node_id) {
        (Some(t), Some(node)) => format!("{}/{t}/{node}", n.org_id),
        (_, Some(node)) => format!("{}/{node}", n.org_id),
        _ => n.org_id.to_string(),
    }
}

fn slack_text(n: &AlertNotification) -> String {
    format!(
        "*{}*\n{} · `{}` · {}\n{}",
        n.headline(),
        n.event.as_str(),
        where_of(n),
        n.at.to_rfc3339(),
        n.detail
    )
}

fn email_text(n: &AlertNotification) -> String {
    format!(
        "{}\n\nEvent:   {}\nStatus:  {}\nWhere:   {}\nSince:   {}\nRule:    {} ({})\nDetail:  {}\nAlert:   {}\n",
        n.headline(),
        n.event.as_str(),
        n.status.as_str(),
        where_of(n),
        n.at.to_rfc3339(),
        n.rule_name,
        n.rule_id,
        n.detail,
        n.alert_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_raw_body() {
        // RFC 4231 test case 2.
        let sig = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
