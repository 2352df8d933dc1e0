//! The wire contract between nodes, the controller and integrators.
//!
//! Subject names are built and parsed only here ([`subjects`]); message bodies
//! are typed, versioned and validated here ([`messages`]). Every other crate
//! goes through this one, so the contract documented in `docs/` (JSON Schema
//! and AsyncAPI) has one source of truth, checked by this crate's tests.

pub mod activity;
pub mod alerts;
pub mod broker_events;
pub mod command;
pub mod connectors;
pub mod contract;
pub mod diagnostics;
pub mod enrollment;
pub mod ids;
pub mod jobs;
pub mod keys;
pub mod messages;
pub mod policy;
pub mod subjects;
pub mod timestamp;
pub mod trust;
pub mod validate;

pub use command::{Command, CommandKind, CommandRefusal, SignedCommand};
pub use ids::{IdError, NodeId, OrgId, TenantId};
pub use keys::KeyStatus;
pub use messages::*;
pub use policy::{EnforcementMode, PolicyBundle};
pub use subjects::{NodeSubject, SubjectError, TelemetryKind};
pub use validate::ValidationError;

/// The schema version every message this build emits carries, and the only
/// one it accepts. A breaking change bumps it and adds a new decoder arm.
pub const SCHEMA_VERSION: u16 = 1;

/// Largest message body accepted anywhere on the bus, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
