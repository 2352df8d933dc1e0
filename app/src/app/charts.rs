//! Chart widgets shared by the dashboard, node and usage pages: a server-drawn chart
//! with its table view, the range links, and the throttled live refresh. The charts
//! are made on the server (`server::charts`); here they are only inserted.

use crate::live;
use crate::model::chart::{Chart, RANGES};
use leptos::prelude::*;
use std::time::Duration;

/// Charts re-fetch at most this often when live events arrive: rollups change by
/// the minute, and a busy fleet must not turn every state change into a fetch.
pub const LIVE_REFRESH: Duration = Duration::from_millis(LIVE_REFRESH_MS);
pub const LIVE_REFRESH_MS: u64 = 20_000;

/// A counter bumped at most every [`LIVE_REFRESH`] while live events arrive
/// (the org's rollups grew, or a status, policy or key change), and at once
/// when the stream re-syncs: chart resources depend on it.
pub fn live_refresh() -> Signal<(u64, u64)> {
    let live = live::use_live();
    let bumped = RwSignal::new(0u64);
    let pending = StoredValue::new(false);
    Effect::new(move |prev: Option<(u64, u64)>| {
        let t = (live.tick.get(), live.rollups.get());
        if prev.is_some() && !pending.get_value() {
            pending.set_value(true);
            set_timeout(
                move || {
                    pending.set_value(false);
                    bumped.update(|n| *n += 1);
                },
                LIVE_REFRESH,
            );
        }
        t
    });
    Signal::derive(move || (live.sync.get(), bumped.get()))
}

/// One chart as the server finished it (caption, SVG, table view): inserted, not built.
#[component]
pub fn ChartFigure(chart: Chart) -> impl IntoView {
    view! {
        <figure class="chart" data-testid=format!("chart-{}", chart.id)
            aria-labelledby=format!("{}-caption", chart.id) inner_html=chart.html></figure>
    }
}

/// Links to the chart ranges of the page at `path`, the current one marked.
#[component]
pub fn RangeLinks(
    #[prop(into)] current: Signal<String>,
    #[prop(into)] path: String,
) -> impl IntoView {
    view! {
        <nav class="range-links" aria-label="Time range">
            {RANGES.map(|(r, label)| view! {
                <a href=format!("{path}?range={r}") class="button small" data-range=r
                    aria-current=move || (current.get() == r).then_some("true")>{label}</a>
            }).collect_view()}
        </nav>
    }
}
