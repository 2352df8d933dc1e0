//! The only path to the bus: every message is appended to the spool, then
//! published in order and removed once JetStream acked it. While the bus is
//! unreachable messages simply accumulate on disk. A copy re-sent after a
//! lost ack is absorbed by the controller (every body carries the node's
//! `seq`, the database's idempotency key), so no `Nats-Msg-Id` is sent: the
//! stream's duplicate check cost nats-server ~3 µs of its ~17 µs per message
//! (crates/bench/README.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use ritma_protocol::NodeSubject;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::spool::{Spool, SpoolEntry};

/// Messages published per round trip while draining.
const WINDOW: usize = 64;

/// The drain's pace after a backlog (a bus outage): at most this many
/// messages per second once a burst of [`DRAIN_BURST`] is out. The
/// controller takes at most 100 messages a second from one node, with a
/// burst of 1,000 (`RITMA_INGEST_NODE_RATE`/`_BURST`), and acks the excess
/// unwritten: a spool replayed faster would lose what it replays. Replayed
/// heartbeats still arrive every few seconds, so the node stays online
/// while it catches up. A daemon sending as usual (one message every few
/// seconds) never waits.
const DRAIN_PER_SEC: f64 = 50.0;
const DRAIN_BURST: f64 = 500.0;

/// A token bucket for the drain's pace.
struct Pace {
    tokens: f64,
    at: tokio::time::Instant,
}

impl Pace {
    fn new() -> Self {
        Self {
            tokens: DRAIN_BURST,
            at: tokio::time::Instant::now(),
        }
    }

