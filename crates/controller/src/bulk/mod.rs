//! Bulk jobs: one operator action (assign a rulepack, add or remove labels,
//! decommission) over a selection of an org's nodes, previewed first, then
//! run by a leased worker in pages, with one result per node, an audit
//! entry when it is asked for and when it ends, and its progress published
//! on `ritma.<org>.jobs` for the console.

pub mod actions;
pub mod progress;
pub mod selection;
pub mod settings;
pub mod worker;

pub use settings::BulkSettings;
