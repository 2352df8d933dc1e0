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
    ack_sequence_and_time(subject).map(|(seq, _)| seq)
}

/// The stream sequence and the broker's timestamp (nanoseconds since the
/// epoch: when JetStream stored the message) in an ack subject. Liveness is
/// judged by the timestamp, so a heartbeat the ingest commits late still
/// counts from when it arrived.
pub fn ack_sequence_and_time(subject: &str) -> Option<(u64, Option<i64>)> {
    // One pass over the subject (this runs for every ingested message): keep
    // the first tokens, count the rest, then pick by the form.
    let mut first = [""; 10];
    let mut count = 0usize;
    for token in subject.split('.') {
        if let Some(slot) = first.get_mut(count) {
            *slot = token;
        }
        count += 1;
    }
    let (seq, time) = match count {
        9 => (5, 7),
        n if n >= 11 => (7, 9),
        _ => return None,
    };
    Some((first[seq].parse().ok()?, first[time].parse().ok()))
}

/// The size and age limits of the two streams, and the consumer's settings.
///
/// Both streams discard their **oldest** messages when a limit is reached
/// (`DiscardPolicy::Old`): with `New` a full telemetry stream would refuse
/// every org's messages at once, one tenant's flood locking out the others;
/// the oldest messages of the telemetry stream are long committed in normal
/// operation. The per-subject limit bounds what one node's subject holds
/// (a node has four subjects): a node publishing faster than the ingest drains
/// loses its own oldest messages, never another node's.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    pub max_age: Duration,
    /// Telemetry stream size limit in bytes (-1: none).
    pub max_bytes: i64,
    /// Messages kept per subject, i.e. per node and kind (-1: none).
    pub max_msgs_per_subject: i64,
    pub dead_letter_max_age: Duration,
    pub dead_letter_max_bytes: i64,
    pub dead_letter_max_msgs: i64,
    /// Must be at least 2 x batch x workers (measured: the 2.9 default of
    /// 1000 starves batched workers).
    pub max_ack_pending: i64,
    pub ack_wait: Duration,
    pub replicas: usize,
}

/// Defaults, documented in README.md (operations) and deploy/README.md.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
pub const DEFAULT_MAX_BYTES: i64 = 4 << 30;
pub const DEFAULT_MAX_MSGS_PER_SUBJECT: i64 = 1_000;
pub const DEFAULT_DEAD_LETTER_MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);
pub const DEFAULT_DEAD_LETTER_MAX_BYTES: i64 = 256 << 20;
pub const DEFAULT_DEAD_LETTER_MAX_MSGS: i64 = 1_000_000;

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            max_age: DEFAULT_MAX_AGE,
            max_bytes: DEFAULT_MAX_BYTES,
            max_msgs_per_subject: DEFAULT_MAX_MSGS_PER_SUBJECT,
            dead_letter_max_age: DEFAULT_DEAD_LETTER_MAX_AGE,
            dead_letter_max_bytes: DEFAULT_DEAD_LETTER_MAX_BYTES,
            dead_letter_max_msgs: DEFAULT_DEAD_LETTER_MAX_MSGS,
            max_ack_pending: 20_000,
            ack_wait: Duration::from_secs(30),
            replicas: 1,
        }
    }
}

fn limit(v: i64) -> i64 {
    if v <= 0 { -1 } else { v }
}

