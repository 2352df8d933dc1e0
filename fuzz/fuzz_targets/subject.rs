//! `NodeSubject::parse_telemetry`: never panics, and what it accepts builds
//! back to the very same subject.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ritma_protocol::NodeSubject;

fuzz_target!(|data: &[u8]| {
    let Ok(subject) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((scope, kind)) = NodeSubject::parse_telemetry(subject) {
        assert_eq!(scope.telemetry(kind), subject);
    }
});
