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
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::spool::{Spool, SpoolEntry};

/// Messages published per round trip while draining.
const WINDOW: usize = 64;
const ACK_TIMEOUT: Duration = Duration::from_secs(3);

/// Spool figures the heartbeat reports.
#[derive(Default)]
pub struct SpoolGauge {
    pub depth: AtomicU64,
    pub dropped: AtomicU64,
    pub sent: AtomicU64,
}

pub struct Sender {
    pub spool: Spool,
    pub js: jetstream::Context,
    pub scope: NodeSubject,
    pub rx: mpsc::Receiver<SpoolEntry>,
    pub gauge: Arc<SpoolGauge>,
}

impl Sender {
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
    async fn send_window(&mut self) -> Result<usize, String> {
        // While disconnected the client would buffer publishes and send them
        // after reconnecting, behind the spool's back (a message the full
        // spool then drops and counts would still arrive): send nothing then.
        if !matches!(
            self.js.client().connection_state(),
            async_nats::connection::State::Connected
        ) {
            return Err("not connected to the bus".into());
        }
        let entries = self.spool.peek(WINDOW).map_err(|e| e.to_string())?;
        let mut pending = Vec::with_capacity(entries.len());
        for entry in &entries {
            let publish = self
                .js
                .publish(self.scope.telemetry(entry.kind), entry.body.clone().into());
            let ack = tokio::time::timeout(ACK_TIMEOUT, publish)
                .await
                .map_err(|_| "publish timed out".to_string())?
                .map_err(|e| e.to_string())?;
            pending.push(ack);
        }
        let mut acked = 0;
        for ack in pending {
            match tokio::time::timeout(ACK_TIMEOUT, ack).await {
                Ok(Ok(_)) => acked += 1,
                Ok(Err(e)) => {
                    self.commit(acked)?;
                    return Err(e.to_string());
                }
                Err(_) => {
                    self.commit(acked)?;
                    return Err("no ack from JetStream".into());
                }
            }
        }
        self.commit(acked)?;
        Ok(acked)
    }

    fn commit(&mut self, n: usize) -> Result<(), String> {
        self.spool.commit(n as u64).map_err(|e| e.to_string())?;
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
        self.update_gauge();
        loop {
            // Take everything queued in memory first, so the spool holds it.
            while let Ok(entry) = self.rx.try_recv() {
                self.accept(entry);
            }
            if self.spool.depth() > 0 && failures == 0 {
                match self.send_window().await {
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
                _ = tokio::time::sleep_until(next_retry), if failures > 0 => {
                    match self.send_window().await {
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
            if self.send_window().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tracing::info!(left_in_spool = self.spool.depth(), "sender stopped");
    }
}
