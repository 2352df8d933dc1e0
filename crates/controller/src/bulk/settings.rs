//! Bulk job settings (`RITMA_BULK_*`).

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct BulkSettings {
    /// Bulk jobs one org may have pending or running at once; one more is
    /// refused with 429 until one ends.
    #[arg(long, env = "RITMA_BULK_ACTIVE_PER_ORG", default_value_t = 2)]
    pub active_per_org: i64,
    /// Nodes acted on per page (one transaction each).
    #[arg(long, env = "RITMA_BULK_PAGE_SIZE", default_value_t = 500)]
    pub page_size: i64,
    /// A pause after each page, so a large job leaves room for everything
    /// else the database does (0: none).
    #[arg(long, env = "RITMA_BULK_PAGE_PAUSE_MS", default_value_t = 0)]
    pub page_pause_ms: u64,
    /// How long a worker's claim on a job lasts without a page committed;
    /// after that another controller (or this one, restarted) resumes it.
    #[arg(long, env = "RITMA_BULK_LEASE_SECS", default_value_t = 30)]
    pub lease_secs: u64,
}

impl Default for BulkSettings {
    fn default() -> Self {
        Self {
            active_per_org: 2,
            page_size: 500,
            page_pause_ms: 0,
            lease_secs: 30,
        }
    }
}
