//! Offline from the broker: the controller follows the servers' connection
//! events (`$SYS.ACCOUNT.<account>.CONNECT` / `.DISCONNECT`, from every server
//! of a cluster, read with the system account's client) and marks a node
//! offline, with the reason, once its last connection has closed and no
//! reconnect came within the grace. Heartbeat deadlines (the reconciler) stay
//! the backstop for connections that stay half open.
//!
//! A connection's user is the subject of the user JWT the server checked,
//! within the account the event names; the client-chosen connection name
//! (and the reported `user`, which a client can set) is never used.
//!
//! Memory is bounded: open connections and pending disconnects are kept up to
//! fixed limits; past them a node is left to its heartbeat deadline.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use ritma_db::flapping::FlapPolicy;
use ritma_db::presence::BrokerDisconnect;
use ritma_protocol::broker_events::{BrokerClientEvent, BrokerConnzReply, broker_connz_request};
use ritma_protocol::subjects::{self, BrokerConnection, NodeSubject};
use ritma_protocol::{NodeId, OrgId, TenantId};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Most open connections remembered (about 200 bytes each).
pub const TRACKED_MAX: usize = 500_000;
/// Most nodes waiting out their grace at once.
pub const PENDING_MAX: usize = 100_000;
/// A disconnect newer than the ingest's watermark waits this long and is
/// looked at again: a heartbeat sent before it may still be in the stream.
const WATERMARK_RETRY: Duration = Duration::from_millis(100);
/// How long the servers' answers to "is this user still connected?" are
/// collected (every server of a cluster answers for its own clients).
const STILL_CONNECTED_WAIT: Duration = Duration::from_millis(250);
/// Most such questions asked at once ...
const STILL_CONNECTED_PARALLEL: usize = 64;
/// ... and most asked per pass: a larger wave (a rack or a link lost) is
/// marked on the events alone.
const STILL_CONNECTED_MAX: usize = 256;

/// The product's reason for a server's disconnect reason.
pub fn offline_reason(server_reason: &str) -> String {
    match server_reason {
        "Client Closed" | "Read Error" | "Write Error" => "connection closed".into(),
        "Authentication Expired" => "credentials expired".into(),
        "Stale Connection" => "stale connection".into(),
        "Credentials Revoked" => "revoked".into(),
        "Server Shutdown" => "broker shut down".into(),
        r if r.starts_with("Slow Consumer") => "slow consumer".into(),
        "" => "connection lost".into(),
        r => {
            let r: String = r.chars().take(100).collect();
            format!("connection lost ({})", r.to_lowercase())
        }
    }
}

/// (account, user key): a bus user.
type User = (String, String);
/// (server id, client id): one connection in a cluster.
type Conn = (String, u64);

struct Pending {
    due: Instant,
    at: DateTime<Utc>,
    reason: String,
    /// False once a connection of the user opened again.
    armed: bool,
}

/// What is known of the bus users' connections; no I/O, so it is tested alone.
#[derive(Default)]
pub struct Presence {
    grace: Duration,
    open: HashMap<Conn, User>,
    per_user: HashMap<User, u32>,
    pending: HashMap<User, Pending>,
    /// One entry per pending user, by due time.
    timers: BinaryHeap<Reverse<(Instant, User)>>,
    /// Events not tracked because a bound was reached.
    pub overflowed: u64,
}

