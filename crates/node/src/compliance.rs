//! The compliance index: one JSON object per line, appended to the file
//! named by `UTLD_COMPLIANCE_INDEX` (when set) for local evidence tooling.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use chrono::Utc;
use serde_json::{Value, json};

#[derive(Default)]
pub struct ComplianceIndex {
    path: Option<PathBuf>,
    lock: Mutex<()>,
}

impl ComplianceIndex {
    pub fn new(path: Option<PathBuf>) -> Self {
        Self {
            path,
            lock: Mutex::new(()),
        }
    }

    /// Append `{"ts", "node_id", "event", ...fields}`. A write failure is
    /// logged, never fatal: the bus remains the system of record.
    pub fn append(&self, node_id: &str, event: &str, fields: Value) {
        let Some(path) = &self.path else {
            return;
        };
        let mut line = json!({ "ts": Utc::now(), "node_id": node_id, "event": event });
        if let (Some(obj), Value::Object(extra)) = (line.as_object_mut(), fields) {
            obj.extend(extra);
        }
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            tracing::warn!(error = %e, path = %path.display(), "compliance index not written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_one_json_object_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.jsonl");
        let index = ComplianceIndex::new(Some(path.clone()));
        index.append("n1", "policy_applied", json!({ "version": "base@1" }));
        index.append("n1", "enforcement_summary", json!({ "deny": 3 }));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "policy_applied");
        assert_eq!(lines[0]["version"], "base@1");
        assert_eq!(lines[1]["deny"], 3);
        assert_eq!(lines[1]["node_id"], "n1");
        // Off when unset: nothing written, nothing fails.
        ComplianceIndex::new(None).append("n1", "x", json!({}));
    }
}
