//! The rollup cue on `ritma.<org>.activity`: after the ingest commits usage
//! or enforcement summaries of an org (and so grows its hourly rollups), a
//! small message tells the console to re-read its charts, at most once every
//! [`MIN_INTERVAL`] per org, published by a task of its own so the ingest
//! never waits on it. Best effort: a lost cue only delays a chart until the
//! next one.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use ritma_protocol::activity::RollupsUpdated;
use ritma_protocol::{OrgId, SCHEMA_VERSION, subjects};

use crate::accounts::Accounts;

pub const MIN_INTERVAL: Duration = Duration::from_secs(5);

/// Orgs remembered at most; past it the entries older than the interval go
/// (an org's cue is then at worst sent again a little early).
const MAX_REMEMBERED: usize = 10_000;

/// When each org was last cued.
#[derive(Default)]
pub struct CueThrottle {
    last: Mutex<HashMap<String, Instant>>,
}

impl CueThrottle {
    /// The orgs of `touched` whose last cue is older than [`MIN_INTERVAL`]
    /// (marked as cued now).
    pub fn due(&self, touched: BTreeSet<String>, now: Instant) -> Vec<String> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.len() >= MAX_REMEMBERED {
            last.retain(|_, at| now.duration_since(*at) < MIN_INTERVAL);
        }
        touched
            .into_iter()
            .filter(|org| {
                let due = last
                    .get(org)
                    .is_none_or(|at| now.duration_since(*at) >= MIN_INTERVAL);
                if due {
                    last.insert(org.clone(), now);
                }
                due
            })
            .collect()
    }
}

/// Cues queued for the publisher at most; past it a cue is dropped (the
/// next one, five seconds on, does the same job).
const QUEUE: usize = 1024;

/// The ingest's side: throttles and queues; never waits on the bus.
pub struct RollupCue {
    throttle: CueThrottle,
    queue: mpsc::Sender<String>,
}

impl RollupCue {
    /// The cue and its publisher task (which ends with the cue).
    pub fn start(accounts: Arc<Accounts>) -> (Arc<Self>, impl std::future::Future<Output = ()>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        let cue = Arc::new(Self {
            throttle: CueThrottle::default(),
            queue,
        });
        (cue, publish_cues(accounts, rx))
    }

    /// Cue the orgs whose rollups the last commit grew (throttled).
    pub fn touched(&self, orgs: BTreeSet<String>) {
        for org in self.throttle.due(orgs, Instant::now()) {
            // Full: dropped, see QUEUE.
            let _ = self.queue.try_send(org);
        }
    }
}

async fn publish_cues(accounts: Arc<Accounts>, mut rx: mpsc::Receiver<String>) {
    while let Some(org) = rx.recv().await {
        let Ok(org_id) = OrgId::new(org) else {
            continue;
        };
        let cue = RollupsUpdated {
            v: SCHEMA_VERSION,
            org_id,
            at: chrono::Utc::now(),
        };
        let sent = async {
            let client = accounts.org_client(cue.org_id.as_str()).await?;
            let body = serde_json::to_vec(&cue)
                .map_err(|e| crate::error::ApiError::Internal(e.to_string()))?;
            client
                .publish(subjects::activity(&cue.org_id), body.into())
                .await
                .map_err(|e| crate::error::ApiError::Bus(e.to_string()))
        };
        if let Err(e) = sent.await {
            tracing::debug!(org = %cue.org_id, error = %e, "rollup cue not published");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orgs(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn each_org_is_cued_at_most_once_per_interval() {
        let t = CueThrottle::default();
        let start = Instant::now();
        assert_eq!(
            t.due(orgs(&["acme", "globex"]), start),
            vec!["acme", "globex"]
        );
        // A busy org does not cue again within the interval; another org does.
        let soon = start + Duration::from_secs(1);
        assert_eq!(t.due(orgs(&["acme", "initech"]), soon), vec!["initech"]);
        let later = start + MIN_INTERVAL;
        assert_eq!(t.due(orgs(&["acme"]), later), vec!["acme"]);
    }

    #[test]
    fn the_remembered_orgs_are_bounded() {
        let t = CueThrottle::default();
        let start = Instant::now();
        let many: BTreeSet<String> = (0..MAX_REMEMBERED).map(|i| format!("org-{i}")).collect();
        assert_eq!(t.due(many, start).len(), MAX_REMEMBERED);
        let later = start + MIN_INTERVAL;
        t.due(orgs(&["fresh"]), later);
        assert!(t.last.lock().unwrap().len() <= 2);
    }
}
