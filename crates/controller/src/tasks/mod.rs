//! Background tasks: ingest workers, the offline reconciler, offline from
//! the broker's connection events, flapping, and the state-change publisher.
//! Each stops when the shutdown token fires; the periodic ones share one
//! shape ([`periodic::every`]).

pub mod broker_presence;
pub mod budget;
pub mod flapping;
pub mod fleet;
pub mod ingest;
pub mod outbox;
pub mod periodic;
pub mod reconciler;
pub mod rollup_cue;

use std::time::Duration;

/// Exponential backoff for a failing dependency, capped.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(6)).min(5_000))
}
