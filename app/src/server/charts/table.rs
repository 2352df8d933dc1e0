//! A chart's table view, as HTML made on the server next to its SVG: the same
//! numbers for screen readers, copying and exact values, behind a disclosure.

use super::svg::escape;
use std::fmt::Write as _;

/// One bucket of a chart as a table row, values already formatted.
pub struct Row {
    /// The bucket's start, RFC 3339 (for `<time datetime>`).
    pub at: String,
    /// The bucket as people read it.
    pub label: String,
    pub values: Vec<String>,
}

/// `<details>` with a captioned table: a "Time" column, then one per series.
pub fn table_view(id: &str, desc: &str, series: &[&str], rows: &[Row]) -> String {
    let id = escape(id);
    let mut out = format!(
        r#"<details class="chart-table"><summary>Table view</summary><div class="table-wrap"><table data-testid="chart-table-{id}"><caption class="sr-only">{}</caption><thead><tr><th scope="col">Time</th>"#,
        escape(desc)
    );
    for s in series {
        let _ = write!(out, r#"<th scope="col" class="num">{}</th>"#, escape(s));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        let _ = write!(
            out,
            r#"<tr><th scope="row" class="nowrap"><time datetime="{}">{}</time></th>"#,
            escape(&r.at),
            escape(&r.label)
        );
        for v in &r.values {
            let _ = write!(out, r#"<td class="num">{}</td>"#, escape(v));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div></details>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_escaped_and_has_a_header_per_series() {
        let html = table_view(
            "c",
            "a <desc>",
            &["allow", "deny"],
            &[Row {
                at: "2026-12-08T00:00:00Z".into(),
                label: "<x>".into(),
                values: vec!["1".into(), "2".into()],
            }],
        );
        assert!(html.contains(r#"<table data-testid="chart-table-c">"#));
        assert!(html.contains("<caption class=\"sr-only\">a &lt;desc&gt;</caption>"));
        assert!(html.contains(r#"<th scope="col" class="num">deny</th>"#));
        assert!(html.contains(r#"<time datetime="2026-12-08T00:00:00Z">&lt;x&gt;</time>"#));
        assert!(html.ends_with("</details>"));
    }
}
