//! Bulk jobs as the console shows them: the preview, the job, and its live
//! progress (event `job` on `/live`, made from `ritma.<org>.jobs`).

use serde::{Deserialize, Serialize};

/// The actions a bulk job can take, as (value, label) for the form.
pub const ACTIONS: [(&str, &str); 4] = [
    ("add_labels", "Add labels"),
    ("remove_labels", "Remove labels"),
    ("assign_rulepack", "Assign rulepack"),
    ("decommission", "Decommission"),
];

/// Which nodes: the ticked rows, or every node matching the list's filter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum BulkSelection {
    Ids(Vec<String>),
    /// The inventory's filter (the node list's query parameters).
    Filter(Vec<(String, String)>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleNode {
    pub id: String,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub tenant_id: String,
    #[serde(default)]
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BulkPreview {
    pub count: i64,
    #[serde(default)]
    pub unknown_ids: i64,
    #[serde(default)]
    pub sample: Vec<SampleNode>,
    /// Made by the console server for this preview: starting the job with
    /// it twice (a double click, a retried request) starts it once.
    #[serde(default)]
    pub idempotency_key: String,
}

/// A job's counts, from the API or pushed live.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveJob {
    #[serde(alias = "id")]
    pub job_id: String,
    pub action: String,
    /// `pending`, `running`, `done` or `failed`.
    pub state: String,
    pub total: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
}

impl LiveJob {
    pub fn finished(&self) -> bool {
        self.state == "done" || self.state == "failed"
    }

    /// Nodes with an outcome so far.
    pub fn handled(&self) -> i64 {
        self.succeeded + self.failed + self.skipped
    }

    /// Progress in percent (0-100).
    pub fn percent(&self) -> i64 {
        if self.total <= 0 {
            return if self.finished() { 100 } else { 0 };
        }
        (self.handled() * 100 / self.total).clamp(0, 100)
    }

    /// Counts only move forward: an older message never undoes a newer one.
    pub fn newer_than(&self, old: &LiveJob) -> bool {
        (self.finished() && !old.finished()) || (!old.finished() && self.handled() >= old.handled())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: &str, done: i64) -> LiveJob {
        LiveJob {
            job_id: "j".into(),
            action: "add_labels".into(),
            state: state.into(),
            total: 10,
            succeeded: done,
            failed: 0,
            skipped: 0,
        }
    }

    #[test]
    fn progress_only_moves_forward() {
        assert_eq!(job("running", 5).percent(), 50);
        assert!(job("running", 6).newer_than(&job("running", 5)));
        assert!(!job("running", 4).newer_than(&job("running", 5)));
        assert!(job("done", 10).newer_than(&job("running", 9)));
        assert!(!job("running", 10).newer_than(&job("done", 10)));
    }
}
