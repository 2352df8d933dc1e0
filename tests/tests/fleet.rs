//! Fleet operations end to end, on real NATS, Postgres and daemons:
//! policies and drift, connector dry runs, key governance (with the
//! `ritma_cloud` stand-in), usage and estimates (with the `billing_daemon`
//! stand-in), and the node config template.

#[path = "fleet/config_template.rs"]
mod config_template;
#[path = "fleet/connectors.rs"]
mod connectors;
#[path = "fleet/helpers.rs"]
mod helpers;
#[path = "fleet/keys.rs"]
mod keys;
#[path = "fleet/policies.rs"]
mod policies;
#[path = "fleet/usage.rs"]
mod usage;
