//! Local aggregation of what the node observes: enforcement decisions and
//! SLO outcomes are counted here and flushed once per summary period, so the
//! bus carries small summaries, never individual events or payloads.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use ritma_protocol::SloCount;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    Throttle,
    Isolate,
}

#[derive(Debug, Default, Clone)]
pub struct Period {
    pub start: Option<DateTime<Utc>>,
    pub allow: u64,
    pub deny: u64,
    pub throttle: u64,
    pub isolate: u64,
    pub dig_files: u64,
    pub storage_bytes: u64,
    pub snapshot_exports: u64,
    pub slo: BTreeMap<(String, String, String), u64>,
}

impl Period {
    pub fn decisions(&self) -> u64 {
        self.allow + self.deny + self.throttle + self.isolate
    }

    pub fn slo_counts(&self) -> Vec<SloCount> {
        self.slo
            .iter()
            .take(256)
            .map(|((component, operation, outcome), count)| SloCount {
                component: component.clone(),
                operation: operation.clone(),
                outcome: outcome.clone(),
                count: *count,
            })
            .collect()
    }
}

/// Thread-safe counters for the current period, plus running totals.
#[derive(Default)]
pub struct Recorder {
    current: Mutex<Period>,
    totals: Mutex<BTreeMap<String, u64>>,
}

impl Recorder {
    fn with<R>(&self, f: impl FnOnce(&mut Period) -> R) -> R {
        let mut p = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if p.start.is_none() {
            p.start = Some(Utc::now());
        }
        f(&mut p)
    }

    fn bump_total(&self, name: &str, by: u64) {
        let mut t = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        *t.entry(name.to_owned()).or_default() += by;
    }

    pub fn decision(&self, d: Decision) {
        self.with(|p| match d {
            Decision::Allow => p.allow += 1,
            Decision::Deny => p.deny += 1,
            Decision::Throttle => p.throttle += 1,
            Decision::Isolate => p.isolate += 1,
        });
        self.bump_total("decisions", 1);
    }

    pub fn slo(&self, component: &str, operation: &str, outcome: &str) {
        self.with(|p| {
            *p.slo
                .entry((component.into(), operation.into(), outcome.into()))
                .or_default() += 1
        });
        self.bump_total(&format!("{component}.{operation}.{outcome}"), 1);
    }

    pub fn dig_files(&self, files: u64, bytes: u64) {
        self.with(|p| {
            p.dig_files += files;
            p.storage_bytes += bytes;
        });
    }

    /// Take the current period and start a new one.
    pub fn take_period(&self) -> Period {
        let mut p = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let start = p.start;
        let mut taken = std::mem::take(&mut *p);
        taken.start = start.or_else(|| Some(Utc::now()));
        p.start = Some(Utc::now());
        taken
    }

    /// Running totals for the heartbeat's `slo_counters` (at most 64).
    pub fn totals(&self) -> BTreeMap<String, u64> {
        let t = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        t.iter()
            .take(64)
            .map(|(k, v)| (k.chars().take(64).collect(), *v))
            .collect()
    }
}
