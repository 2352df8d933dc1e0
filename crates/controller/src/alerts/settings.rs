//! Alerting settings (`RITMA_ALERT_*`, `RITMA_SMTP_*`).

use std::path::PathBuf;

use clap::Args;

use crate::api::ratelimit::IpRange;

#[derive(Debug, Clone, Args)]
pub struct AlertSettings {
    /// Networks that webhook and Slack targets may be in although they are
    /// loopback, private or link-local (refused otherwise): comma-separated
    /// addresses or CIDR ranges. `ritma up` allows loopback.
    #[arg(long, env = "RITMA_ALERT_ALLOWED_NETWORKS", value_delimiter = ',')]
    pub allowed_networks: Vec<IpRange>,
    /// Attempts per notification before it is given up (logged as failed).
    #[arg(long, env = "RITMA_ALERT_MAX_ATTEMPTS", default_value_t = 12)]
    pub max_attempts: i32,
    /// The first retry waits this long; each next one twice as long, at most an hour.
    #[arg(long, env = "RITMA_ALERT_RETRY_BASE_MS", default_value_t = 5_000)]
    pub retry_base_ms: u64,
    /// Time allowed for one delivery attempt.
    #[arg(long, env = "RITMA_ALERT_TIMEOUT_SECS", default_value_t = 10)]
    pub timeout_secs: u64,
    /// How often pending alerts, repeats, silences and control-plane
    /// conditions are evaluated (state changes are evaluated as they come).
    #[arg(long, env = "RITMA_ALERT_EVAL_MS", default_value_t = 1_000)]
    pub eval_ms: u64,
    /// The SMTP relay for e-mail channels, `smtp://host:port`; the session is
    /// upgraded with STARTTLS (required) and the certificate verified.
    #[arg(long, env = "RITMA_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// The sender address of alert e-mail.
    #[arg(
        long,
        env = "RITMA_SMTP_FROM",
        default_value = "ritma-alerts@localhost"
    )]
    pub smtp_from: String,
    #[arg(long, env = "RITMA_SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    #[arg(long, env = "RITMA_SMTP_PASSWORD_FILE")]
    pub smtp_password_file: Option<PathBuf>,
    /// A PEM CA certificate the relay's certificate may chain to (besides the
    /// public roots), for a relay with a private CA.
    #[arg(long, env = "RITMA_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<PathBuf>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            allowed_networks: vec![],
            max_attempts: 12,
            retry_base_ms: 5_000,
            timeout_secs: 10,
            eval_ms: 1_000,
            smtp_url: None,
            smtp_from: "ritma-alerts@localhost".into(),
            smtp_username: None,
            smtp_password_file: None,
            smtp_ca_file: None,
        }
    }
}
