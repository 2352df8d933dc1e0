//! Alerting: rules per org watch node state changes and the control plane;
//! alerts fire after their `for`, repeat, resolve and can be silenced;
//! notifications go out at least once (an outbox with retries) to webhooks
//! (HMAC-signed), Slack-style hooks, e-mail (SMTP with STARTTLS) and the
//! org's `ritma.<org>.alerts` subject.

pub mod deliver;
pub mod evaluate;
pub mod send;
pub mod settings;
pub mod target;

pub use settings::AlertSettings;
