//! `POST /api/nodes/register` bodies: JSON decoding plus validation never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ritma_protocol::enrollment::RegisterRequest;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<RegisterRequest>(data) {
        let _ = request.validate();
        let bytes = serde_json::to_vec(&request).expect("serialises");
        let again: RegisterRequest =
            serde_json::from_slice(&bytes).expect("re-encoded request decodes");
        assert_eq!(again.validate().is_ok(), request.validate().is_ok());
    }
});
