//! Console configuration: flags and environment, optionally filled from a dev stack file.

use anyhow::Context as _;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::Parser, Clone, Debug)]
#[command(name = "ritma-console", about = "Ritma operator console (web UI)")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "RITMA_CONSOLE_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// Controller REST API base URL.
    #[arg(long, env = "RITMA_API_URL")]
    pub api_url: Option<String>,
    /// Optional token the console uses for its own readiness check (`/readyz`).
    /// Operators sign in with their own token; it is never used on their behalf.
    #[arg(long, env = "RITMA_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// NATS URL for live state changes.
    #[arg(long, env = "RITMA_NATS_URL")]
    pub nats_url: Option<String>,
    /// CA bundle (PEM) of the bus servers: the live feed verifies the bus
    /// against it alone, and TLS is required.
    #[arg(long, env = "RITMA_CONSOLE_NATS_CA_FILE")]
    pub nats_ca_file: Option<PathBuf>,
    /// The console's service token (the controller's `RITMA_CONSOLE_SERVICE_TOKEN`):
    /// with it the console asks the controller for its own bus credential and
    /// receives the state changes of every org.
    #[arg(long, env = "RITMA_CONSOLE_SERVICE_TOKEN", hide_env_values = true)]
    pub service_token: Option<String>,
    /// File holding the service token (instead of RITMA_CONSOLE_SERVICE_TOKEN).
    #[arg(long, env = "RITMA_CONSOLE_SERVICE_TOKEN_FILE")]
    pub service_token_file: Option<PathBuf>,
    /// How often a live stream re-checks, with the person's own token, which
    /// orgs they still have a role in (a removed role stops that org's events).
    #[arg(long, env = "RITMA_CONSOLE_ROLE_RECHECK_SECS", default_value_t = 60)]
    pub role_recheck_secs: u64,
    /// Single sign-on starts pending at once from one client address ...
    #[arg(
        long,
        env = "RITMA_CONSOLE_SSO_PENDING_PER_ADDRESS",
        default_value_t = 20
    )]
    pub sso_pending_per_address: usize,
    /// ... and in total.
    #[arg(
        long,
        env = "RITMA_CONSOLE_SSO_PENDING_TOTAL",
        default_value_t = 10_000
    )]
    pub sso_pending_total: usize,
    /// Proxies in front of the console (comma-separated IP addresses) whose
    /// `X-Forwarded-For` names the browser; otherwise the TCP peer is the browser.
    #[arg(long, env = "RITMA_CONSOLE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// PostgreSQL URL of the console's sessions and pending sign-ins (the
    /// controller's database: its migrations create the tables). Every
    /// replica uses the same one, so any replica serves any browser.
    #[arg(long, env = "RITMA_CONSOLE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Connections to that database, per replica.
    #[arg(
        long,
        env = "RITMA_CONSOLE_DATABASE_MAX_CONNECTIONS",
        default_value_t = 8
    )]
    pub database_max_connections: u32,
    /// Default org (the one shown after sign-in when the person has a role in it).
    #[arg(long, env = "RITMA_ORG")]
    pub org: Option<String>,
    /// Controller URL shown to nodes in install commands (defaults to the API URL).
    #[arg(long, env = "RITMA_NODE_CONTROLLER_URL")]
    pub node_controller_url: Option<String>,
    /// Folder with the built browser assets (`pkg/`); defaults to `site`
    /// next to the executable.
    #[arg(long, env = "RITMA_CONSOLE_SITE")]
    pub site_root: Option<PathBuf>,
    /// A dev stack file (`.ritma/dev/stack.json` written by `ritma up`) that supplies
    /// api_url, nats_url and org when they are not given.
    #[arg(long, env = "RITMA_STACK_FILE")]
    pub stack_file: Option<PathBuf>,
    /// Mark the session cookie `Secure` (serve over HTTPS).
    #[arg(long, env = "RITMA_CONSOLE_SECURE_COOKIE", default_value_t = false)]
    pub secure_cookie: bool,
    /// The console's own URL as browsers see it (the OIDC redirect URI is
    /// `<public-url>/auth/callback`). Defaults to `http://<listen>`.
    #[arg(long, env = "RITMA_CONSOLE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// OpenID Connect issuer for single sign-on (authorization code + PKCE).
    #[arg(long, env = "RITMA_CONSOLE_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// Client id registered at the IdP.
    #[arg(
        long,
        env = "RITMA_CONSOLE_OIDC_CLIENT_ID",
        default_value = "ritma-console"
    )]
    pub oidc_client_id: String,
    /// Client secret, for IdPs that register the console as a confidential client.
    #[arg(long, env = "RITMA_CONSOLE_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,
    /// Resource indicator of the controller API, for IdPs that need one to
    /// issue access tokens with its audience.
    #[arg(long, env = "RITMA_CONSOLE_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// Scopes asked for (`offline_access` lets sessions outlive one access token).
    #[arg(
        long,
        env = "RITMA_CONSOLE_OIDC_SCOPES",
        default_value = "openid email"
    )]
    pub oidc_scopes: String,
    /// Offer the admin-token sign-in form (break-glass) next to single sign-on.
    /// A separate listener for `/metrics` only. Unset: none.
    #[arg(long, env = "RITMA_METRICS_ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Bearer token `/metrics` requires; unset, the console's port refuses
    /// `/metrics` (404) and the separate listener answers without one.
    #[arg(long, env = "RITMA_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    #[arg(long, env = "RITMA_CONSOLE_TOKEN_LOGIN", default_value_t = true, action = clap::ArgAction::Set)]
    pub token_login: bool,
}

