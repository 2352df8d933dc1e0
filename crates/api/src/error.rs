//! The body of every refusal.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `{"error": code, "message": text}`: a stable machine code
/// (`invalid_request`, `not_found`, `rekey_too_soon`, ...) and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}
