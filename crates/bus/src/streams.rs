//! The JetStream layout, created idempotently at controller start.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use ritma_protocol::subjects;

use crate::BusError;

pub const TELEMETRY_STREAM: &str = "RITMA_TELEMETRY";
pub const DEAD_LETTER_STREAM: &str = "RITMA_DEADLETTER";
pub const INGEST_CONSUMER: &str = "ritma-ingest";

/// Retries inside this window with the same `Nats-Msg-Id` are dropped by the
/// server (for publishers that send one; the node daemon does not, the
/// ingest absorbs its re-sent copies).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Every ack a consumer's clients send (`$JS.ACK.<stream>.<consumer>.>`):
/// benchmarks watch it to time publish → commit (the ingest acks after commit).
pub fn consumer_acks(stream: &str, consumer: &str) -> String {
    format!("$JS.ACK.{stream}.{consumer}.>")
}

/// The stream sequence in an ack subject (`$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>...`,
/// or the longer form with domain and account hash): a delivered message's
/// reply subject. Cheaper than the client's full `Message::info` parse, which
/// the ingest workers would do for every message only to read this number.
pub fn ack_stream_sequence(subject: &str) -> Option<u64> {
    // One pass over the subject (this runs for every ingested message): keep
    // the first tokens, count the rest, then pick by the form.
    let mut first = [""; 8];
    let mut count = 0usize;
    for token in subject.split('.') {
        if let Some(slot) = first.get_mut(count) {
            *slot = token;
        }
        count += 1;
    }
    let at = match count {
        9 => 5,
        n if n >= 11 => 7,
        _ => return None,
    };
    first[at].parse().ok()
}

pub struct StreamSettings {
    pub max_age: Duration,
    /// Must be at least 2 x batch x workers (measured: the 2.9 default of
    /// 1000 starves batched workers).
    pub max_ack_pending: i64,
    pub ack_wait: Duration,
    pub replicas: usize,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_ack_pending: 20_000,
            ack_wait: Duration::from_secs(30),
            replicas: 1,
        }
    }
}

pub async fn ensure_streams(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<consumer::PullConsumer, BusError> {
    let err = |e: &dyn std::fmt::Display| BusError::JetStream(e.to_string());
    let telemetry = js
        .get_or_create_stream(stream::Config {
            name: TELEMETRY_STREAM.into(),
            subjects: vec![subjects::all_telemetry()],
            storage: stream::StorageType::File,
            duplicate_window: DUPLICATE_WINDOW,
            max_age: settings.max_age,
            num_replicas: settings.replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| err(&e))?;
    js.get_or_create_stream(stream::Config {
        name: DEAD_LETTER_STREAM.into(),
        subjects: vec![subjects::all_dead_letters()],
        storage: stream::StorageType::File,
        max_age: Duration::from_secs(30 * 24 * 3600),
        num_replicas: settings.replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| err(&e))?;
    telemetry
        .get_or_create_consumer(
            INGEST_CONSUMER,
            consumer::pull::Config {
                durable_name: Some(INGEST_CONSUMER.into()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: settings.ack_wait,
                max_ack_pending: settings.max_ack_pending,
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::ack_stream_sequence;

    #[test]
    fn the_stream_sequence_is_read_from_both_ack_subject_forms() {
        assert_eq!(
            ack_stream_sequence(
                "$JS.ACK.RITMA_TELEMETRY.ritma-ingest.1.4242.17.1700000000000000000.3"
            ),
            Some(4242)
        );
        assert_eq!(
            ack_stream_sequence(
                "$JS.ACK.hub.ACCHASH.RITMA_TELEMETRY.ritma-ingest.2.99.18.1700000000000000000.0.tok"
            ),
            Some(99)
        );
    }

    #[test]
    fn a_subject_that_is_not_an_ack_has_no_stream_sequence() {
        assert_eq!(ack_stream_sequence("ritma.v1.org.t.node.n1.usage"), None);
        assert_eq!(ack_stream_sequence("$JS.ACK.S.C.1.notanumber.1.2.3"), None);
        assert_eq!(ack_stream_sequence(""), None);
    }
}
