//! The node's command decoder (`Command` JSON): never panics; round trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ritma_protocol::Command;

fuzz_target!(|data: &[u8]| {
    if let Ok(command) = serde_json::from_slice::<Command>(data) {
        let bytes = serde_json::to_vec(&command).expect("serialises");
        let again: Command = serde_json::from_slice(&bytes).expect("re-encoded command decodes");
        assert_eq!(again, command);
    }
});