impl StreamSettings {
    /// The central telemetry stream's configuration.
    pub fn telemetry(&self) -> stream::Config {
        stream::Config {
            name: TELEMETRY_STREAM.into(),
            subjects: vec![subjects::all_telemetry()],
            storage: stream::StorageType::File,
            duplicate_window: DUPLICATE_WINDOW,
            max_age: self.max_age,
            max_bytes: limit(self.max_bytes),
            max_messages_per_subject: limit(self.max_msgs_per_subject),
            discard: stream::DiscardPolicy::Old,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }

    /// The dead-letter stream's configuration.
    pub fn dead_letters(&self) -> stream::Config {
        stream::Config {
            name: DEAD_LETTER_STREAM.into(),
            subjects: vec![subjects::all_dead_letters()],
            storage: stream::StorageType::File,
            max_age: self.dead_letter_max_age,
            max_bytes: limit(self.dead_letter_max_bytes),
            max_messages: limit(self.dead_letter_max_msgs),
            discard: stream::DiscardPolicy::Old,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }
}

/// Create the streams, or bring existing ones to these settings (an upgrade
/// or a changed limit takes effect at the next controller start), then the
/// ingest's durable consumer.
pub async fn ensure_streams(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<consumer::PullConsumer, BusError> {
    let err = |e: &dyn std::fmt::Display| BusError::JetStream(e.to_string());
    for config in [settings.telemetry(), settings.dead_letters()] {
        let name = config.name.clone();
        js.create_or_update_stream(config)
            .await
            .map_err(|e| BusError::JetStream(format!("stream {name}: {e}")))?;
    }
    let telemetry = js.get_stream(TELEMETRY_STREAM).await.map_err(|e| err(&e))?;
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

/// The telemetry stream and the ingest consumer, for [`ingest_watermark`].
pub async fn ingest_consumer(
    js: &jetstream::Context,
) -> Result<(stream::Stream<()>, consumer::PullConsumer), BusError> {
    let err = |e: &dyn std::fmt::Display| BusError::JetStream(e.to_string());
    let stream = js
        .get_stream_no_info(TELEMETRY_STREAM)
        .await
        .map_err(|e| err(&e))?;
    let consumer = stream
        .get_consumer(INGEST_CONSUMER)
        .await
        .map_err(|e| err(&e))?;
    Ok((stream, consumer))
}

/// How far the ingest has got: the broker's timestamp (nanoseconds since
/// the epoch) of the oldest message on the telemetry stream the ingest
/// consumer has not acked yet (every message stored before it is
/// committed), or `None` when nothing is pending (then everything stored
/// before the question was asked is). One request when nothing is pending,
/// two otherwise.
pub async fn ingest_watermark(
    stream: &stream::Stream<()>,
    consumer: &mut consumer::PullConsumer,
) -> Result<Option<i128>, BusError> {
    let err = |e: &dyn std::fmt::Display| BusError::JetStream(e.to_string());
    let info = consumer.info().await.map_err(|e| err(&e))?;
    if info.num_pending == 0 && info.num_ack_pending == 0 {
        return Ok(None);
    }
    // Everything up to the ack floor is acked; the next stored message at
    // or after it (some may have been deleted) is the oldest not acked.
    let oldest = info.ack_floor.stream_sequence + 1;
    let m = stream
        .raw_message_builder()
        .sequence(oldest)
        .next_by_subject(">")
        .send()
        .await
        .map_err(|e| err(&e))?;
    Ok(Some(m.time.unix_timestamp_nanos()))
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
    fn the_broker_timestamp_is_read_from_both_ack_subject_forms() {
        assert_eq!(
            super::ack_sequence_and_time(
                "$JS.ACK.RITMA_TELEMETRY.ritma-ingest.1.4242.17.1700000000000000000.3"
            ),
            Some((4242, Some(1_700_000_000_000_000_000)))
        );
        assert_eq!(
            super::ack_sequence_and_time(
                "$JS.ACK.hub.ACCHASH.RITMA_TELEMETRY.ritma-ingest.2.99.18.1700000000000000001.0.tok"
            ),
            Some((99, Some(1_700_000_000_000_000_001)))
        );
    }

    #[test]
    fn limits_of_zero_mean_none_and_both_streams_discard_their_oldest() {
        let s = super::StreamSettings {
            max_bytes: 0,
            ..Default::default()
        };
        let t = s.telemetry();
        assert_eq!(t.max_bytes, -1);
        assert_eq!(
            t.max_messages_per_subject,
            super::DEFAULT_MAX_MSGS_PER_SUBJECT
        );
        assert_eq!(t.discard, async_nats::jetstream::stream::DiscardPolicy::Old);
        let d = s.dead_letters();
        assert_eq!(d.max_bytes, super::DEFAULT_DEAD_LETTER_MAX_BYTES);
        assert_eq!(d.discard, async_nats::jetstream::stream::DiscardPolicy::Old);
    }

    #[test]
    fn a_subject_that_is_not_an_ack_has_no_stream_sequence() {
        assert_eq!(ack_stream_sequence("ritma.v1.org.t.node.n1.usage"), None);
        assert_eq!(ack_stream_sequence("$JS.ACK.S.C.1.notanumber.1.2.3"), None);
        assert_eq!(ack_stream_sequence(""), None);
    }
}
