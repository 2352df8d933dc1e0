//! Local processes for a development stack and for tests: a nats-server
//! rendered from `nats/server.conf` (the pinned server, see `nats_binary`), and a private PostgreSQL instance.
//! Each is a guard that stops its process when dropped.

pub mod nats;
pub mod nats_binary;
pub mod ports;
pub mod postgres;
pub mod tools;

pub use nats::{NatsServer, NatsServerSpec};
pub use nats_binary::{NatsBinary, nats_server};
pub use postgres::PostgresServer;
