//! Live feed: NATS subscriptions on the state changes and the alert notifications
//! of every org (with the console's own bus credential from the controller), fanned
//! out to browsers over SSE, filtered per browser to the org its session shows and
//! may see.

use super::api::Api;
use super::api::instant;
use crate::model::alerts::LiveAlert;
use crate::model::{LiveEvent, Status};
use futures::StreamExt as _;
use ritma_protocol::alerts::AlertNotification;
use ritma_protocol::messages::{StateChange, StateChangeKind};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

#[derive(Clone, Debug)]
pub enum HubMsg {
    State {
        org: String,
        event: Box<LiveEvent>,
    },
    /// An alert of `org` fired or resolved (`ritma.<org>.alerts`).
    Alert {
        org: String,
        alert: Box<LiveAlert>,
    },
    /// A bulk job of `org` progressed or ended (`ritma.<org>.jobs`).
    Job {
        org: String,
        job: Box<crate::model::bulk::LiveJob>,
    },
    /// The hourly rollups of `org` grew (`ritma.<org>.activity`): charts re-read.
    Rollups {
        org: String,
    },
    /// Something may have been missed (bus reconnect): browsers re-fetch.
    Resync,
}

/// Whose state changes the live feed receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Feed {
    /// Live feed not configured.
    None,
    /// Every org, present and future (the console's own bus credential).
    All,
}

/// Bus connection as browsers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusState {
    pub feed: Feed,
    pub connected: bool,
    pub error: Option<String>,
}

impl BusState {
    /// Whether changes arrive live right now (for every org: the feed
    /// carries them all, and each browser's stream filters its own).
    pub fn live(&self) -> bool {
        self.connected && self.feed == Feed::All
    }
}

#[derive(Clone)]
pub struct Hub {
    pub tx: broadcast::Sender<Arc<HubMsg>>,
    pub bus: watch::Receiver<BusState>,
    /// Keeps the bus state channel open for the hub's lifetime.
    bus_tx: Arc<watch::Sender<BusState>>,
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
            ev.from = Some(Status::from(*from));
            ev.to = Some(Status::from(*to));
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
        StateChangeKind::PolicyRejected { reason } => {
            ev.reason = Some(reason.clone());
            "policy_rejected"
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
    fn with_state(state: BusState) -> (Hub, Arc<watch::Sender<BusState>>) {
        let (tx, _) = broadcast::channel(1024);
        let (bus_tx, bus) = watch::channel(state);
        let bus_tx = Arc::new(bus_tx);
        (
            Hub {
                tx,
                bus,
                bus_tx: bus_tx.clone(),
            },
            bus_tx,
        )
    }

    /// A hub with no bus behind it (live feed not configured).
    pub fn disconnected() -> Hub {
        Self::with_state(BusState {
            feed: Feed::None,
            connected: false,
            error: Some("live updates are not configured (no RITMA_CONSOLE_SERVICE_TOKEN)".into()),
        })
        .0
    }

    /// Publishes a message to every browser (tests and embedding).
    pub fn publish(&self, msg: HubMsg) {
        let _ = self.tx.send(Arc::new(msg));
    }

    pub fn bus_state(&self) -> BusState {
        self.bus_tx.borrow().clone()
    }

    /// Every org's feed, with the console's own bus credential: a key made
    /// here (its seed never leaves this process), the JWT asked from the
    /// controller with the service token and renewed before it expires.
    /// `nats_url` overrides the URLs the controller hands out.
    pub fn start_all_orgs(
        api: Api,
        service_token: String,
        nats_url: Option<String>,
        nats_ca_file: Option<std::path::PathBuf>,
    ) -> Hub {
        let (hub, bus_tx) = Self::with_state(BusState {
            feed: Feed::All,
            connected: false,
            error: None,
        });
        tokio::spawn(run_all_orgs(
            api,
            service_token,
            nats_url,
            nats_ca_file,
            hub.tx.clone(),
            bus_tx,
        ));
        hub
    }
}

/// Recently delivered events: the old and the renewed connection overlap
/// for a moment, and a change is passed on once.
#[derive(Default)]
struct Seen {
    order: VecDeque<(String, i64)>,
    set: HashSet<(String, i64)>,
}

impl Seen {
    const KEEP: usize = 4096;

