//! Live feed: one NATS subscription on the org's state-change subjects, fanned out to
//! browsers over SSE, filtered to the org of each browser's session.

use super::api::instant;
use crate::model::{LiveEvent, Status};
use futures::StreamExt as _;
use ritma_protocol::messages::{StateChange, StateChangeKind};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

#[derive(Clone, Debug)]
pub enum HubMsg {
    State {
        org: String,
        event: Box<LiveEvent>,
    },
    /// Something may have been missed (bus reconnect): browsers re-fetch.
    Resync,
}

/// Bus connection as browsers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusState {
    /// The org whose changes are subscribed (None: live feed not configured).
    pub org: Option<String>,
    pub connected: bool,
    pub error: Option<String>,
}

#[derive(Clone)]
pub struct Hub {
    pub tx: broadcast::Sender<Arc<HubMsg>>,
    pub bus: watch::Receiver<BusState>,
    /// Keeps the bus state channel open for the hub's lifetime.
    bus_tx: Arc<watch::Sender<BusState>>,
}

fn status_of(s: ritma_protocol::messages::NodeStatus) -> Status {
    Status::parse(s.as_str()).unwrap_or(Status::Unknown)
}

pub fn to_live_event(sc: &StateChange) -> LiveEvent {
    let mut ev = LiveEvent {
        event_id: sc.event_id,
        tenant_id: sc.tenant_id.as_str().to_string(),
        node_id: sc.node_id.as_str().to_string(),
        kind: String::new(),
        from: None,
        to: None,
        reason: None,
        hostname: None,
        applied: None,
        assigned: None,
        drifted: None,
        key_id: None,
        key_status: None,
        at: instant(sc.at),
    };
    ev.kind = match &sc.change {
        StateChangeKind::Status { from, to, reason } => {
            ev.from = Some(status_of(*from));
            ev.to = Some(status_of(*to));
            ev.reason = Some(reason.clone());
            "status"
        }
        StateChangeKind::Enrolled { hostname } => {
            ev.hostname = Some(hostname.clone());
            "enrolled"
        }
        StateChangeKind::PolicyApplied { applied } => {
            ev.applied = applied.clone();
            "policy_applied"
        }
        StateChangeKind::PolicyDrift {
            drifted,
            assigned,
            applied,
        } => {
            ev.drifted = Some(*drifted);
            ev.assigned = assigned.clone();
            ev.applied = applied.clone();
            "policy_drift"
        }
        StateChangeKind::KeyWarning { key_id, key_status } => {
            ev.key_id = key_id.clone();
            ev.key_status = key_status.map(|k| k.as_str().to_string());
            "key_warning"
        }
    }
    .to_string();
    ev
}

impl Hub {
    /// A hub with no bus behind it (live feed not configured).
    pub fn disconnected() -> Hub {
        let (tx, _) = broadcast::channel(1024);
        let (bus_tx, bus) = watch::channel(BusState {
            org: None,
            connected: false,
            error: Some("live updates are not configured (no NATS URL)".into()),
        });
        Hub {
            tx,
            bus,
            bus_tx: Arc::new(bus_tx),
        }
    }

    /// Publishes a message to every browser (tests and embedding).
    pub fn publish(&self, msg: HubMsg) {
        let _ = self.tx.send(Arc::new(msg));
    }

    pub fn bus_state(&self) -> BusState {
        self.bus_tx.borrow().clone()
    }

    /// Connects to NATS in the background and keeps the subscription up.
    pub fn start(nats_url: String, creds: Option<PathBuf>, org: String) -> Hub {
        let (tx, _) = broadcast::channel(1024);
        let (bus_tx, bus) = watch::channel(BusState {
            org: Some(org.clone()),
            connected: false,
            error: None,
        });
        let bus_tx = Arc::new(bus_tx);
        let hub = Hub {
            tx: tx.clone(),
            bus,
            bus_tx: bus_tx.clone(),
        };
        tokio::spawn(run_bus(nats_url, creds, org, tx, bus_tx));
        hub
    }
}

async fn run_bus(
    url: String,
    creds: Option<PathBuf>,
    org: String,
    tx: broadcast::Sender<Arc<HubMsg>>,
    bus_tx: Arc<watch::Sender<BusState>>,
) {
    let set = {
        let bus_tx = bus_tx.clone();
        let org = org.clone();
        move |connected: bool, error: Option<String>| {
            bus_tx.send_replace(BusState {
                org: Some(org.clone()),
                connected,
                error,
            });
        }
    };
    let subject = match ritma_protocol::ids::OrgId::new(org.clone()) {
        Ok(o) => ritma_protocol::subjects::state_changes(&o, None),
        Err(e) => {
            set(false, Some(format!("invalid org id {org:?}: {e}")));
            return;
        }
    };
    let mut backoff = std::time::Duration::from_millis(500);
    loop {
        let mut opts = async_nats::ConnectOptions::new()
            .name("ritma-console")
            .retry_on_initial_connect()
            .max_reconnects(None);
        if let Some(path) = &creds {
            opts = match opts.credentials_file(path).await {
                Ok(o) => o,
                Err(e) => {
                    set(
                        false,
                        Some(format!("cannot read credentials {}: {e}", path.display())),
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
                    continue;
                }
            };
        }
        let ev_set = set.clone();
        let ev_tx = tx.clone();
        opts = opts.event_callback(move |event| {
            let ev_set = ev_set.clone();
            let ev_tx = ev_tx.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        tracing::info!("live feed: connected to NATS");
                        ev_set(true, None);
                        // Changes published while we were away are not replayed: re-sync.
                        let _ = ev_tx.send(Arc::new(HubMsg::Resync));
                    }
                    async_nats::Event::Disconnected => {
                        tracing::warn!("live feed: disconnected from NATS");
                        ev_set(false, Some("disconnected from the bus".into()));
                    }
                    async_nats::Event::ServerError(e) => {
                        tracing::warn!(error = %e, "live feed: NATS server error");
                        ev_set(false, Some(format!("bus error: {e}")));
                    }
                    other => tracing::debug!(event = %other, "live feed: NATS event"),
                }
            }
        });
        let client = match opts.connect(url.as_str()).await {
            Ok(c) => c,
            Err(e) => {
                set(false, Some(format!("cannot connect to the bus: {e}")));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
                continue;
            }
        };
        let mut sub = match client.subscribe(subject.clone()).await {
            Ok(s) => s,
            Err(e) => {
                set(false, Some(format!("cannot subscribe: {e}")));
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        tracing::info!(%subject, "live feed: subscribed");
        while let Some(msg) = sub.next().await {
            match serde_json::from_slice::<StateChange>(&msg.payload) {
                Ok(sc) if sc.org_id.as_str() == org => {
                    let event = Box::new(to_live_event(&sc));
                    let _ = tx.send(Arc::new(HubMsg::State {
                        org: org.clone(),
                        event,
                    }));
                }
                Ok(_) => tracing::warn!(subject = %msg.subject, "state change for another org"),
                Err(e) => {
                    tracing::debug!(subject = %msg.subject, error = %e, "ignoring state message")
                }
            }
        }
        set(false, Some("subscription closed".into()));
        tokio::time::sleep(backoff).await;
    }
}