#[derive(Deserialize)]
struct StackFile {
    api_url: Option<String>,
    database_url: Option<String>,
    nats_url: Option<String>,
    org: Option<String>,
}

/// Configuration with every default applied.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub listen: SocketAddr,
    pub api_url: String,
    pub api_token: Option<String>,
    pub nats_url: Option<String>,
    pub nats_ca_file: Option<PathBuf>,
    /// The console's service token (its bus credential comes from the controller).
    pub service_token: Option<String>,
    pub role_recheck: std::time::Duration,
    pub database_url: String,
    pub database_max_connections: u32,
    pub sso_pending_per_address: usize,
    pub sso_pending_total: usize,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// `scheme://host[:port]` browsers use (same-origin checks).
    pub public_origin: String,
    pub org: String,
    pub node_controller_url: String,
    pub site_root: PathBuf,
    pub secure_cookie: bool,
    pub oidc: Option<super::oidc::OidcSettings>,
    pub token_login: bool,
    pub metrics_listen: Option<SocketAddr>,
    pub metrics_token: Option<String>,
}

impl Config {
    /// A config for tests and embedding: everything unset.
    pub fn empty() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            api_url: None,
            api_token: None,
            nats_url: None,
            nats_ca_file: None,
            service_token: None,
            service_token_file: None,
            role_recheck_secs: 60,
            database_url: None,
            database_max_connections: 8,
            sso_pending_per_address: 20,
            sso_pending_total: 10_000,
            trusted_proxies: vec![],
            org: None,
            node_controller_url: None,
            site_root: None,
            stack_file: None,
            secure_cookie: false,
            public_url: None,
            oidc_issuer: None,
            oidc_client_id: "ritma-console".into(),
            oidc_client_secret: None,
            oidc_audience: None,
            oidc_scopes: "openid email".into(),
            token_login: true,
            metrics_listen: None,
            metrics_token: None,
        }
    }

    pub fn resolve(self) -> anyhow::Result<Resolved> {
        let stack = match &self.stack_file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading stack file {}", p.display()))?;
                let s: StackFile = serde_json::from_str(&text)
                    .with_context(|| format!("parsing stack file {}", p.display()))?;
                Some(s)
            }
            None => None,
        };
        let (s_api, s_nats, s_org, s_db) = match stack {
            Some(s) => (s.api_url, s.nats_url, s.org, s.database_url),
            None => (None, None, None, None),
        };
        let Some(database_url) = self.database_url.or(s_db).filter(|u| !u.trim().is_empty()) else {
            anyhow::bail!(
                "RITMA_CONSOLE_DATABASE_URL is required: sessions live in PostgreSQL, shared by every console replica"
            );
        };
        let api_url = self
            .api_url
            .or(s_api)
            .unwrap_or_else(|| "http://127.0.0.1:8080".to_string())
            .trim_end_matches('/')
            .to_string();
        let site_root = match self.site_root {
            Some(p) => p,
            None => std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(|d| d.join("site")))
                .unwrap_or_else(|| PathBuf::from("site")),
        };
        let public_url = self
            .public_url
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_string();
        let oidc = self
            .oidc_issuer
            .filter(|i| !i.trim().is_empty())
            .map(|issuer| super::oidc::OidcSettings {
                issuer: issuer.trim_end_matches('/').to_string(),
                client_id: self.oidc_client_id,
                client_secret: self.oidc_client_secret.filter(|s| !s.is_empty()),
                audience: self.oidc_audience.filter(|a| !a.is_empty()),
                scopes: self.oidc_scopes,
                redirect_uri: format!("{public_url}/auth/callback"),
            });
        let service_token = match (&self.service_token, &self.service_token_file) {
            (Some(t), _) if !t.trim().is_empty() => Some(t.trim().to_string()),
            (_, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the service token {}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            _ => None,
        }
        .filter(|t| !t.is_empty());
        let public_origin = origin_of(&public_url);
        if oidc.is_none() && !self.token_login {
            anyhow::bail!(
                "no way to sign in: set RITMA_CONSOLE_OIDC_ISSUER or allow RITMA_CONSOLE_TOKEN_LOGIN"
            );
        }
        let metrics_token = self.metrics_token.filter(|t| !t.trim().is_empty());
        if metrics_token.as_ref().is_some_and(|t| t.len() < 16) {
            anyhow::bail!("the metrics token must be at least 16 characters");
        }
        Ok(Resolved {
            metrics_listen: self.metrics_listen,
            metrics_token,
            oidc,
            token_login: self.token_login,
            listen: self.listen,
            node_controller_url: self.node_controller_url.unwrap_or_else(|| api_url.clone()),
            api_url,
            api_token: self.api_token.filter(|t| !t.is_empty()),
            nats_url: self.nats_url.or(s_nats).filter(|u| !u.is_empty()),
            nats_ca_file: self.nats_ca_file,
            service_token,
            role_recheck: std::time::Duration::from_secs(self.role_recheck_secs.max(1)),
            database_url,
            database_max_connections: self.database_max_connections.max(1),
            sso_pending_per_address: self.sso_pending_per_address.max(1),
            sso_pending_total: self.sso_pending_total.max(1),
            trusted_proxies: self.trusted_proxies,
            public_origin,
            org: self.org.or(s_org).unwrap_or_else(|| "demo".to_string()),
            site_root,
            // Served over HTTPS: the session cookie never travels in clear.
            secure_cookie: self.secure_cookie || public_url.starts_with("https://"),
        })
    }
}

