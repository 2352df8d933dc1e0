//! The daemon's connection to the bus, replaceable while the daemon runs.
//!
//! The parts that use the bus (sender, command handler, metrics) read the
//! current client from a watch, so when the bus moves (a restarted stack on
//! new ports, a migrated server) the daemon connects to the addresses the
//! controller hands out and every part follows, with nothing lost: the spool
//! holds what could not be sent meanwhile.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::Client;
use ritma_bus::connect::{self, BusTls, ConnectSpec, SharedJwt};
use tokio::sync::watch;

/// Failed connection attempts logged at WARN: the first, the third, then
/// one in every [`WARN_EVERY`] (about a minute at the client's 4 s back-off).
const WARN_EVERY: u64 = 15;

/// How the current connection fares, fed by the client's events.
#[derive(Debug, Default)]
struct Health {
    /// Since when no server of the pool has answered (None while connected).
    down_since: Option<Instant>,
    failures: u64,
}

/// What a connection is made with, kept to make the next one.
pub struct LinkSpec {
    pub name: String,
    pub jwt: SharedJwt,
    pub key: Arc<nkeys::KeyPair>,
    pub inbox_prefix: String,
    pub tls: BusTls,
}

pub struct BusLink {
    spec: LinkSpec,
    urls: Vec<String>,
    health: Arc<Mutex<Health>>,
    current: watch::Sender<Client>,
}

impl BusLink {
    /// Connect to `urls`; the first connection keeps retrying in the
    /// background, so this returns at once even while the bus is down.
    pub async fn connect(spec: LinkSpec, urls: Vec<String>) -> Result<Self, ritma_bus::BusError> {
        let health = Arc::new(Mutex::new(Health {
            down_since: Some(Instant::now()),
            failures: 0,
        }));
        let client = Self::client(&spec, &urls, health.clone()).await?;
        let (current, _) = watch::channel(client);
        Ok(Self {
            spec,
            urls,
            health,
            current,
        })
    }

    async fn client(
        spec: &LinkSpec,
        urls: &[String],
        health: Arc<Mutex<Health>>,
    ) -> Result<Client, ritma_bus::BusError> {
        let shown = urls.join(", ");
        let on_event = move |event: async_nats::Event| {
            let health = health.clone();
            let shown = shown.clone();
            async move { health_record(&health, &shown, &event) }
        };
        let opts = connect::options(&ConnectSpec {
            urls: urls.to_vec(),
            name: spec.name.clone(),
            jwt: spec.jwt.clone(),
            key: spec.key.clone(),
            inbox_prefix: Some(spec.inbox_prefix.clone()),
            retry_initial: true,
        })
        .event_callback(on_event);
        spec.tls
            .apply(opts)
            .connect(urls.to_vec())
            .await
            .map_err(|e| ritma_bus::BusError::Connect {
                url: urls.join(","),
                message: e.to_string(),
            })
    }

    /// The client in use now.
    pub fn client_now(&self) -> Client {
        self.current.borrow().clone()
    }

    /// Follows the client in use, for the parts that outlive a move.
    pub fn watch(&self) -> watch::Receiver<Client> {
        self.current.subscribe()
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// How long no server has answered, if none does now.
    pub fn down_for(&self) -> Option<Duration> {
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .down_since
            .map(|t| t.elapsed())
    }

    /// Connect to `urls` instead and hand the new client to every part.
    /// The old client is dropped: its background reconnect loop ends the
    /// first time it reaches a server, as no handle to it is left.
    pub async fn move_to(&mut self, urls: Vec<String>) -> Result<(), ritma_bus::BusError> {
        tracing::warn!(from = %self.urls.join(", "), to = %urls.join(", "), "the bus moved; connecting to the controller's current addresses");
        let health = Arc::new(Mutex::new(Health {
            down_since: Some(Instant::now()),
            failures: 0,
        }));
        let client = Self::client(&self.spec, &urls, health.clone()).await?;
        self.health = health;
        self.urls = urls;
        self.current.send_replace(client);
        Ok(())
    }
}

/// Keep the connection's health, and say at WARN, naming the addresses,
/// when it cannot reach the bus (the client's own lines are INFO).
fn health_record(health: &Mutex<Health>, urls: &str, event: &async_nats::Event) {
    let mut h = health.lock().unwrap_or_else(|e| e.into_inner());
    match event {
        async_nats::Event::Connected => {
            if h.failures > 0 {
                tracing::info!(bus = %urls, failed_attempts = h.failures, "connected to the bus");
            }
            *h = Health::default();
        }
        async_nats::Event::Disconnected => {
            h.down_since.get_or_insert_with(Instant::now);
            tracing::warn!(bus = %urls, "disconnected from the bus; reconnecting");
        }
        async_nats::Event::ClientError(e) => {
            h.down_since.get_or_insert_with(Instant::now);
            h.failures += 1;
            if failure_is_logged(h.failures) {
                let down = h.down_since.map(|t| t.elapsed().as_secs()).unwrap_or(0);
                tracing::warn!(bus = %urls, attempts = h.failures, down_secs = down, error = %e, "cannot reach the bus");
            }
        }
        _ => {}
    }
}

fn failure_is_logged(failures: u64) -> bool {
    failures == 1 || failures == 3 || failures.is_multiple_of(WARN_EVERY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_are_logged_sparingly() {
        let logged: Vec<u64> = (1..=60).filter(|n| failure_is_logged(*n)).collect();
        assert_eq!(logged, vec![1, 3, 15, 30, 45, 60]);
    }

    #[test]
    fn health_follows_the_client_events() {
        let h = Mutex::new(Health::default());
        health_record(
            &h,
            "nats://127.0.0.1:1",
            &async_nats::Event::ClientError(async_nats::ClientError::Other("refused".into())),
        );
        assert_eq!(h.lock().unwrap().failures, 1);
        assert!(h.lock().unwrap().down_since.is_some());
        health_record(&h, "nats://127.0.0.1:1", &async_nats::Event::Connected);
        assert!(h.lock().unwrap().down_since.is_none());
        assert_eq!(h.lock().unwrap().failures, 0);
    }
}
