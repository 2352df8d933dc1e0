//! `/usage`: metering of a month (`?period=YYYY-MM`), each metric charted by day, and
//! its cost estimate.

use super::charts::{ChartFigure, LIVE_REFRESH_MS, live_refresh};
use super::ui::{Badge, ExportLinks, LiveRegion, PageHead, Stat, fetched, section_or_error};
use crate::fns::get_usage;
use crate::model::fleet::{BillingEstimate, TenantBill, UsageMetrics, UsageSummary, UsageView};
use crate::model::{date_of, decimal_text, human_bytes, human_count, money_text, quantity_in};
use leptos::either::Either;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

#[component]
pub fn UsagePage() -> impl IntoView {
    let query = use_query_map();
    let period = Memo::new(move |_| query.with(|q| q.get("period")).filter(|p| !p.is_empty()));
    view! {
        <PageHead heading="Usage and cost" title="Usage">
            <ExportLinks kind="usage" query=Signal::derive(move || {
                period.get().map(|p| format!("period={}", crate::model::url_encode(&p))).unwrap_or_default()
            })/>
        </PageHead>
        <LiveRegion id="usage" follows="sync status rollups" every_ms=LIVE_REFRESH_MS>
            <UsageData period=period.into()/>
        </LiveRegion>
    }
}

/// The month's figures. Its rollups grow while nodes report: re-fetched
/// (throttled) on live events.
#[component]
fn UsageData(period: Signal<Option<String>>) -> impl IntoView {
    let refresh = live_refresh();
    let data = Resource::new(
        move || (period.get(), refresh.get()),
        |(period, _)| get_usage(period),
    );
    fetched(data, |v| view! { <UsageBody v=v/> })
}

/// The month picker, showing the month on screen (the current one when the
/// URL names none).
#[component]
fn PeriodPicker(shown: String) -> impl IntoView {
    view! {
        // A plain form (a page load): it is drawn inside a live region, which
        // the browser swaps without the client router.
        <form method="get" action="/usage" class="filters card" aria-label="Choose the period">
            <div class="field">
                <label for="u-period">"Month"</label>
                <input id="u-period" name="period" type="month" pattern="[0-9]{4}-[0-9]{2}" placeholder="YYYY-MM"
                    data-testid="usage-period" value=shown/>
            </div>
            <div class="field actions">
                <button type="submit" class="primary">"Show"</button>
                <a href="/usage" class="button">"Current month"</a>
            </div>
        </form>
    }
}

#[component]
fn UsageBody(v: UsageView) -> impl IntoView {
    let u = v.usage;
    view! {
        <PeriodPicker shown=u.period.clone()/>
        <p class="muted" data-testid="usage-period-shown">"Period " <strong>{u.period.clone()}</strong></p>
        <Totals m=u.totals.clone()/>
        <section class="card" aria-labelledby="usage-charts-h" data-testid="usage-charts">
            <h2 id="usage-charts-h">"By day"</h2>
            <div class="charts">
                {v.charts.into_iter().map(|c| view! { <ChartFigure chart=c/> }).collect_view()}
            </div>
        </section>
        <section class="card" aria-labelledby="billing-h">
            <h2 id="billing-h">"Cost estimate"</h2>
            {section_or_error(v.billing, |b| view! { <Billing b=b/> })}
        </section>
        <div class="grid2">
            <section class="card" aria-labelledby="tenants-h">
                <h2 id="tenants-h">"By tenant"</h2>
                <TenantTable u=u.clone()/>
            </section>
            <section class="card" aria-labelledby="daily-h">
                <h2 id="daily-h">"By day"</h2>
                <DailyTable u=u/>
            </section>
        </div>
    }
}

#[component]
fn Totals(m: UsageMetrics) -> impl IntoView {
    view! {
        <section class="cards" aria-label="Totals">
            <Stat label="Decisions" value=human_count(m.decisions) sub="enforcement decisions" testid="usage-total-decisions"/>
            <Stat label="DIG files" value=human_count(m.dig_files) sub="evidence files sealed" testid="usage-total-dig-files"/>
            <Stat label="Storage" value=human_bytes(m.storage_bytes) sub="evidence stored" testid="usage-total-storage"/>
            <Stat label="Snapshot exports" value=human_count(m.snapshot_exports) testid="usage-total-snapshot-exports"/>
        </section>
    }
}

/// The four metric headers and cells, shared by the tenant and daily tables.
const METRIC_HEADERS: [&str; 4] = ["Decisions", "DIG files", "Storage", "Snapshot exports"];

