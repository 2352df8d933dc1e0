//! Charts as they cross to the browser: the server draws the SVG (no drawing code in
//! the WASM bundle) and sends it with the same data as rows for a table view.

use serde::{Deserialize, Serialize};

/// The ranges a time chart offers, as the controller names them, with their labels.
pub const RANGES: [(&str, &str); 3] = [("24h", "24 hours"), ("7d", "7 days"), ("30d", "30 days")];

/// `range` when it is one of [`RANGES`], else the first.
pub fn range_or_default(range: Option<&str>) -> &'static str {
    RANGES
        .iter()
        .map(|(r, _)| *r)
        .find(|r| Some(*r) == range)
        .unwrap_or(RANGES[0].0)
}

/// One chart, finished.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    /// Stable id (DOM ids and test hooks derive from it).
    pub id: String,
    pub title: String,
    /// What the chart shows, in words (its SVG `<desc>` too).
    pub desc: String,
    /// `<svg role="img" aria-labelledby=…>` markup, escaped by the server.
    pub svg: String,
    /// Header of the table view: the bucket column, then one per series.
    pub columns: Vec<String>,
    pub rows: Vec<ChartRow>,
}

/// One bucket of a chart as a table row, values already formatted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChartRow {
    /// The bucket's start, RFC 3339 (for `<time datetime>`).
    pub at: String,
    /// The bucket as people read it.
    pub label: String,
    pub values: Vec<String>,
}

/// The dashboard's activity charts for a range and an optional tenant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ActivityCharts {
    pub range: String,
    pub tenant: Option<String>,
    pub charts: Vec<Chart>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_ranges_fall_back_to_the_first() {
        assert_eq!(range_or_default(Some("7d")), "7d");
        assert_eq!(range_or_default(Some("1y")), "24h");
        assert_eq!(range_or_default(None), "24h");
    }
}
