//! The bus layer: NATS operator-mode credentials (JWT minting over `nkeys`),
//! connections, and the JetStream streams and consumers the product uses.
//!
//! NATS JWTs are small (a fixed header, JSON claims, an ed25519 signature,
//! base64url), so this crate owns that code rather than depend on a JWT crate;
//! the integration tests prove every claim shape against a real nats-server.

pub mod accounts;
pub mod claims_push;
pub mod connect;
pub mod creds;
pub mod error;
pub mod jwt;
pub mod keys;
pub mod streams;

pub use error::BusError;
pub use keys::BusKeys;