fn metric_headers() -> impl IntoView {
    METRIC_HEADERS
        .map(|h| view! { <th scope="col" class="num">{h}</th> })
        .collect_view()
}

fn metric_cells(m: &UsageMetrics) -> impl IntoView + use<> {
    view! {
        <td class="num">{human_count(m.decisions)}</td>
        <td class="num">{human_count(m.dig_files)}</td>
        <td class="num" title=format!("{} bytes", m.storage_bytes)>{human_bytes(m.storage_bytes)}</td>
        <td class="num">{human_count(m.snapshot_exports)}</td>
    }
}

#[component]
fn TenantTable(u: UsageSummary) -> impl IntoView {
    if u.tenants.is_empty() {
        return Either::Left(view! { <p class="muted">"No usage in this period."</p> });
    }
    Either::Right(view! {
        <div class="table-wrap">
            <table data-testid="usage-tenants">
                <thead><tr><th scope="col">"Tenant"</th><th scope="col" class="num">"Nodes"</th>{metric_headers()}</tr></thead>
                <tbody>
                    {u.tenants.iter().map(|t| view! {
                        <tr data-tenant=t.tenant_id.clone()>
                            <td>{t.tenant_id.clone()}</td>
                            <td class="num">{human_count(t.nodes)}</td>
                            {metric_cells(&t.m)}
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    })
}

#[component]
fn DailyTable(u: UsageSummary) -> impl IntoView {
    if u.daily.is_empty() {
        return Either::Left(view! { <p class="muted">"No daily usage in this period."</p> });
    }
    Either::Right(view! {
        <div class="table-wrap">
            <table data-testid="usage-daily">
                <thead><tr><th scope="col">"Day"</th>{metric_headers()}</tr></thead>
                <tbody>
                    {u.daily.iter().map(|d| view! {
                        <tr><td class="nowrap"><time datetime=d.day.clone()>{date_of(&d.day).to_owned()}</time></td>{metric_cells(&d.m)}</tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    })
}

fn unit_price(price: &str, currency: &str, unit: &str) -> String {
    if unit.is_empty() {
        format!("{} {currency}", money_text(price))
    } else {
        format!("{} {currency} per {unit}", money_text(price))
    }
}

fn source_text(source: &str) -> &'static str {
    match source {
        "billing_daemon" => "from the billing service",
        "price_table" => "from the configured price table",
        _ => "source unknown",
    }
}

#[component]
fn Billing(b: BillingEstimate) -> impl IntoView {
    let currency = b.currency.clone();
    view! {
        <p class="notice" data-testid="billing-label">{b.label.clone()}</p>
        <p class="muted small" data-testid="billing-source" data-source=b.source.clone()>
            "Source: " <Badge value=b.source.clone()/> " " {source_text(&b.source)}
        </p>
        <p class="big" data-testid="billing-total">"Total " <strong>{format!("{} {}", money_text(&b.total.0), currency)}</strong></p>
        {b.tenants.into_iter().map(|t| view! { <TenantBillView t=t currency=currency.clone()/> }).collect_view()}
    }
}

#[component]
fn TenantBillView(t: TenantBill, currency: String) -> impl IntoView {
    view! {
        <h3>"Tenant " {t.tenant_id.clone()} <span class="muted small">" · " {source_text(&t.source)}</span></h3>
        {t.note.clone().map(|n| view! { <p class="muted small">{n}</p> })}
        <div class="table-wrap">
            <table data-testid="billing-lines" data-tenant=t.tenant_id.clone()>
                <thead>
                    <tr>
                        <th scope="col">"Metric"</th>
                        <th scope="col" class="num">"Quantity"</th>
                        <th scope="col" class="num">"Unit price"</th>
                        <th scope="col" class="num">"Amount"</th>
                    </tr>
                </thead>
                <tbody>
                    {t.lines.into_iter().map(|l| view! {
                        <tr data-metric=l.metric.clone()>
                            <td>{l.metric.replace('_', " ")}</td>
                            <td class="num" data-testid="billing-quantity" title=format!("{} measured", l.quantity)>
                                {quantity_in(&decimal_text(&l.priced_quantity.as_ref().unwrap_or(&l.quantity).0), &l.unit)}
                            </td>
                            <td class="num">{unit_price(&l.unit_price.0, &currency, &l.unit)}</td>
                            <td class="num">{format!("{} {}", money_text(&l.amount.0), currency)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
                <tfoot>
                    <tr><th scope="row" colspan="3">"Tenant total"</th><td class="num"><strong>{format!("{} {}", money_text(&t.total.0), currency)}</strong></td></tr>
                </tfoot>
            </table>
        </div>
    }
}
