//! Local processes for a development stack and for tests: a nats-server
//! rendered from `nats/server.conf`, and a private PostgreSQL instance.
//! Each is a guard that stops its process when dropped.

pub mod nats;
pub mod ports;
pub mod postgres;
pub mod tools;

pub use nats::{NatsServer, NatsServerSpec};
pub use postgres::PostgresServer;
