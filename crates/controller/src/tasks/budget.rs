//! Fair share of the ingest: per-node and per-org message budgets, and a
//! per-org budget of dead letters, applied by the ingest workers before any
//! expensive work (decoding, the database, the dead-letter stream).
//!
//! Every message on the telemetry stream is delivered to the ingest in
//! stream order, so one org's flood delays every org behind it unless the
//! ingest gets through the flood faster than it arrives. A message over its
//! budget is therefore only acked (a few hundred nanoseconds here, against
//! tens of microseconds for a decoded, committed one) and counted for its
//! org: it is not decoded, not written, not dead-lettered. The budgets are
//! token buckets keyed by the subject's node and org tokens (the broker lets
//! a node publish only on its own subjects, and an org's subjects only come
//! through that org's account), held in bounded maps: O(1) per message.
//!
//! Counters (per org: accepted, throttled by the node or the org budget,
//! dead letters kept and dropped) are added to `org_ingest_counters` every
//! few seconds, per hour, and served by `GET /api/orgs/{org}/ingest-stats`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// A sustained rate (per second) and a burst on top; a rate of 0 is unlimited.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rate {
    pub per_sec: u32,
    pub burst: u32,
}

impl Rate {
    pub fn new(per_sec: u32, burst: u32) -> Self {
        Self {
            per_sec,
            burst: burst.max(1),
        }
    }

    fn unlimited(self) -> bool {
        self.per_sec == 0
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct BudgetSettings {
    pub node: Rate,
    pub org: Rate,
    pub dead_letters: Rate,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: f64::from(rate.burst),
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(rate.per_sec)).min(f64::from(rate.burst));
        self.at = now;
    }

    fn take(&mut self, rate: Rate, now: Instant) -> bool {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Full again by `now`: forgetting it changes nothing.
    fn idle(&self, rate: Rate, now: Instant) -> bool {
        let mut b = *self;
        b.refill(rate, now);
        b.tokens >= f64::from(rate.burst)
    }
}

/// What the ingest did with one org's messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OrgCounters {
    /// Taken for decoding and commit (valid or not).
    pub accepted: u64,
    /// Over their node's budget: acked, not written.
    pub throttled_node: u64,
    /// Over the org's budget: acked, not written.
    pub throttled_org: u64,
    /// Invalid messages kept (dead-letter table and stream).
    pub dead_letters_kept: u64,
    /// Invalid messages over the org's dead-letter budget: acked, not kept.
    pub dead_letters_dropped: u64,
}

impl OrgCounters {
    fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    fn add(&mut self, o: &Self) {
        self.accepted += o.accepted;
        self.throttled_node += o.throttled_node;
        self.throttled_org += o.throttled_org;
        self.dead_letters_kept += o.dead_letters_kept;
        self.dead_letters_dropped += o.dead_letters_dropped;
    }
}

struct OrgState {
    messages: Bucket,
    dead_letters: Bucket,
    /// Not yet written to `org_ingest_counters`.
    unflushed: OrgCounters,
}

#[derive(Default)]
struct State {
    nodes: HashMap<Box<str>, Bucket>,
    orgs: HashMap<Box<str>, OrgState>,
}

/// Bounds on what is remembered (a node entry is about 60 bytes): beyond
/// them idle entries (full buckets) are forgotten, which changes nothing,
/// and if all are busy every node starts again from a full bucket.
const MAX_NODES: usize = 500_000;
const MAX_ORGS: usize = 100_000;

pub struct Budgets {
    settings: BudgetSettings,
    state: Mutex<State>,
}

impl Budgets {
    pub fn new(settings: BudgetSettings) -> Self {
        Self {
            settings,
            state: Mutex::default(),
        }
    }

    pub fn settings(&self) -> BudgetSettings {
        self.settings
    }

