//! The usage page's charts: each metric by UTC day over the month shown.

use super::{Buckets, ChartData, SeriesData, chart};
use crate::model::fleet::{UsageMetrics, UsageSummary};
use crate::model::{human_bytes, human_count};
use chrono::{Datelike, Months, NaiveDate};

/// The days of `period` (`YYYY-MM`), first to last; none for a malformed period.
fn days_of(period: &str) -> Vec<NaiveDate> {
    let Ok(first) = NaiveDate::parse_from_str(&format!("{period}-01"), "%Y-%m-%d") else {
        return Vec::new();
    };
    let next = first.checked_add_months(Months::new(1));
    first
        .iter_days()
        .take_while(|d| Some(*d) != next && d.month() == first.month())
        .collect()
}

/// The metrics of every day of the month, zero on days without a report.
fn per_day(u: &UsageSummary, days: &[NaiveDate]) -> Vec<UsageMetrics> {
    days.iter()
        .map(|d| {
            let key = d.format("%Y-%m-%d").to_string();
            u.daily
                .iter()
                .find(|x| x.day.starts_with(&key))
                .map(|x| x.m.clone())
                .unwrap_or_default()
        })
        .collect()
}

/// One chart per metric.
pub fn usage_charts(u: &UsageSummary) -> Vec<ChartData> {
    let days = days_of(&u.period);
    let metrics = per_day(u, &days);
    let buckets = Buckets {
        at: days
            .iter()
            .map(|d| format!("{}T00:00:00Z", d.format("%Y-%m-%d")))
            .collect(),
        axis: days.iter().map(|d| d.format("%b %d").to_string()).collect(),
        long: days
            .iter()
            .map(|d| d.format("%Y-%m-%d").to_string())
            .collect(),
    };
    let scope = format!("per day (UTC) in {}", u.period);
    METRICS
        .iter()
        .map(|m| {
            let series = SeriesData {
                name: m.name,
                class: m.class,
                values: metrics.iter().map(m.value).collect(),
            };
            chart(m.id, m.title, &scope, &buckets, vec![series], m.format)
        })
        .collect()
}

/// A metric's chart: ids, words, colour class, value and how it reads.
struct Metric {
    id: &'static str,
    title: &'static str,
    name: &'static str,
    class: &'static str,
    value: fn(&UsageMetrics) -> i64,
    format: fn(i64) -> String,
}

const METRICS: [Metric; 4] = [
    Metric {
        id: "usage-decisions",
        title: "Decisions",
        name: "decisions",
        class: "decisions",
        value: |m| m.decisions,
        format: human_count,
    },
    Metric {
        id: "usage-dig-files",
        title: "DIG files",
        name: "DIG files",
        class: "dig-files",
        value: |m| m.dig_files,
        format: human_count,
    },
    Metric {
        id: "usage-storage",
        title: "Storage",
        name: "storage",
        class: "storage",
        value: |m| m.storage_bytes,
        format: human_bytes,
    },
    Metric {
        id: "usage-snapshot-exports",
        title: "Snapshot exports",
        name: "snapshot exports",
        class: "snapshot-exports",
        value: |m| m.snapshot_exports,
        format: human_count,
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fleet::DailyUsage;

    #[test]
    fn every_day_of_the_month_is_a_bucket() {
        assert_eq!(days_of("2026-02").len(), 28);
        assert_eq!(days_of("2028-02").len(), 29);
        assert_eq!(days_of("2026-12").len(), 31);
        assert!(days_of("2026-13").is_empty());
        let u = UsageSummary {
            period: "2026-12".into(),
            totals: UsageMetrics::default(),
            tenants: vec![],
            daily: vec![DailyUsage {
                day: "2026-12-03T00:00:00Z".into(),
                m: UsageMetrics {
                    decisions: 1500,
                    storage_bytes: 2048,
                    ..UsageMetrics::default()
                },
            }],
        };
        let charts = usage_charts(&u);
        assert_eq!(charts.len(), 4);
        assert_eq!(charts[0].rows.len(), 31);
        assert_eq!(charts[0].rows[2].values, ["1,500"]);
        assert_eq!(charts[0].rows[1].values, ["0"]);
        assert_eq!(charts[2].rows[2].values, ["2.0 KiB"]);
    }
}
