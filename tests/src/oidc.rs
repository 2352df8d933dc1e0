//! A real OpenID provider process (tests/oidc/provider.mjs, oidc-provider
//! from npm) and a client that signs people in with the authorization-code
//! flow and PKCE, as the console does.

use std::process::Stdio;
use std::time::Duration;

use data_encoding::BASE64URL_NOPAD;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};

pub const AUDIENCE: &str = "https://api.ritma.test";
pub const REDIRECT_URI: &str = "http://127.0.0.1:1/callback";

/// The provider binds a port the kernel picks: choosing one here and passing
/// it on races other processes for it (CI saw EADDRINUSE).
const ANY_PORT: u16 = 0;

pub struct OidcProvider {
    pub issuer: String,
    port: u16,
    redirect_uri: String,
    accounts: Value,
    // Held so the provider is killed when this is dropped.
    _process: tokio::process::Child,
}

impl OidcProvider {
    /// `accounts`: `{id: {"email": ..., "ritma_roles": {...}}}`.
    pub async fn start(accounts: Value, kid: &str) -> anyhow::Result<Self> {
        Self::start_for(accounts, kid, REDIRECT_URI).await
    }

    /// A provider whose one client (`ritma-console`) redirects to `redirect_uri`.
    pub async fn start_for(accounts: Value, kid: &str, redirect_uri: &str) -> anyhow::Result<Self> {
        Self::start_on(ANY_PORT, accounts, kid, redirect_uri).await
    }

    /// Like [`Self::start_for`], with access tokens valid `ttl_secs` only.
    pub async fn start_short_lived(
        accounts: Value,
        redirect_uri: &str,
        ttl_secs: u32,
    ) -> anyhow::Result<Self> {
        Self::spawn(ANY_PORT, accounts, "k1", redirect_uri, ttl_secs).await
    }

    async fn start_on(
        port: u16,
        accounts: Value,
        kid: &str,
        redirect_uri: &str,
    ) -> anyhow::Result<Self> {
        Self::spawn(port, accounts, kid, redirect_uri, 600).await
    }

