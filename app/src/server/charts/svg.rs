//! Stacked bar charts as SVG markup, drawn on the server: no drawing code ships in
//! the WASM bundle. Colours come from the console's stylesheet (`.series-*`
//! classes), so light and dark themes apply; the markup carries its own `<title>`
//! and `<desc>` for screen readers.

use std::fmt::Write as _;

/// Drawing area, in SVG user units (the element scales to its container).
const WIDTH: i64 = 720;
const HEIGHT: i64 = 240;
const LEFT: i64 = 64;
const RIGHT: i64 = 12;
const TOP: i64 = 30;
const BOTTOM: i64 = 28;
/// Labels under the x axis, at most.
const MAX_X_LABELS: usize = 8;
/// Horizontal grid lines above zero.
const GRID_LINES: i64 = 4;

/// One stacked series: a name for the legend and a CSS class for its colour.
pub struct Series<'a> {
    pub name: &'a str,
    pub class: &'a str,
    pub values: Vec<i64>,
}

/// What to draw: buckets on the x axis, the series stacked per bucket.
pub struct BarChart<'a> {
    /// DOM id of the `<svg>`; its title and description ids derive from it.
    pub id: &'a str,
    pub title: &'a str,
    pub desc: &'a str,
    /// One short label per bucket (only some are drawn under the axis).
    pub labels: Vec<String>,
    pub series: Vec<Series<'a>>,
    /// How y-axis values read (counts, bytes).
    pub format: fn(i64) -> String,
}

/// Text for XML character data and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The smallest 1, 2 or 5 x 10^k that is at least `max` (at least 1): round
/// grid values.
fn nice_ceiling(max: i64) -> i64 {
    let mut step = 1i64;
    loop {
        for m in [1, 2, 5] {
            let candidate = step.saturating_mul(m);
            if candidate >= max || candidate == i64::MAX {
                return candidate.max(1);
            }
        }
        step = step.saturating_mul(10);
    }
}

/// Each bucket's stacked total (saturating).
fn stack_totals(chart: &BarChart) -> Vec<i64> {
    (0..chart.labels.len())
        .map(|i| {
            chart
                .series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0).max(0))
                .fold(0i64, i64::saturating_add)
        })
        .collect()
}

/// `value` of `ceiling` as a height in units of `plot_h` (integer maths: no
/// overflow for counts near i64::MAX).
fn scaled(value: i64, ceiling: i64, plot_h: i64) -> i64 {
    (i128::from(value) * i128::from(plot_h) / i128::from(ceiling.max(1))) as i64
}

