//! The integrators' state-change decoder (`StateChange` JSON): never panics; round trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ritma_protocol::StateChange;

fuzz_target!(|data: &[u8]| {
    if let Ok(change) = serde_json::from_slice::<StateChange>(data) {
        let bytes = serde_json::to_vec(&change).expect("serialises");
        let again: StateChange =
            serde_json::from_slice(&bytes).expect("re-encoded state change decodes");
        assert_eq!(again, change);
    }
});
