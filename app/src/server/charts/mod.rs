//! The console's charts, built on the server from the controller's rollups: the SVG
//! (`svg`) and the same numbers as a table view (`table`), finished as HTML, so the
//! browser only inserts markup. Dashboard and node series in `activity`, the month's
//! usage in `usage`.

pub mod activity;
mod svg;
mod table;
pub mod usage;

use crate::model::chart::Chart;
use svg::{BarChart, Series, escape};
pub use table::Row;

/// One series of a chart before drawing: name, colour class, values per bucket.
pub struct SeriesData {
    pub name: &'static str,
    pub class: &'static str,
    pub values: Vec<i64>,
}

/// The buckets of a chart: an RFC 3339 start, a short axis label and a long
/// table label each.
pub struct Buckets {
    pub at: Vec<String>,
    pub axis: Vec<String>,
    pub long: Vec<String>,
}

/// A chart drawn, with what its table view shows.
pub struct ChartData {
    pub id: String,
    pub title: String,
    pub desc: String,
    /// The series' names, in stacking order (the table's value columns).
    pub series: Vec<String>,
    pub rows: Vec<Row>,
    pub svg: String,
}

impl ChartData {
    /// The HTML the page inserts: caption, SVG, table view.
    pub fn finish(self) -> Chart {
        let names: Vec<&str> = self.series.iter().map(String::as_str).collect();
        let html = format!(
            r#"<figcaption id="{}-caption"><h3>{}</h3></figcaption><div class="chart-plot">{}</div>{}"#,
            escape(&self.id),
            escape(&self.title),
            self.svg,
            table::table_view(&self.id, &self.desc, &names, &self.rows)
        );
        Chart { id: self.id, html }
    }
}

/// Draws `series` over `buckets` and pairs it with its table view. `scope` says
/// what the chart covers, in words ("per hour over the last 24 hours, all
/// tenants"); `format` how values read.
pub fn chart(
    id: &str,
    title: &str,
    scope: &str,
    buckets: &Buckets,
    series: Vec<SeriesData>,
    format: fn(i64) -> String,
) -> ChartData {
    let desc = describe(title, scope, buckets, &series, format);
    let rows = buckets
        .at
        .iter()
        .zip(&buckets.long)
        .enumerate()
        .map(|(i, (at, label))| Row {
            at: at.clone(),
            label: label.clone(),
            values: series
                .iter()
                .map(|s| format(s.values.get(i).copied().unwrap_or(0)))
                .collect(),
        })
        .collect();
    let svg = svg::bar_chart(&BarChart {
        id: &format!("{id}-svg"),
        title,
        desc: &desc,
        labels: buckets.axis.clone(),
        series: series
            .iter()
            .map(|s| Series {
                name: s.name,
                class: s.class,
                values: s.values.clone(),
            })
            .collect(),
        format,
    });
    ChartData {
        id: id.to_owned(),
        title: title.to_owned(),
        desc,
        series: series.iter().map(|s| s.name.to_owned()).collect(),
        rows,
        svg,
    }
}

/// The chart in a sentence or two: totals per series and the busiest bucket.
fn describe(
    title: &str,
    scope: &str,
    buckets: &Buckets,
    series: &[SeriesData],
    format: fn(i64) -> String,
) -> String {
    let sum = |s: &SeriesData| s.values.iter().fold(0i64, |a, v| a.saturating_add(*v));
    let totals: Vec<String> = series
        .iter()
        .map(|s| format!("{} {}", s.name, format(sum(s))))
        .collect();
    let stacked = |i: usize| {
        series.iter().fold(0i64, |a, s| {
            a.saturating_add(s.values.get(i).copied().unwrap_or(0))
        })
    };
    let peak = (0..buckets.long.len())
        .map(|i| (stacked(i), i))
        .max_by_key(|(v, i)| (*v, std::cmp::Reverse(*i)))
        .filter(|(v, _)| *v > 0);
    let mut text = format!("{title} {scope}. Totals: {}.", totals.join(", "));
    match peak {
        Some((v, i)) => text.push_str(&format!(
            " Highest: {} at {}.",
            format(v),
            buckets.long.get(i).map(String::as_str).unwrap_or("")
        )),
        None => text.push_str(" Nothing was reported in this range."),
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(n: i64) -> String {
        crate::model::human_count(n)
    }

    #[test]
    fn a_chart_carries_its_table_and_description() {
        let buckets = Buckets {
            at: vec!["2026-12-08T00:00:00Z".into(), "2026-12-08T01:00:00Z".into()],
            axis: vec!["00:00".into(), "01:00".into()],
            long: vec!["2026-12-08 00:00".into(), "2026-12-08 01:00".into()],
        };
        let c = chart(
            "events",
            "Enforcement decisions",
            "per hour over the last 24 hours",
            &buckets,
            vec![
                SeriesData {
                    name: "allow",
                    class: "allow",
                    values: vec![1200, 3],
                },
                SeriesData {
                    name: "deny",
                    class: "deny",
                    values: vec![0, 4],
                },
            ],
            count,
        );
        assert_eq!(c.series, ["allow", "deny"]);
        assert_eq!(c.rows[0].values, ["1,200", "0"]);
        assert_eq!(c.rows[1].label, "2026-12-08 01:00");
        assert_eq!(
            c.desc,
            "Enforcement decisions per hour over the last 24 hours. Totals: allow 1,203, deny 4. \
             Highest: 1,200 at 2026-12-08 00:00."
        );
        assert!(c.svg.contains(r#"id="events-svg""#));
        let html = c.finish().html;
        assert!(
            html.starts_with(r#"<figcaption id="events-caption"><h3>Enforcement decisions</h3>"#)
        );
        assert!(html.contains(r#"<table data-testid="chart-table-events">"#));
        let empty = describe("X", "y", &buckets, &[], count);
        assert!(
            empty.ends_with("Nothing was reported in this range."),
            "{empty}"
        );
    }
}