/// `scheme://host[:port]` of a URL (its origin, as browsers send it).
pub fn origin_of(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            format!(
                "{}://{}",
                scheme.to_ascii_lowercase(),
                host.to_ascii_lowercase()
            )
        }
        None => url.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_sign_on_settings_follow_the_public_url() {
        let mut c = Config::empty();
        c.database_url = Some("postgres://db.example/ritma".into());
        c.public_url = Some("https://console.example.com/".into());
        c.oidc_issuer = Some("https://idp.example.com/".into());
        let r = c.resolve().unwrap();
        let oidc = r.oidc.unwrap();
        assert_eq!(
            oidc.redirect_uri,
            "https://console.example.com/auth/callback"
        );
        assert_eq!(oidc.issuer, "https://idp.example.com");
        assert!(
            r.secure_cookie,
            "HTTPS consoles mark the session cookie Secure"
        );
    }

    #[test]
    fn a_console_without_a_session_store_is_refused() {
        let err = Config::empty().resolve().unwrap_err().to_string();
        assert!(err.contains("RITMA_CONSOLE_DATABASE_URL"), "{err}");
    }

    #[test]
    fn a_console_without_any_sign_in_is_refused() {
        let mut c = Config::empty();
        c.database_url = Some("postgres://db.example/ritma".into());
        c.token_login = false;
        let err = c.resolve().unwrap_err().to_string();
        assert!(err.contains("no way to sign in"), "{err}");
    }
}
