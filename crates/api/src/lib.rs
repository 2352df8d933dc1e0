//! The controller's REST contract: every operation ([`routes`], each a type
//! implementing [`endpoint::Endpoint`]), what each takes and returns, and the
//! error body of every refusal. The controller serialises these (never a
//! database record); the console, the CLI, the simulator and the node call
//! it through one typed client (`client`, feature `client`); and the OpenAPI
//! document's paths and schemas are generated from them ([`openapi`]), so
//! none of them can drift apart.

pub mod access;
pub mod activity;
pub mod alerts;
pub mod bulk;
#[cfg(feature = "client")]
pub mod client;
pub mod connectors;
pub mod console;
pub mod endpoint;
pub mod enrollment;
pub mod error;
pub mod exports;
pub mod keys;
pub mod nodes;
pub mod openapi;
pub mod orgs;
pub mod params;
pub mod policies;
pub mod routes;
pub mod service;
pub mod tokens;
pub mod usage;
mod yaml;

pub use error::ErrorBody;

/// The pattern of every id in a path or a body (org, tenant, node).
pub use ritma_protocol::ids::ID_PATTERN;
