//! The database layer: migrations and datastore functions, named
//! resource-first (`node_get`, `org_insert`, ...). Queries are checked at run
//! time against the migrated schema by the integration tests.

pub mod access;
pub mod activity;
pub mod alerts;
pub mod audit;
pub mod bulk_jobs;
pub mod connectors;
pub mod console;
pub mod control_keys;
pub mod error;
pub mod flapping;
pub mod ingest;
pub mod keys;
pub mod nodes;
pub mod orgs;
pub mod outbox;
pub mod policies;
pub mod presence;
pub mod reconcile;
pub mod telemetry;
pub mod tokens;

use std::time::Duration;

pub use error::DbError;
use sqlx::postgres::{PgPool, PgPoolOptions};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Connect lazily: the pool opens connections on demand, so a controller can
/// start (and report not-ready) while Postgres is still down.
pub fn pool_lazy(url: &str, max_connections: u32) -> Result<PgPool, DbError> {
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(url)?)
}

pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| DbError::Migrate(e.to_string()))
}

/// True when the database answers.
pub async fn ping(pool: &PgPool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
}