    async fn spawn(
        port: u16,
        accounts: Value,
        kid: &str,
        redirect_uri: &str,
        access_ttl_secs: u32,
    ) -> anyhow::Result<Self> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/oidc");
        if !std::path::Path::new(dir)
            .join("node_modules/oidc-provider")
            .exists()
        {
            anyhow::bail!(
                "oidc-provider is not installed: run `npm ci --prefix tests/oidc` (tests/run.sh does)"
            );
        }
        let mut child = tokio::process::Command::new("node")
            .arg(format!("{dir}/provider.mjs"))
            .env("PORT", port.to_string())
            .env("RITMA_OIDC_ACCOUNTS", accounts.to_string())
            .env("RITMA_OIDC_AUDIENCE", AUDIENCE)
            .env("RITMA_OIDC_REDIRECT_URI", redirect_uri)
            .env("RITMA_OIDC_KID", kid)
            .env("RITMA_OIDC_ACCESS_TTL", access_ttl_secs.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(issuer) = line.strip_prefix("READY ") {
                    return Ok::<_, std::io::Error>(Some(issuer.to_owned()));
                }
            }
            Ok(None)
        })
        .await??;
        let issuer =
            ready.ok_or_else(|| anyhow::anyhow!("OIDC provider exited before it was ready"))?;
        let port = reqwest::Url::parse(&issuer)?
            .port()
            .ok_or_else(|| anyhow::anyhow!("provider issuer {issuer} names no port"))?;
        // Keep draining its output: a closed pipe would kill it at its next log line.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            issuer,
            port,
            redirect_uri: redirect_uri.to_owned(),
            accounts,
            _process: child,
        })
    }

    /// Replace the provider by one with a new signing key, same issuer
    /// (so the same port: retried while the old process lets go of it).
    pub async fn rotate_key(self, kid: &str) -> anyhow::Result<Self> {
        let (port, accounts, redirect) =
            (self.port, self.accounts.clone(), self.redirect_uri.clone());
        drop(self);
        let mut attempt = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            match Self::start_on(port, accounts.clone(), kid, &redirect).await {
                Err(e) if attempt < 10 => {
                    attempt += 1;
                    eprintln!("oidc provider restart on port {port}: {e}; retrying");
                }
                done => return done,
            }
        }
    }

    /// Sign `account` in: authorization code with PKCE, then the token
    /// exchange. Returns the access token (a JWT for the API audience).
    pub async fn sign_in(&self, account: &str) -> anyhow::Result<String> {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            // Node closes some connections right after a redirect; never reuse one.
            .pool_max_idle_per_host(0)
            .build()?;
        let verifier = BASE64URL_NOPAD.encode(&rand_bytes());
        let challenge = BASE64URL_NOPAD.encode(&Sha256::digest(verifier.as_bytes()));
        let mut url = reqwest::Url::parse(&format!("{}/auth", self.issuer))?;
        url.query_pairs_mut()
            .append_pair("client_id", "ritma-console")
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", REDIRECT_URI)
            .append_pair("scope", "openid email ritma:api")
            .append_pair("resource", AUDIENCE)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", "s1");
        let back = self
            .authorize(&http, url.as_str(), REDIRECT_URI, account)
            .await?;
        let u = reqwest::Url::parse(&back)?;
        if let Some((_, e)) = u.query_pairs().find(|(k, _)| k == "error") {
            anyhow::bail!("provider refused: {e} ({back})");
        }
        let code = u
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned());
        let code = code.ok_or_else(|| anyhow::anyhow!("no authorization code"))?;
        let tokens: Value = http
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT_URI),
                ("client_id", "ritma-console"),
                ("code_verifier", verifier.as_str()),
                ("resource", AUDIENCE),
            ])
            .send()
            .await?
            .json()
            .await?;
        tokens["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("no access token: {tokens}"))
    }
}

impl OidcProvider {
    /// Play the person at the provider: follow `start` (an authorization URL,
    /// or a client's redirect to one) through the sign-in and consent pages
    /// as `account`, until the provider redirects to `redirect_prefix`.
    /// Returns that redirect URL (carrying `code` and `state`, or `error`).
    /// `http` must keep cookies and not follow redirects.
    pub async fn authorize(
        &self,
        http: &reqwest::Client,
        start: &str,
        redirect_prefix: &str,
        account: &str,
    ) -> anyhow::Result<String> {
        let mut next = start.to_owned();
        for _ in 0..12 {
            if next.starts_with(redirect_prefix) {
                return Ok(next);
            }
            let absolute = if next.starts_with('/') {
                format!("{}{next}", self.issuer)
            } else {
                next.clone()
            };
            let resp = http.get(&absolute).send().await?;
            if resp.status().is_redirection() {
                next = location(&resp)?;
                continue;
            }
            // An interaction page: sign in, or consent.
            let body = resp.text().await?;
            let form: Vec<(&str, &str)> = if body.contains("name=\"login\"") {
                vec![
                    ("prompt", "login"),
                    ("login", account),
                    ("password", "irrelevant"),
                ]
            } else {
                vec![("prompt", "consent")]
            };
            let resp = http.post(&absolute).form(&form).send().await?;
            anyhow::ensure!(
                resp.status().is_redirection(),
                "interaction answered {}",
                resp.status()
            );
            next = location(&resp)?;
        }
        anyhow::bail!("no redirect to {redirect_prefix} after 12 steps (last: {next})")
    }
}

pub fn location(resp: &reqwest::Response) -> anyhow::Result<String> {
    Ok(resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow::anyhow!("redirect without location"))?
        .to_owned())
}

fn rand_bytes() -> [u8; 32] {
    let mut out = [0u8; 32];
    for chunk in out.chunks_mut(16) {
        chunk.copy_from_slice(&uuid::Uuid::new_v4().into_bytes());
    }
    out
}
