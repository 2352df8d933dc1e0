//! The dashboard's activity charts (org or tenant, from `GET /api/orgs/{org}/activity`)
//! and a node's enforcement timeline (from its hourly events, summed into the range's
//! buckets).

use super::{Buckets, ChartData, SeriesData, chart};
use crate::model::fleet::EnforcementCounts;
use crate::model::human_count;
use chrono::{DateTime, Utc};
use ritma_api::activity::ActivityBucket;
use ritma_api::usage::EnforcementBucket;
use ritma_db::activity::Range;

/// The page model's counts of the contract's.
fn counts(c: &ritma_api::usage::EnforcementCounts) -> EnforcementCounts {
    EnforcementCounts {
        allow: c.allow,
        deny: c.deny,
        throttle: c.throttle,
        isolate: c.isolate,
    }
}

fn label_of(range: Range) -> &'static str {
    match range {
        Range::Day => "the last 24 hours",
        Range::Week => "the last 7 days",
        Range::Month => "the last 30 days",
    }
}

fn step_of(range: Range) -> &'static str {
    match range {
        Range::Day => "per hour",
        Range::Week => "per 6 hours",
        Range::Month => "per day (UTC)",
    }
}

/// Axis and table labels of the range's buckets.
pub fn buckets(range: Range, starts: &[DateTime<Utc>]) -> Buckets {
    let axis = match range {
        Range::Day => "%H:00",
        Range::Week => "%a %H:00",
        Range::Month => "%b %d",
    };
    let long = match range {
        Range::Month => "%Y-%m-%d",
        _ => "%Y-%m-%d %H:00 UTC",
    };
    Buckets {
        at: starts.iter().map(|t| t.to_rfc3339()).collect(),
        axis: starts.iter().map(|t| t.format(axis).to_string()).collect(),
        long: starts.iter().map(|t| t.format(long).to_string()).collect(),
    }
}

/// The four enforcement series, stacked in this order.
fn decision_series(counts: &[EnforcementCounts]) -> Vec<SeriesData> {
    let of = |f: fn(&EnforcementCounts) -> i64| counts.iter().map(f).collect::<Vec<_>>();
    vec![
        SeriesData {
            name: "allow",
            class: "allow",
            values: of(|d| d.allow),
        },
        SeriesData {
            name: "deny",
            class: "deny",
            values: of(|d| d.deny),
        },
        SeriesData {
            name: "throttle",
            class: "throttle",
            values: of(|d| d.throttle),
        },
        SeriesData {
            name: "isolate",
            class: "isolate",
            values: of(|d| d.isolate),
        },
    ]
}

/// Decisions, DIG files and enforcement by type, as the dashboard shows them.
pub fn activity_charts(
    range: Range,
    tenant: Option<&str>,
    series: &[ActivityBucket],
) -> Vec<ChartData> {
    let starts: Vec<DateTime<Utc>> = series.iter().map(|b| b.at).collect();
    let b = buckets(range, &starts);
    let who = match tenant {
        Some(t) => format!("tenant {t}"),
        None => "all tenants".to_owned(),
    };
    let scope = format!("{} over {}, {who}", step_of(range), label_of(range));
    let one = |name: &'static str, class: &'static str, f: fn(&ActivityBucket) -> i64| {
        vec![SeriesData {
            name,
            class,
            values: series.iter().map(f).collect(),
        }]
    };
    let enforcement: Vec<EnforcementCounts> =
        series.iter().map(|b| counts(&b.enforcement)).collect();
    vec![
        chart(
            "activity-decisions",
            "Decisions",
            &scope,
            &b,
            one("decisions", "decisions", |b| b.decisions),
            human_count,
        ),
        chart(
            "activity-dig-files",
            "DIG files",
            &scope,
            &b,
            one("DIG files", "dig-files", |b| b.dig_files),
            human_count,
        ),
        chart(
            "activity-enforcement",
            "Enforcement events by type",
            &scope,
            &b,
            decision_series(&enforcement),
            human_count,
        ),
    ]
}

/// A node's enforcement decisions over `range`, its hourly buckets summed into the
/// range's buckets (hours before the range are left out).
pub fn node_events_chart(
    range: Range,
    now: DateTime<Utc>,
    hours: &[EnforcementBucket],
) -> ChartData {
    let starts = range.starts(now);
    let mut sums = vec![EnforcementCounts::default(); starts.len()];
    if let Some(&first) = starts.first() {
        for h in hours {
            if let Some(s) = range.index(first, h.hour).and_then(|i| sums.get_mut(i)) {
                s.allow = s.allow.saturating_add(h.counts.allow);
                s.deny = s.deny.saturating_add(h.counts.deny);
                s.throttle = s.throttle.saturating_add(h.counts.throttle);
                s.isolate = s.isolate.saturating_add(h.counts.isolate);
            }
        }
    }
    chart(
        "node-events",
        "Enforcement events",
        &format!("of this node {} over {}", step_of(range), label_of(range)),
        &buckets(range, &starts),
        decision_series(&sums),
        human_count,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("a timestamp")
    }

    #[test]
    fn node_hours_are_summed_into_days() {
        let now = at("2026-12-08T13:45:00Z");
        let hour = |h: &str, allow| EnforcementBucket {
            hour: at(h),
            counts: ritma_api::usage::EnforcementCounts {
                allow,
                ..Default::default()
            },
        };
        let hours = [
            hour("2026-11-01T00:00:00Z", 1000), // before the range
            hour("2026-12-07T01:00:00Z", 2),
            hour("2026-12-07T23:00:00Z", 3),
            hour("2026-12-08T13:00:00Z", 4),
        ];
        let c = node_events_chart(Range::Month, now, &hours);
        assert_eq!(c.rows.len(), 30);
        assert_eq!(c.rows[28].label, "2026-12-07");
        assert_eq!(c.rows[28].values[0], "5");
        assert_eq!(c.rows[29].values[0], "4");
        assert!(c.desc.contains("allow 9,"), "{}", c.desc);
    }

    #[test]
    fn the_dashboard_has_three_charts_named_for_their_scope() {
        let series = [ActivityBucket {
            at: at("2026-12-08T12:00:00Z"),
            decisions: 7,
            dig_files: 1,
            enforcement: ritma_api::usage::EnforcementCounts {
                deny: 2,
                ..Default::default()
            },
        }];
        let c = activity_charts(Range::Week, Some("prod"), &series);
        assert_eq!(c.len(), 3);
        assert_eq!(c[2].series, ["allow", "deny", "throttle", "isolate"]);
        assert_eq!(c[0].rows[0].label, "2026-12-08 12:00 UTC");
        assert!(
            c[0].desc
                .starts_with("Decisions per 6 hours over the last 7 days, tenant prod."),
            "{}",
            c[0].desc
        );
    }
}