    /// The budgets for one batch: one lock, one clock reading.
    pub fn gate(&self) -> Gate<'_> {
        Gate {
            // A worker that panicked holding the lock left consistent maps.
            state: self.state.lock().unwrap_or_else(PoisonError::into_inner),
            settings: self.settings,
            now: Instant::now(),
        }
    }

    /// Counters not yet written, taken (zeroed).
    fn take_unflushed(&self) -> Vec<(String, OrgCounters)> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .orgs
            .iter_mut()
            .filter(|(_, o)| !o.unflushed.is_zero())
            .map(|(org, o)| (org.to_string(), std::mem::take(&mut o.unflushed)))
            .collect()
    }

    /// Give back counters a failed write did not store.
    fn restore(&self, counters: Vec<(String, OrgCounters)>) {
        let mut gate = self.gate();
        for (org, c) in counters {
            gate.org(&org).unflushed.add(&c);
        }
    }

    /// This controller's counters of `org` not yet written.
    pub fn unflushed(&self, org: &str) -> OrgCounters {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.orgs.get(org).map(|o| o.unflushed).unwrap_or_default()
    }
}

pub struct Gate<'a> {
    state: MutexGuard<'a, State>,
    settings: BudgetSettings,
    now: Instant,
}

impl Gate<'_> {
    fn org(&mut self, org: &str) -> &mut OrgState {
        let (settings, now) = (self.settings, self.now);
        let orgs = &mut self.state.orgs;
        if !orgs.contains_key(org) {
            if orgs.len() >= MAX_ORGS {
                orgs.retain(|_, o| {
                    !(o.unflushed.is_zero()
                        && o.messages.idle(settings.org, now)
                        && o.dead_letters.idle(settings.dead_letters, now))
                });
            }
            orgs.insert(
                org.into(),
                OrgState {
                    messages: Bucket::full(settings.org, now),
                    dead_letters: Bucket::full(settings.dead_letters, now),
                    unflushed: OrgCounters::default(),
                },
            );
        }
        // Inserted just above when missing.
        orgs.get_mut(org).unwrap_or_else(|| unreachable!())
    }

    fn node_take(&mut self, node: &str) -> bool {
        let (rate, now) = (self.settings.node, self.now);
        if rate.unlimited() {
            return true;
        }
        let nodes = &mut self.state.nodes;
        if let Some(b) = nodes.get_mut(node) {
            return b.take(rate, now);
        }
        if nodes.len() >= MAX_NODES {
            nodes.retain(|_, b| !b.idle(rate, now));
            if nodes.len() >= MAX_NODES {
                nodes.clear();
            }
        }
        let mut b = Bucket::full(rate, now);
        let ok = b.take(rate, now);
        nodes.insert(node.into(), b);
        ok
    }

    /// Whether the ingest takes a message from `node` of `org` (by its
    /// subject's tokens); counted either way.
    pub fn admit(&mut self, org: &str, node: &str) -> bool {
        let node_ok = self.node_take(node);
        let (rate, now) = (self.settings.org, self.now);
        let o = self.org(org);
        if !node_ok {
            o.unflushed.throttled_node += 1;
            return false;
        }
        if !rate.unlimited() && !o.messages.take(rate, now) {
            o.unflushed.throttled_org += 1;
            return false;
        }
        o.unflushed.accepted += 1;
        true
    }

    /// Whether an invalid message of `org` is kept as a dead letter; counted either way.
    pub fn keep_dead_letter(&mut self, org: &str) -> bool {
        let (rate, now) = (self.settings.dead_letters, self.now);
        let o = self.org(org);
        if rate.unlimited() || o.dead_letters.take(rate, now) {
            o.unflushed.dead_letters_kept += 1;
            true
        } else {
            o.unflushed.dead_letters_dropped += 1;
            false
        }
    }
}

/// The org and node tokens of a telemetry subject
/// (`ritma.<org>.<tenant>.node.<node>.<kind>`), without parsing it fully:
/// whatever the subject, the budget keys on what stands there.
pub fn subject_keys(subject: &str) -> (&str, &str) {
    let mut tokens = subject.split('.');
    let org = tokens.nth(1).unwrap_or_default();
    let node = tokens.nth(2).unwrap_or_default();
    (org, node)
}

const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// Writes the per-org ingest counters kept in memory; what could not be
/// written is kept for the next pass.
pub struct CounterFlush {
    pub pool: PgPool,
    pub budgets: Arc<Budgets>,
}

