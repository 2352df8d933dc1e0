//! Resuming a live stream on any replica. Every console replica receives
//! every org's state changes from the bus all the time, so a replica that
//! did not serve a browser before still saw what it missed: this module
//! keeps the recent ones (bounded) and replays those after the browser's
//! `Last-Event-ID` (the state change's `event_id`, which EventSource sends
//! by itself when it reconnects, to whichever replica the balancer picks).
//!
//! Events are recorded here *before* they are passed on to streams, so a
//! stream that subscribes and then reads the recent events misses nothing:
//! an event is either in what it read or arrives on its subscription.
//! When the replica cannot vouch for the gap (the browser's last event is
//! older than anything kept, or the replica started after it), the stream
//! asks the browser to re-sync (re-fetch everything) instead.

use super::live::{Hub, HubMsg};
use crate::model::LiveEvent;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// State changes kept for replay (all orgs; about 1 KB each).
pub const KEEP: usize = 20_000;

#[derive(Default)]
struct Kept {
    events: VecDeque<(String, Arc<LiveEvent>)>,
    /// Every event with an id above this that the bus delivered is kept
    /// (None: nothing known yet).
    floor: Option<i64>,
}

/// The recent state changes of this replica, and the channel streams
/// subscribe to (the hub's messages, passed on after recording).
#[derive(Clone)]
pub struct Recent {
    kept: Arc<Mutex<Kept>>,
    tx: broadcast::Sender<Arc<HubMsg>>,
}

/// What a resuming stream sends first.
#[derive(Debug, Default)]
pub struct Resume {
    /// The org's events after the browser's last one, oldest first.
    pub events: Vec<Arc<LiveEvent>>,
    /// The gap cannot be vouched for: the browser re-fetches.
    pub resync: bool,
}

impl Recent {
    /// Record the hub's messages, then pass them on.
    pub fn start(hub: &Hub) -> Recent {
        let (tx, _) = broadcast::channel(1024);
        let recent = Recent {
            kept: Arc::new(Mutex::new(Kept::default())),
            tx,
        };
        let mut rx = hub.tx.subscribe();
        let me = recent.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(msg) => {
                        if let HubMsg::State { org, event } = msg.as_ref() {
                            me.record(org, event);
                        }
                        let _ = me.tx.send(msg);
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "live replay: fell behind the bus");
                        me.forget_all();
                        let _ = me.tx.send(Arc::new(HubMsg::Resync));
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        recent
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<HubMsg>> {
        self.tx.subscribe()
    }

    fn record(&self, org: &str, event: &LiveEvent) {
        let mut k = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if k.floor.is_none() {
            // Events before the first one this replica saw are unknown here.
            k.floor = Some(event.event_id - 1);
        }
        k.events
            .push_back((org.to_string(), Arc::new(event.clone())));
        while k.events.len() > KEEP {
            if let Some((_, old)) = k.events.pop_front() {
                k.floor = Some(k.floor.unwrap_or(i64::MIN).max(old.event_id));
            }
        }
    }

    /// Lost track (lagged): vouch for nothing before what comes next.
    fn forget_all(&self) {
        let mut k = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        k.floor = k.events.iter().map(|(_, e)| e.event_id).max().or(k.floor);
        k.events.clear();
    }

    /// The events of `org` after `last_event_id` (subscribe before calling).
    pub fn resume(&self, org: &str, last_event_id: i64) -> Resume {
        let k = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let resync = match k.floor {
            Some(floor) => last_event_id < floor,
            None => true,
        };
        Resume {
            events: k
                .events
                .iter()
                .filter(|(o, e)| o == org && e.event_id > last_event_id)
                .map(|(_, e)| e.clone())
                .collect(),
            resync,
        }
    }
}

/// The `Last-Event-ID` a reconnecting EventSource sends.
pub fn last_event_id(headers: &axum::http::HeaderMap) -> Option<i64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|id| *id >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i64) -> LiveEvent {
        serde_json::from_value(serde_json::json!({
            "event_id": id, "tenant_id": "t", "node_id": "n", "kind": "status",
            "at": { "ms": 0, "text": "" }
        }))
        .unwrap_or_else(|e| panic!("test event: {e}"))
    }

    #[tokio::test]
    async fn a_stream_resumes_after_its_last_event_in_its_own_org() {
        let hub = Hub::disconnected();
        let recent = Recent::start(&hub);
        let mut rx = recent.subscribe();
        for (org, id) in [("a", 10), ("b", 11), ("a", 12), ("a", 13)] {
            hub.publish(HubMsg::State {
                org: org.into(),
                event: Box::new(event(id)),
            });
            rx.recv().await.unwrap();
        }
        let r = recent.resume("a", 10);
        let ids: Vec<i64> = r.events.iter().map(|e| e.event_id).collect();
        assert_eq!(ids, vec![12, 13], "after 10, org a only");
        assert!(!r.resync);
        let r = recent.resume("a", 5);
        assert!(r.resync, "older than anything this replica saw");
        assert!(recent.resume("b", 13).events.is_empty());
    }

    #[test]
    fn the_header_is_a_plain_event_id() {
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(last_event_id(&h), None);
        h.insert("last-event-id", "42".parse().unwrap());
        assert_eq!(last_event_id(&h), Some(42));
        h.insert("last-event-id", "x".parse().unwrap());
        assert_eq!(last_event_id(&h), None);
        h.insert("last-event-id", "-3".parse().unwrap());
        assert_eq!(last_event_id(&h), None);
    }
}