    /// Wait until `n` messages may go, and take them.
    async fn take(&mut self, n: usize) {
        let n = (n as f64).min(DRAIN_BURST);
        loop {
            let now = tokio::time::Instant::now();
            self.tokens = (self.tokens
                + now.saturating_duration_since(self.at).as_secs_f64() * DRAIN_PER_SEC)
                .min(DRAIN_BURST);
            self.at = now;
            if self.tokens >= n {
                self.tokens -= n;
                return;
            }
            tokio::time::sleep(Duration::from_secs_f64((n - self.tokens) / DRAIN_PER_SEC)).await;
        }
    }
}
const ACK_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a window was not (wholly) sent; what was acked before is committed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("not connected to the bus")]
    NotConnected,
    #[error("spool: {0}")]
    Spool(#[from] std::io::Error),
    #[error("publish timed out")]
    PublishTimedOut,
    #[error("publish: {0}")]
    Publish(#[from] async_nats::jetstream::context::PublishError),
    #[error("no ack from JetStream")]
    NoAck,
}

/// Spool figures the heartbeat reports.
#[derive(Default)]
pub struct SpoolGauge {
    pub depth: AtomicU64,
    pub dropped: AtomicU64,
    pub sent: AtomicU64,
}

pub struct Sender {
    pub spool: Spool,
    /// The bus client in use (replaced when the bus moves).
    pub bus: watch::Receiver<async_nats::Client>,
    pub scope: NodeSubject,
    pub rx: mpsc::Receiver<SpoolEntry>,
    pub gauge: Arc<SpoolGauge>,
    pace: Pace,
}

impl Sender {
    pub fn new(
        spool: Spool,
        bus: watch::Receiver<async_nats::Client>,
        scope: NodeSubject,
        rx: mpsc::Receiver<SpoolEntry>,
        gauge: Arc<SpoolGauge>,
    ) -> Self {
        Self {
            spool,
            bus,
            scope,
            rx,
            gauge,
            pace: Pace::new(),
        }
    }

    fn update_gauge(&self) {
        self.gauge
            .depth
            .store(self.spool.depth(), Ordering::Relaxed);
        self.gauge
            .dropped
            .store(self.spool.dropped(), Ordering::Relaxed);
    }

    fn accept(&mut self, entry: SpoolEntry) {
        if let Err(e) = self.spool.push(&entry) {
            // A full or broken disk: the message is lost, so say so.
            tracing::error!(error = %e, seq = entry.seq, "could not spool a message");
        }
        self.update_gauge();
    }

    /// Publish one window from the head of the spool; returns how many were acked.
    async fn send_window(&mut self, paced: bool) -> Result<usize, SendError> {
        // While disconnected the client would buffer publishes and send them
        // after reconnecting, behind the spool's back (a message the full
        // spool then drops and counts would still arrive): send nothing then.
        let js = jetstream::new(self.bus.borrow().clone());
        if !matches!(
            js.client().connection_state(),
            async_nats::connection::State::Connected
        ) {
            return Err(SendError::NotConnected);
        }
        let entries = self.spool.peek(WINDOW)?;
        if paced {
            self.pace.take(entries.len()).await;
        }
        let mut pending = Vec::with_capacity(entries.len());
        for entry in &entries {
            let publish = js.publish(self.scope.telemetry(entry.kind), entry.body.clone().into());
            let ack = tokio::time::timeout(ACK_TIMEOUT, publish)
                .await
                .map_err(|_| SendError::PublishTimedOut)??;
            pending.push(ack);
        }
        let mut acked = 0;
        for ack in pending {
            match tokio::time::timeout(ACK_TIMEOUT, ack).await {
                Ok(Ok(_)) => acked += 1,
                Ok(Err(e)) => {
                    self.commit(acked)?;
                    return Err(e.into());
                }
                Err(_) => {
                    self.commit(acked)?;
                    return Err(SendError::NoAck);
                }
            }
        }
        self.commit(acked)?;
        Ok(acked)
    }

    fn commit(&mut self, n: usize) -> Result<(), SendError> {
        self.spool.commit(n as u64)?;
        self.gauge.sent.fetch_add(n as u64, Ordering::Relaxed);
        self.update_gauge();
        Ok(())
    }

    pub async fn run(mut self, shutdown: CancellationToken, final_flush: Duration) {
        let backoff = |failures: u32| Duration::from_millis((250u64 << failures.min(5)).min(5_000));
        let mut failures = 0u32;
        // A fixed deadline, not a sleep made anew each turn: messages arriving
        // faster than the backoff used to restart the sleep for ever, so a busy
        // daemon never retried after a long bus outage (found by the fault tests).
        let mut next_retry = tokio::time::Instant::now();
        let mut bus_gone = false;
        self.update_gauge();
        loop {
            // Take everything queued in memory first, so the spool holds it.
            while let Ok(entry) = self.rx.try_recv() {
                self.accept(entry);
            }
            if self.spool.depth() > 0 && failures == 0 {
                match self.send_window(true).await {
                    Ok(_) => continue,
                    Err(e) => {
                        failures = 1;
                        next_retry = tokio::time::Instant::now() + backoff(failures);
                        tracing::warn!(error = %e, depth = self.spool.depth(), "bus unreachable; spooling to disk");
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                entry = self.rx.recv() => match entry {
                    Some(e) => self.accept(e),
                    None => break,
                },
                // A new client (the bus moved): retry soon, not after the back-off.
                changed = self.bus.changed(), if failures > 0 && !bus_gone => {
                    bus_gone = changed.is_err();
                    failures = 1;
                    next_retry = tokio::time::Instant::now() + backoff(failures);
                }
                _ = tokio::time::sleep_until(next_retry), if failures > 0 => {
                    match self.send_window(true).await {
                        Ok(_) => {
                            tracing::info!(depth = self.spool.depth(), "bus reachable again; draining spool");
                            failures = 0;
                        }
                        Err(_) => {
                            failures += 1;
                            next_retry = tokio::time::Instant::now() + backoff(failures);
                        }
                    }
                }
            }
        }
        // Last messages (the "stopping" heartbeat): spool them, try briefly to send.
        while let Ok(entry) = self.rx.try_recv() {
            self.accept(entry);
        }
        let deadline = tokio::time::Instant::now() + final_flush;
        while self.spool.depth() > 0 && tokio::time::Instant::now() < deadline {
            // The bus may be coming back (reconnecting): keep trying until the deadline.
            if self.send_window(false).await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tracing::info!(left_in_spool = self.spool.depth(), "sender stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_drain_goes_at_its_pace_after_its_burst() {
        let mut pace = Pace::new();
        let start = tokio::time::Instant::now();
        for _ in 0..(DRAIN_BURST as usize / 50) {
            pace.take(50).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst goes at once");
        // 1,000 more messages: at 50/s, 20 s of (paused, virtual) time.
        for _ in 0..20 {
            pace.take(50).await;
        }
        let secs = start.elapsed().as_secs_f64();
        assert!((19.9..=20.5).contains(&secs), "{secs}");
    }
}