impl Presence {
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            ..Self::default()
        }
    }

    pub fn connected(&mut self, conn: Conn, user: User) {
        if let Some(p) = self.pending.get_mut(&user) {
            p.armed = false;
        }
        if self.open.contains_key(&conn) {
            return;
        }
        if self.open.len() >= TRACKED_MAX {
            self.overflowed += 1;
            return;
        }
        *self.per_user.entry(user.clone()).or_default() += 1;
        self.open.insert(conn, user);
    }

    /// A connection closed; when it was the user's last known one, the user
    /// waits out the grace.
    pub fn disconnected(
        &mut self,
        conn: &Conn,
        user: User,
        at: DateTime<Utc>,
        reason: String,
        now: Instant,
    ) {
        if self.open.remove(conn).is_some()
            && let Entry::Occupied(mut n) = self.per_user.entry(user.clone())
        {
            *n.get_mut() -= 1;
            if *n.get() > 0 {
                return;
            }
            n.remove();
        }
        if self.per_user.contains_key(&user) {
            // Another connection of this user is open.
            return;
        }
        self.arm(user, at, reason, now + self.grace);
    }

    fn arm(&mut self, user: User, at: DateTime<Utc>, reason: String, due: Instant) {
        match self.pending.entry(user) {
            Entry::Occupied(mut e) => {
                // Its timer is queued already; it re-queues itself when early.
                let p = e.get_mut();
                p.due = p.due.max(due);
                p.at = p.at.max(at);
                p.reason = reason;
                p.armed = true;
            }
            Entry::Vacant(e) => {
                if self.timers.len() >= PENDING_MAX {
                    self.overflowed += 1;
                    return;
                }
                self.timers.push(Reverse((due, e.key().clone())));
                e.insert(Pending {
                    due,
                    at,
                    reason,
                    armed: true,
                });
            }
        }
    }

    /// Wait again (a disconnect the ingest has not caught up with).
    pub fn defer(&mut self, gone: BrokerDisconnect, until: Instant) {
        let user = (gone.account, gone.user_key);
        if self.per_user.contains_key(&user) {
            return;
        }
        self.arm(user, gone.at, gone.reason, until);
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((due, _))| *due)
    }

    /// The users whose grace is over without a reconnect.
    pub fn take_due(&mut self, now: Instant) -> Vec<BrokerDisconnect> {
        let mut out = Vec::new();
        while let Some(Reverse((due, _))) = self.timers.peek() {
            if *due > now {
                break;
            }
            let Some(Reverse((_, user))) = self.timers.pop() else {
                break;
            };
            let Some(p) = self.pending.get(&user) else {
                continue;
            };
            if p.armed && p.due > now {
                let due = p.due;
                self.timers.push(Reverse((due, user)));
                continue;
            }
            let Some(p) = self.pending.remove(&user) else {
                continue;
            };
            if p.armed {
                out.push(BrokerDisconnect {
                    account: user.0,
                    user_key: user.1,
                    at: p.at,
                    reason: p.reason,
                });
            }
        }
        out
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

pub struct BrokerPresence {
    pub pool: PgPool,
    /// A system-account client: the connection events are published there.
    pub system: async_nats::Client,
    pub js: jetstream::Context,
    pub grace: Duration,
    pub flapping: FlapPolicy,
    pub wake: Arc<Notify>,
}

impl BrokerPresence {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut attempt = 0;
        while !shutdown.is_cancelled() {
            match self.follow(&shutdown).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "broker connection events unavailable; retrying (heartbeat deadlines still apply)");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(super::backoff(attempt)) => {}
                    }
                    attempt += 1;
                }
            }
        }
    }

    async fn follow(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let mut connects = self
            .system
            .subscribe(subjects::broker_connection_events(
                BrokerConnection::Connect,
            ))
            .await?;
        let mut disconnects = self
            .system
            .subscribe(subjects::broker_connection_events(
                BrokerConnection::Disconnect,
            ))
            .await?;
        let mut presence = Presence::new(self.grace);
        let mut consumer = None;
        let mut warned_overflow = 0;
        loop {
            let due = presence.next_due();
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                m = connects.next() => {
                    let m = m.ok_or_else(|| anyhow::anyhow!("connect events ended"))?;
                    if let Some((conn, user, _)) = Self::read(&m) {
                        presence.connected(conn, user);
                    }
                }
                m = disconnects.next() => {
                    let m = m.ok_or_else(|| anyhow::anyhow!("disconnect events ended"))?;
                    if let Some((conn, user, event)) = Self::read(&m) {
                        let at = event.at().unwrap_or_else(Utc::now);
                        let reason = offline_reason(event.reason.as_deref().unwrap_or_default());
                        presence.disconnected(&conn, user, at, reason, Instant::now());
                    }
                }
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    self.mark(&mut presence, &mut consumer).await;
                }
            }
            if presence.overflowed > warned_overflow {
                warned_overflow = presence.overflowed;
                tracing::warn!(
                    untracked = presence.overflowed,
                    "broker presence bounds reached; those nodes wait for their heartbeat deadline"
                );
            }
        }
    }

    /// Leave out nodes a server still lists an open connection of (one this
    /// controller did not see open: made while it was restarting, or while
    /// its system connection was away), and users that are no node.
    async fn not_connected(&self, gone: Vec<BrokerDisconnect>) -> Vec<BrokerDisconnect> {
        let nodes = match ritma_db::presence::nodes_of_disconnected(&self.pool, &gone).await {
            Ok(n) => n,
            // The marking itself will tell (and retry nothing: deadlines remain).
            Err(_) => return gone,
        };
        if nodes.len() > STILL_CONNECTED_MAX {
            return gone;
        }
        let nodes: HashMap<String, NodeSubject> = nodes
            .into_iter()
            .filter_map(|(key, id, org, tenant)| {
                let subject = NodeSubject::new(
                    OrgId::new(org).ok()?,
                    TenantId::new(tenant).ok()?,
                    NodeId::new(id).ok()?,
                );
                Some((key, subject))
            })
            .collect();
        let candidates: Vec<(BrokerDisconnect, String)> = gone
            .into_iter()
            .filter_map(|g| {
                let subject = nodes.get(&g.user_key)?.commands_wildcard();
                Some((g, subject))
            })
            .collect();
        let mut out = Vec::with_capacity(candidates.len());
        for wave in candidates.chunks(STILL_CONNECTED_PARALLEL) {
            let open = futures::future::join_all(
                wave.iter()
                    .map(|(g, subject)| self.still_connected(&g.account, &g.user_key, subject)),
            )
            .await;
            out.extend(
                wave.iter()
                    .zip(open)
                    .filter(|(_, open)| !open)
                    .map(|((g, _), _)| g.clone()),
            );
        }
        out
    }

    /// True when a server answers that `user_key` has an open connection
    /// in `account` subscribed on `subject`; no answer (or an error) counts as no.
    async fn still_connected(&self, account: &str, user_key: &str, subject: &str) -> bool {
        let inbox = self.system.new_inbox();
        let Ok(mut answers) = self.system.subscribe(inbox.clone()).await else {
            return false;
        };
        let body = broker_connz_request(subject).to_string();
        if self
            .system
            .publish_with_reply(subjects::broker_account_connz(account), inbox, body.into())
            .await
            .is_err()
        {
            return false;
        }
        let deadline = Instant::now() + STILL_CONNECTED_WAIT;
        while let Ok(Some(m)) = tokio::time::timeout_at(deadline, answers.next()).await {
            let names = serde_json::from_slice::<BrokerConnzReply>(&m.payload)
                .is_ok_and(|r| r.names_user(user_key));
            if names {
                return true;
            }
        }
        false
    }

    /// The connection, its authenticated user and the event; None for what
    /// is not a JWT user's connection event, or whose subject and body name
    /// different accounts.
    fn read(m: &async_nats::Message) -> Option<(Conn, User, BrokerClientEvent)> {
        let (account, _) = subjects::parse_broker_connection_event(m.subject.as_str())?;
        let event: BrokerClientEvent = serde_json::from_slice(&m.payload).ok()?;
        if event.client.acc != account {
            return None;
        }
        let user = event.client.authenticated_user()?;
        Some((
            (event.server.id.clone(), event.client.id),
            (account.to_owned(), user),
            event,
        ))
    }

    /// Mark the nodes whose grace is over, once the ingest has committed
    /// every heartbeat the broker received before their disconnect.
    async fn mark(
        &self,
        presence: &mut Presence,
        consumer: &mut Option<(
            jetstream::stream::Stream<()>,
            jetstream::consumer::PullConsumer,
        )>,
    ) {
        let now = Instant::now();
        let due = presence.take_due(now);
        if due.is_empty() {
            return;
        }
        let watermark = super::reconciler::watermark(&self.js, consumer).await;
        let (ready, waiting): (Vec<_>, Vec<_>) = match watermark {
            Ok(w) => due.into_iter().partition(|g| g.at <= w),
            Err(_) => (vec![], due),
        };
        for g in waiting {
            presence.defer(g, now + WATERMARK_RETRY);
        }
        let ready = self.not_connected(ready).await;
        if ready.is_empty() {
            return;
        }
        match ritma_db::presence::nodes_mark_disconnected(&self.pool, &ready, self.flapping).await {
            Ok(t) => {
                for x in t.iter().take(100) {
                    tracing::info!(node = %x.node_id, from = %x.from, to = %x.to, reason = %x.reason, "status change (broker)");
                }
                if !t.is_empty() {
                    self.wake.notify_one();
                }
            }
            Err(e) => {
                // The heartbeat deadline still applies to these nodes.
                tracing::warn!(error = %e, nodes = ready.len(), "marking disconnected nodes offline failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: &str) -> User {
        ("ACC".into(), n.into())
    }

    fn conn(s: &str, id: u64) -> Conn {
        (s.into(), id)
    }

    #[test]
    fn the_last_connection_closing_arms_the_grace_and_a_reconnect_disarms_it() {
        let grace = Duration::from_millis(1500);
        let mut p = Presence::new(grace);
        let t0 = Instant::now();
        p.connected(conn("s1", 1), user("U1"));
        p.connected(conn("s2", 9), user("U1"));
        // One of two connections closes: nothing pending.
        p.disconnected(
            &conn("s1", 1),
            user("U1"),
            Utc::now(),
            "connection closed".into(),
            t0,
        );
        assert_eq!(p.pending_len(), 0);
        // The last one closes: due after the grace.
        p.disconnected(
            &conn("s2", 9),
            user("U1"),
            Utc::now(),
            "connection closed".into(),
            t0,
        );
        assert_eq!(p.next_due(), Some(t0 + grace));
        assert!(p.take_due(t0 + grace / 2).is_empty());
        // A reconnect inside the grace: nothing due.
        p.connected(conn("s1", 2), user("U1"));
        assert!(p.take_due(t0 + grace * 2).is_empty());
        assert_eq!(p.pending_len(), 0);
        // A disconnect of a connection never seen (before this controller
        // started) of a user with none known open: armed.
        p.disconnected(
            &conn("s3", 4),
            user("U2"),
            Utc::now(),
            "stale connection".into(),
            t0,
        );
        let due = p.take_due(t0 + grace);
        assert_eq!(due.len(), 1);
        assert_eq!(
            (due[0].user_key.as_str(), due[0].reason.as_str()),
            ("U2", "stale connection")
        );
    }

    #[test]
    fn a_rearmed_timer_waits_for_its_new_due_time_and_fires_once() {
        let grace = Duration::from_millis(1000);
        let mut p = Presence::new(grace);
        let t0 = Instant::now();
        p.disconnected(&conn("s", 1), user("U"), Utc::now(), "a".into(), t0);
        p.connected(conn("s", 2), user("U"));
        p.disconnected(
            &conn("s", 2),
            user("U"),
            Utc::now(),
            "b".into(),
            t0 + grace / 2,
        );
        assert!(p.take_due(t0 + grace).is_empty());
        let due = p.take_due(t0 + grace * 2);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].reason, "b");
        assert!(p.take_due(t0 + grace * 3).is_empty());
    }

    #[test]
    fn pending_disconnects_are_bounded() {
        let mut p = Presence::new(Duration::from_secs(1));
        let t0 = Instant::now();
        for i in 0..PENDING_MAX + 10 {
            let u = user(&format!("U{i}"));
            p.disconnected(&conn("s", i as u64), u, Utc::now(), "x".into(), t0);
        }
        assert_eq!(p.pending_len(), PENDING_MAX);
        assert_eq!(p.overflowed, 10);
        assert_eq!(p.take_due(t0 + Duration::from_secs(1)).len(), PENDING_MAX);
        assert_eq!(p.pending_len(), 0);
    }

    #[test]
    fn server_reasons_map_to_product_reasons() {
        assert_eq!(offline_reason("Client Closed"), "connection closed");
        assert_eq!(
            offline_reason("Authentication Expired"),
            "credentials expired"
        );
        assert_eq!(offline_reason("Stale Connection"), "stale connection");
        assert_eq!(offline_reason("Credentials Revoked"), "revoked");
        assert_eq!(
            offline_reason("Slow Consumer (Write Deadline)"),
            "slow consumer"
        );
        assert_eq!(offline_reason("Kicked"), "connection lost (kicked)");
        assert!(offline_reason(&"x".repeat(10_000)).len() < 130);
    }
}