/// The chart as one `<svg>` element.
pub fn bar_chart(chart: &BarChart) -> String {
    let id = escape(chart.id);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let base = TOP + plot_h;
    let totals = stack_totals(chart);
    // a round grid step, so every grid line is a round integer
    let max = totals.iter().copied().max().unwrap_or(0);
    let grid_step = nice_ceiling(max.div_euclid(GRID_LINES) + i64::from(max % GRID_LINES != 0));
    let ceiling = grid_step.saturating_mul(GRID_LINES);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg id="{id}" class="chart-svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{id}-title {id}-desc" xmlns="http://www.w3.org/2000/svg"><title id="{id}-title">{}</title><desc id="{id}-desc">{}</desc>"#,
        escape(chart.title),
        escape(chart.desc),
    );
    // grid and y labels
    for g in 0..=GRID_LINES {
        let value = grid_step.saturating_mul(g);
        let y = base - scaled(value, ceiling, plot_h);
        let _ = write!(
            out,
            r#"<line class="chart-grid" x1="{LEFT}" x2="{}" y1="{y}" y2="{y}"/><text class="chart-axis" x="{}" y="{}" text-anchor="end">{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 6,
            y + 4,
            escape(&(chart.format)(value)),
        );
    }
    let n = chart.labels.len().max(1) as i64;
    let band = plot_w / n;
    let bar_w = (band * 4 / 5).max(1);
    for (i, label) in chart.labels.iter().enumerate() {
        let x = LEFT + band * i as i64 + (band - bar_w) / 2;
        let mut y = base;
        let _ = write!(out, r#"<g class="chart-bucket" data-bucket="{i}">"#);
        for s in &chart.series {
            let v = s.values.get(i).copied().unwrap_or(0).max(0);
            if v == 0 {
                continue;
            }
            let h = scaled(v, ceiling, plot_h).max(1);
            y -= h;
            let _ = write!(
                out,
                r#"<rect class="series-{}" x="{x}" y="{y}" width="{bar_w}" height="{h}"><title>{}: {} {}</title></rect>"#,
                escape(s.class),
                escape(label),
                escape(&(chart.format)(v)),
                escape(s.name),
            );
        }
        out.push_str("</g>");
    }
    // x labels, evenly thinned
    let every = chart.labels.len().div_ceil(MAX_X_LABELS).max(1);
    for (i, label) in chart.labels.iter().enumerate().step_by(every) {
        let x = LEFT + band * i as i64 + band / 2;
        let _ = write!(
            out,
            r#"<text class="chart-axis" x="{x}" y="{}" text-anchor="middle">{}</text>"#,
            HEIGHT - 8,
            escape(label),
        );
    }
    // legend, top left
    let mut x = LEFT;
    for s in &chart.series {
        let _ = write!(
            out,
            r#"<rect class="series-{}" x="{x}" y="8" width="12" height="12" rx="2"/><text class="chart-legend" x="{}" y="18">{}</text>"#,
            escape(s.class),
            x + 16,
            escape(s.name),
        );
        x += 16 + 8 * s.name.chars().count() as i64 + 18;
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(n: i64) -> String {
        n.to_string()
    }

    fn chart<'a>(title: &'a str, series: Vec<Series<'a>>, buckets: usize) -> BarChart<'a> {
        BarChart {
            id: "c1",
            title,
            desc: "what it shows",
            labels: (0..buckets).map(|i| format!("{i:02}:00")).collect(),
            series,
            format: count,
        }
    }

    #[test]
    fn the_markup_is_labelled_and_escaped() {
        let svg = bar_chart(&chart(
            "Tenant <b>&\"x\"",
            vec![Series {
                name: "allow",
                class: "allow",
                values: vec![1, 2],
            }],
            2,
        ));
        assert!(
            svg.starts_with(r#"<svg id="c1" class="chart-svg""#),
            "{svg}"
        );
        assert!(svg.contains(r#"role="img" aria-labelledby="c1-title c1-desc""#));
        assert!(svg.contains(r#"<title id="c1-title">Tenant &lt;b&gt;&amp;&quot;x&quot;</title>"#));
        assert!(svg.contains(r#"<desc id="c1-desc">what it shows</desc>"#));
        assert!(!svg.contains("<b>"));
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn series_stack_within_the_plot() {
        let svg = bar_chart(&chart(
            "t",
            vec![
                Series {
                    name: "allow",
                    class: "allow",
                    values: vec![3, 0],
                },
                Series {
                    name: "deny",
                    class: "deny",
                    values: vec![2, 0],
                },
            ],
            2,
        ));
        // grid step 2, ceiling 8: allow is 3/8 of the plot, deny sits on top of it
        let plot_h = HEIGHT - TOP - BOTTOM;
        let allow_h = plot_h * 3 / 8;
        assert!(svg.contains(">8</text>"), "{svg}");
        assert!(svg.contains(&format!(r#"y="{}" width"#, TOP + plot_h - allow_h)));
        assert!(svg.contains(&format!(r#"height="{allow_h}"><title>00:00: 3 allow"#)));
        assert!(svg.contains(r#"<title>00:00: 2 deny</title>"#));
        // zero values draw nothing
        assert!(!svg.contains("01:00: 0"));
    }

    #[test]
    fn grid_values_are_round_and_huge_counts_do_not_overflow() {
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(38), 50);
        assert_eq!(nice_ceiling(150), 200);
        assert_eq!(nice_ceiling(i64::MAX), i64::MAX);
        let svg = bar_chart(&chart(
            "t",
            vec![Series {
                name: "x",
                class: "x",
                values: vec![i64::MAX, i64::MAX],
            }],
            2,
        ));
        assert!(svg.contains("</svg>"));
    }

    #[test]
    fn at_most_eight_x_labels() {
        let svg = bar_chart(&chart("t", vec![], 30));
        let labels = svg.matches(r#"text-anchor="middle""#).count();
        assert!(labels <= MAX_X_LABELS, "{labels}");
        assert!(labels >= 5, "{labels}");
    }
}
