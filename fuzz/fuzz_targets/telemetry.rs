//! `Telemetry::decode` for every kind (the first byte picks the kind): never
//! panics, and whatever it accepts re-encodes to something it accepts again,
//! unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ritma_protocol::{Telemetry, TelemetryKind};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let kind = TelemetryKind::ALL[usize::from(selector) % TelemetryKind::ALL.len()];
    if let Ok(message) = Telemetry::decode(kind, body) {
        assert_eq!(message.kind(), kind);
        let again = Telemetry::decode(kind, &message.encode()).expect("re-encoded message decodes");
        assert_eq!(again, message);
    }
});
