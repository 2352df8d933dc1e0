//! Reads for the org-wide activity charts: decisions, DIG files and
//! enforcement decisions per time bucket, from the per-(org, tenant, hour)
//! rollups only. The work is tenants x hours of the window, whatever the
//! number of nodes.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::DbError;

/// The ranges a chart can show, each with its bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Day,
    Week,
    Month,
}

impl Range {
    pub const ALL: [Range; 3] = [Range::Day, Range::Week, Range::Month];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Range::Day => "24h",
            Range::Week => "7d",
            Range::Month => "30d",
        }
    }

    /// Bucket size: hours over a day, quarter days over a week, days over a
    /// month (24, 28 and 30 bars).
    pub fn step(self) -> TimeDelta {
        match self {
            Range::Day => TimeDelta::hours(1),
            Range::Week => TimeDelta::hours(6),
            Range::Month => TimeDelta::days(1),
        }
    }

    pub fn buckets(self) -> i32 {
        match self {
            Range::Day => 24,
            Range::Week => 28,
            Range::Month => 30,
        }
    }

    /// Hours from the first bucket's start to the last one's end.
    pub fn hours(self) -> i64 {
        self.step().num_hours() * i64::from(self.buckets())
    }

    /// Which of the buckets starting at `first` holds `at`, if any.
    pub fn index(self, first: DateTime<Utc>, at: DateTime<Utc>) -> Option<usize> {
        let offset = (at - first).num_seconds();
        let i = offset.div_euclid(self.step().num_seconds());
        (offset >= 0 && i < i64::from(self.buckets())).then_some(i as usize)
    }

    /// The buckets' starts, oldest first; the last holds `now`.
    pub fn starts(self, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let step = self.step();
        let last = now.duration_trunc(step).unwrap_or(now);
        (0..self.buckets())
            .rev()
            .map(|back| last - step * back)
            .collect()
    }
}

/// One bucket of the series; buckets with nothing rolled up are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ActivityBucket {
    pub at: DateTime<Utc>,
    pub decisions: i64,
    pub dig_files: i64,
    pub allow: i64,
    pub deny: i64,
    pub throttle: i64,
    pub isolate: i64,
}

/// A sum capped at the bigint maximum (a rollup saturates there too).
fn capped(expr: &str, name: &str) -> String {
    format!("LEAST(COALESCE({expr}, 0), 9223372036854775807)::bigint AS {name}")
}

/// The org's activity over `[from, to)` in buckets of `step_secs` seconds
/// (aligned to the Unix epoch, so day buckets are UTC days), of one tenant
/// or (None) all of them, oldest first.
pub async fn activity_series(
    pool: &PgPool,
    org_id: &str,
    tenant_id: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step_secs: i64,
) -> Result<Vec<ActivityBucket>, DbError> {
    let bucket = "to_timestamp(floor(extract(epoch FROM hour) / $5) * $5) AS at";
    let scope = "org_id = $1 AND ($2::text IS NULL OR tenant_id = $2) AND hour >= $3 AND hour < $4";
    let sql = format!(
        "WITH u AS (SELECT {bucket}, sum(decisions) AS decisions, sum(dig_files) AS dig_files
                    FROM usage_hourly WHERE {scope} GROUP BY 1),
              e AS (SELECT {bucket}, sum(allow_count) AS allow, sum(deny_count) AS deny,
                           sum(throttle_count) AS throttle, sum(isolate_count) AS isolate
                    FROM enforcement_tenant_hourly WHERE {scope} GROUP BY 1)
         SELECT COALESCE(u.at, e.at) AS at, {}, {}, {}, {}, {}, {}
         FROM u FULL JOIN e ON u.at = e.at
         ORDER BY 1",
        capped("u.decisions", "decisions"),
        capped("u.dig_files", "dig_files"),
        capped("e.allow", "allow"),
        capped("e.deny", "deny"),
        capped("e.throttle", "throttle"),
        capped("e.isolate", "isolate"),
    );
    // Reads tenants x hours rows: bounded by the range, and in time too, so an
    // org with very many tenants cannot make one chart hold a connection long.
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL statement_timeout = '5s'")
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(org_id)
        .bind(tenant_id)
        .bind(from)
        .bind(to)
        .bind(step_secs as f64)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("a timestamp")
    }

    #[test]
    fn ranges_parse_only_the_three_names() {
        assert_eq!(Range::parse("7d"), Some(Range::Week));
        for bad in ["", "1d", "24H", "30d ", "720h"] {
            assert_eq!(Range::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn buckets_are_aligned_and_end_with_now() {
        let now = at("2026-12-08T13:45:10Z");
        let day = Range::Day.starts(now);
        assert_eq!(day.len(), 24);
        assert_eq!(day[23], at("2026-12-08T13:00:00Z"));
        assert_eq!(day[0], at("2026-12-07T14:00:00Z"));
        let week = Range::Week.starts(now);
        assert_eq!((week.len(), week[27]), (28, at("2026-12-08T12:00:00Z")));
        let month = Range::Month.starts(now);
        assert_eq!((month.len(), month[29]), (30, at("2026-12-08T00:00:00Z")));
        assert_eq!(month[0], at("2026-11-09T00:00:00Z"));
        assert_eq!(Range::Week.hours(), 168);
        assert_eq!(
            Range::Week.index(week[0], at("2026-12-02T00:30:00Z")),
            Some(1)
        );
        assert_eq!(Range::Week.index(week[0], at("2026-12-01T17:59:00Z")), None);
        assert_eq!(Range::Day.index(day[0], at("2026-12-08T14:00:00Z")), None);
    }
}
