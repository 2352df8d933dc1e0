//! Charts as they cross to the browser: finished HTML, drawn on the server.

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

/// One chart, finished on the server: its caption, the SVG (`role="img"`, labelled by
/// its `<title>` and `<desc>`) and the same numbers as a table behind a disclosure, as
/// escaped HTML. The browser only inserts it, so no drawing or table code ships in the
/// WASM bundle.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    /// Stable id (DOM ids and test hooks derive from it).
    pub id: String,
    pub html: String,
}

/// Charts over one range, for one tenant or (None) all of them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChartSet {
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