impl super::periodic::Pass for CounterFlush {
    async fn pass(&mut self) {
        let counters = self.budgets.take_unflushed();
        if counters.is_empty() {
            return;
        }
        let rows: Vec<ritma_db::ingest::OrgIngestCounts> = counters
            .iter()
            .map(|(org, c)| ritma_db::ingest::OrgIngestCounts {
                org_id: org.clone(),
                accepted: c.accepted,
                throttled_node: c.throttled_node,
                throttled_org: c.throttled_org,
                dead_letters_kept: c.dead_letters_kept,
                dead_letters_dropped: c.dead_letters_dropped,
            })
            .collect();
        if let Err(e) = ritma_db::ingest::org_counters_add(&self.pool, &rows).await {
            tracing::warn!(error = %e, "ingest counters not written; kept for the next try");
            self.budgets.restore(counters);
        }
    }
}

/// Flush every [`FLUSH_EVERY`] until `shutdown`, then once more.
pub async fn flush(pool: PgPool, budgets: Arc<Budgets>, shutdown: CancellationToken) {
    let mut task = CounterFlush { pool, budgets };
    super::periodic::every("ingest counters", FLUSH_EVERY, shutdown, &mut task).await;
    super::periodic::Pass::pass(&mut task).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets(node: (u32, u32), org: (u32, u32), dl: (u32, u32)) -> Budgets {
        Budgets::new(BudgetSettings {
            node: Rate::new(node.0, node.1),
            org: Rate::new(org.0, org.1),
            dead_letters: Rate::new(dl.0, dl.1),
        })
    }

    #[test]
    fn a_node_over_its_budget_is_throttled_and_others_are_not() {
        let b = budgets((10, 5), (0, 1), (0, 1));
        let mut gate = b.gate();
        let admitted = (0..100).filter(|_| gate.admit("a", "noisy")).count();
        assert_eq!(admitted, 5, "the burst, then nothing in the same instant");
        assert!(gate.admit("b", "quiet"));
        assert!(gate.admit("a", "other-node-of-a"));
        drop(gate);
        let a = b.unflushed("a");
        assert_eq!((a.accepted, a.throttled_node), (6, 95));
        assert_eq!(b.unflushed("b").accepted, 1);
    }

    #[test]
    fn buckets_refill_at_their_rate() {
        let rate = Rate::new(100, 10);
        let t0 = Instant::now();
        let mut bucket = Bucket::full(rate, t0);
        assert_eq!((0..20).filter(|_| bucket.take(rate, t0)).count(), 10);
        let later = t0 + Duration::from_millis(50);
        assert_eq!((0..20).filter(|_| bucket.take(rate, later)).count(), 5);
        assert!(bucket.idle(rate, t0 + Duration::from_secs(1)));
    }

    #[test]
    fn an_org_over_its_budget_is_throttled_across_its_nodes() {
        let b = budgets((0, 1), (10, 3), (0, 1));
        let mut gate = b.gate();
        let admitted = (0..10)
            .filter(|i| gate.admit("a", &format!("n{i}")))
            .count();
        assert_eq!(admitted, 3);
        assert!(gate.admit("b", "n0"));
        drop(gate);
        assert_eq!(b.unflushed("a").throttled_org, 7);
    }

    #[test]
    fn dead_letters_have_their_own_budget_per_org() {
        let b = budgets((0, 1), (0, 1), (1, 2));
        let mut gate = b.gate();
        let kept = (0..10).filter(|_| gate.keep_dead_letter("a")).count();
        assert_eq!(kept, 2);
        assert!(gate.keep_dead_letter("b"));
        drop(gate);
        let a = b.unflushed("a");
        assert_eq!((a.dead_letters_kept, a.dead_letters_dropped), (2, 8));
        assert_eq!(b.take_unflushed().len(), 2);
        assert!(b.unflushed("a").is_zero(), "taken counters are zeroed");
    }

    #[test]
    fn subject_keys_are_the_org_and_node_tokens() {
        assert_eq!(
            subject_keys("ritma.acme.prod.node.web-1.usage"),
            ("acme", "web-1")
        );
        assert_eq!(subject_keys("ritma.acme"), ("acme", ""));
        assert_eq!(subject_keys(""), ("", ""));
    }

    #[test]
    fn the_node_map_stays_bounded() {
        let b = budgets((1, 1), (0, 1), (0, 1));
        let mut gate = b.gate();
        for i in 0..(MAX_NODES + 10) {
            gate.admit("a", &format!("n{i}"));
        }
        assert!(gate.state.nodes.len() <= MAX_NODES);
    }
}