    /// True the first time `(org, event_id)` is seen.
    fn first(&mut self, org: &str, event_id: i64) -> bool {
        let key = (org.to_string(), event_id);
        if !self.set.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        while self.order.len() > Self::KEEP {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// A state change from the bus, as the hub passes it on: the org named by the
/// subject must be the org of the payload.
pub fn decode_state(subject: &str, payload: &[u8]) -> Option<(String, LiveEvent)> {
    let org = ritma_protocol::subjects::state_change_org(subject)?;
    let sc = serde_json::from_slice::<StateChange>(payload).ok()?;
    if sc.org_id != org {
        tracing::warn!(%subject, "state change whose payload names another org; dropped");
        return None;
    }
    Some((org.as_str().to_string(), to_live_event(&sc)))
}

/// An alert notification from the bus, as the hub passes it on: the org named by
/// the subject must be the org of the payload. Test sends are not alerts.
pub fn decode_alert(subject: &str, payload: &[u8]) -> Option<(String, LiveAlert)> {
    use ritma_protocol::alerts::AlertStatus;
    let org = ritma_protocol::subjects::alerts_org(subject)?;
    let n = serde_json::from_slice::<AlertNotification>(payload).ok()?;
    if n.org_id != org {
        tracing::warn!(%subject, "alert whose payload names another org; dropped");
        return None;
    }
    if n.status == AlertStatus::Test {
        return None;
    }
    let alert = LiveAlert {
        alert_id: n.alert_id.to_string(),
        status: n.status.as_str().to_string(),
        event: n.event.as_str().to_string(),
        node_id: n.node_id.as_ref().map(|n| n.as_str().to_string()),
        rule_name: n.rule_name.clone(),
        headline: format!("{}: {}", n.rule_name, n.summary),
        at: instant(n.at),
    };
    Some((org.as_str().to_string(), alert))
}

/// Bulk job progress from the bus, as the hub passes it on: the org named
/// by the subject must be the org of the payload.
pub fn decode_job(subject: &str, payload: &[u8]) -> Option<HubMsg> {
    use ritma_protocol::jobs::BulkJobProgress;
    let org = ritma_protocol::subjects::jobs_org(subject)?;
    let p = serde_json::from_slice::<BulkJobProgress>(payload).ok()?;
    if p.org_id != org {
        tracing::warn!(%subject, "job progress whose payload names another org; dropped");
        return None;
    }
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    Some(HubMsg::Job {
        org: org.as_str().to_string(),
        job: Box::new(crate::model::bulk::LiveJob {
            job_id: p.job_id.to_string(),
            action: p.action.as_str().to_string(),
            state: p.state.as_str().to_string(),
            total: count(p.total),
            succeeded: count(p.succeeded),
            failed: count(p.failed),
            skipped: count(p.skipped),
        }),
    })
}

/// A rollup cue from the bus, as the hub passes it on: the org named by the
/// subject must be the org of the payload.
pub fn decode_rollups(subject: &str, payload: &[u8]) -> Option<HubMsg> {
    let org = ritma_protocol::subjects::activity_org(subject)?;
    let cue = serde_json::from_slice::<ritma_protocol::activity::RollupsUpdated>(payload).ok()?;
    if cue.org_id != org {
        tracing::warn!(%subject, "rollup cue whose payload names another org; dropped");
        return None;
    }
    Some(HubMsg::Rollups {
        org: org.as_str().to_string(),
    })
}

/// A bus message as the hub passes it on: a state change, an alert, job
/// progress or a rollup cue.
fn decode(subject: &str, payload: &[u8]) -> Option<HubMsg> {
    if let Some((org, event)) = decode_state(subject, payload) {
        return Some(HubMsg::State {
            org,
            event: Box::new(event),
        });
    }
    if let Some(job) = decode_job(subject, payload) {
        return Some(job);
    }
    if let Some(cue) = decode_rollups(subject, payload) {
        return Some(cue);
    }
    decode_alert(subject, payload).map(|(org, alert)| HubMsg::Alert {
        org,
        alert: Box::new(alert),
    })
}

fn backoff_next(b: Duration) -> Duration {
    (b * 2).min(Duration::from_secs(10))
}

async fn run_all_orgs(
    api: Api,
    token: String,
    nats_url: Option<String>,
    nats_ca_file: Option<std::path::PathBuf>,
    tx: broadcast::Sender<Arc<HubMsg>>,
    bus_tx: Arc<watch::Sender<BusState>>,
) {
    let key = Arc::new(nkeys::KeyPair::new_user());
    let public_key = key.public_key();
    // Each renewal connects anew; events of an older connection no longer
    // change what browsers are told.
    let generation = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let set = {
        let bus_tx = bus_tx.clone();
        move |connected: bool, error: Option<String>| {
            let was = bus_tx.borrow().connected;
            bus_tx.send_replace(BusState {
                feed: Feed::All,
                connected,
                error,
            });
            was
        }
    };
    let mut current: Option<(async_nats::Client, tokio::task::JoinHandle<()>)> = None;
    let mut backoff = Duration::from_millis(500);
    loop {
        let cred = match api.console_bus_credential(&token, &public_key).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "live feed: no bus credential from the controller");
                if current.is_none() {
                    set(false, Some(format!("no bus credential: {e}")));
                }
                tokio::time::sleep(backoff).await;
                backoff = backoff_next(backoff);
                continue;
            }
        };
        let urls: Vec<String> = match &nats_url {
            Some(u) => u.split(',').map(str::to_string).collect(),
            None => cred.nats_urls.clone(),
        };
        let my_gen = generation.fetch_add(1, Ordering::SeqCst) + 1;
        let jwt = cred.jwt.clone();
        let sign_key = key.clone();
        let ev_gen = generation.clone();
        let ev_set = set.clone();
        let ev_tx = tx.clone();
        let mut opts = async_nats::ConnectOptions::with_auth_callback(move |nonce| {
            let jwt = jwt.clone();
            let key = sign_key.clone();
            async move {
                let mut auth = async_nats::Auth::new();
                auth.jwt = Some(jwt);
                auth.signature = Some(key.sign(&nonce).map_err(async_nats::AuthError::new)?);
                Ok(auth)
            }
        })
        .name("ritma-console")
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None::<usize>)
        .event_callback(move |event| {
            let current = ev_gen.load(Ordering::SeqCst) == my_gen;
            let ev_set = ev_set.clone();
            let ev_tx = ev_tx.clone();
            async move {
                if !current {
                    return;
                }
                match event {
                    async_nats::Event::Connected => {
                        tracing::info!("live feed: connected to NATS");
                        if !ev_set(true, None) {
                            // Changes published while we were away are not replayed.
                            let _ = ev_tx.send(Arc::new(HubMsg::Resync));
                        }
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
        if let Some(ca) = &nats_ca_file {
            opts = opts.add_root_certificates(ca.clone()).require_tls(true);
        }
        let client = match opts.connect(urls.clone()).await {
            Ok(c) => c,
            Err(e) => {
                if current.is_none() {
                    set(false, Some(format!("cannot connect to the bus: {e}")));
                }
                tokio::time::sleep(backoff).await;
                backoff = backoff_next(backoff);
                continue;
            }
        };
        let subject = ritma_protocol::subjects::all_state_changes();
        let alerts_subject = ritma_protocol::subjects::all_alerts();
        let jobs_subject = ritma_protocol::subjects::all_jobs();
        let activity_subject = ritma_protocol::subjects::all_activity();
        let subscribed = async {
            let states = client.subscribe(subject.clone()).await?;
            let alerts = client.subscribe(alerts_subject.clone()).await?;
            let jobs = client.subscribe(jobs_subject.clone()).await?;
            let activity = client.subscribe(activity_subject.clone()).await?;
            Ok::<_, async_nats::SubscribeError>(futures::stream::select(
                futures::stream::select(states, activity),
                futures::stream::select(alerts, jobs),
            ))
        };
        let mut sub = match subscribed.await {
            Ok(s) => s,
            Err(e) => {
                if current.is_none() {
                    set(false, Some(format!("cannot subscribe: {e}")));
                }
                tokio::time::sleep(backoff).await;
                backoff = backoff_next(backoff);
                continue;
            }
        };
        // The subscriptions are registered at the server before the old ones go.
        let _ = client.flush().await;
        backoff = Duration::from_millis(500);
        tracing::info!(%subject, %alerts_subject, expires_at = %cred.expires_at, "live feed: subscribed for every org");
        let fwd_tx = tx.clone();
        let fwd_seen = seen.clone();
        let task = tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let Some(hub_msg) = decode(msg.subject.as_str(), &msg.payload) else {
                    tracing::debug!(subject = %msg.subject, "ignoring a bus message");
                    continue;
                };
                // State changes pass once across a renewal's overlap; an alert
                // repeated is harmless (browsers key alerts by id).
                let first = match &hub_msg {
                    HubMsg::State { org, event } => fwd_seen
                        .lock()
                        .map(|mut s| s.first(org, event.event_id))
                        .unwrap_or(true),
                    _ => true,
                };
                if first {
                    let _ = fwd_tx.send(Arc::new(hub_msg));
                }
            }
        });
        if !set(true, None) && current.is_none() {
            let _ = tx.send(Arc::new(HubMsg::Resync));
        }
        if let Some((old, old_task)) = current.replace((client, task)) {
            old_task.abort();
            let _ = old.drain().await;
        }
        // Renew at two thirds of the lifetime (or when the subscription ends).
        let left = (cred.expires_at - chrono::Utc::now())
            .to_std()
            .unwrap_or_default();
        let renew_in = (left * 2 / 3).max(Duration::from_secs(5));
        let Some((_, task)) = current.as_mut() else {
            continue;
        };
        tokio::select! {
            _ = tokio::time::sleep(renew_in) => {}
            _ = task => {
                set(false, Some("subscription closed".into()));
                current = None;
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_pass_once_across_a_renewal() {
        let mut s = Seen::default();
        assert!(s.first("a", 1));
        assert!(!s.first("a", 1));
        assert!(s.first("b", 1), "per org");
        for i in 2..(Seen::KEEP as i64 + 10) {
            s.first("a", i);
        }
        assert!(s.order.len() <= Seen::KEEP && s.set.len() <= Seen::KEEP);
    }

    #[test]
    fn feed_coverage() {
        let all = BusState {
            feed: Feed::All,
            connected: true,
            error: None,
        };
        assert!(all.live());
        let off = BusState {
            feed: Feed::None,
            ..all.clone()
        };
        assert!(!off.live());
        let down = BusState {
            connected: false,
            ..all
        };
        assert!(!down.live());
    }

    #[test]
    fn a_subject_and_payload_of_different_orgs_are_dropped() {
        use ritma_protocol::ids::{NodeId, OrgId, TenantId};
        use ritma_protocol::messages::NodeStatus;
        let sc = StateChange {
            v: 1,
            event_id: 7,
            org_id: OrgId::new("acme").unwrap(),
            tenant_id: TenantId::new("prod").unwrap(),
            node_id: NodeId::new("n1").unwrap(),
            at: chrono::Utc::now(),
            change: StateChangeKind::Status {
                from: NodeStatus::Online,
                to: NodeStatus::Offline,
                reason: "test".into(),
            },
        };
        let body = serde_json::to_vec(&sc).unwrap();
        let (org, ev) = decode_state("ritma.acme.prod.state.node.n1", &body).unwrap();
        assert_eq!((org.as_str(), ev.event_id), ("acme", 7));
        assert!(decode_state("ritma.globex.prod.state.node.n1", &body).is_none());
        assert!(decode_state("ritma.acme.prod.node.n1.heartbeat", &body).is_none());
    }

    #[test]
    fn job_progress_whose_subject_and_payload_name_different_orgs_is_dropped() {
        let body = serde_json::to_vec(&serde_json::json!({
            "v": 1, "job_id": "00000000-0000-0000-0000-000000000003", "org_id": "acme",
            "action": "add_labels", "state": "running", "total": 10, "succeeded": 4,
            "failed": 0, "skipped": 1, "at": "2026-12-08T10:00:00Z",
        }))
        .unwrap();
        match decode("ritma.acme.jobs", &body) {
            Some(HubMsg::Job { org, job }) => {
                assert_eq!(org, "acme");
                assert_eq!((job.handled(), job.total), (5, 10));
            }
            _ => panic!("job progress of acme"),
        }
        assert!(decode_job("ritma.globex.jobs", &body).is_none());
        assert!(decode_job("ritma.acme.alerts", &body).is_none());
    }

    #[test]
    fn a_rollup_cue_whose_subject_and_payload_name_different_orgs_is_dropped() {
        let body = serde_json::to_vec(&serde_json::json!({
            "v": 1, "org_id": "acme", "at": "2026-12-08T10:00:00Z",
        }))
        .unwrap();
        match decode("ritma.acme.activity", &body) {
            Some(HubMsg::Rollups { org }) => assert_eq!(org, "acme"),
            _ => panic!("a rollup cue of acme"),
        }
        assert!(decode_rollups("ritma.globex.activity", &body).is_none());
        assert!(decode_rollups("ritma.acme.jobs", &body).is_none());
        assert!(decode_rollups("ritma.acme.activity", b"{}").is_none());
    }

    #[test]
    fn an_alert_whose_subject_and_payload_name_different_orgs_is_dropped() {
        use ritma_protocol::alerts::AlertStatus;
        let mut n: AlertNotification = serde_json::from_value(serde_json::json!({
            "v": 1,
            "alert_id": "00000000-0000-0000-0000-000000000001",
            "org_id": "acme",
            "tenant_id": null,
            "node_id": "n1",
            "event": "node_offline",
            "status": "firing",
            "at": "2026-12-06T06:00:00Z",
            "rule_id": "00000000-0000-0000-0000-000000000002",
            "rule_name": "down",
            "summary": "node n1 is offline",
            "detail": "connection closed",
        }))
        .unwrap();
        let body = serde_json::to_vec(&n).unwrap();
        let (org, a) = decode_alert("ritma.acme.alerts", &body).unwrap();
        assert_eq!(org, "acme");
        assert_eq!(a.headline, "down: node n1 is offline");
        assert_eq!(a.status, "firing");
        assert!(decode_alert("ritma.globex.alerts", &body).is_none());
        assert!(decode_alert("ritma.acme.audit", &body).is_none());
        assert!(matches!(
            decode("ritma.acme.alerts", &body),
            Some(HubMsg::Alert { .. })
        ));
        n.status = AlertStatus::Test;
        let body = serde_json::to_vec(&n).unwrap();
        assert!(
            decode_alert("ritma.acme.alerts", &body).is_none(),
            "tests are not alerts"
        );
    }
}
