//! Node page panels of fleet operations: policy, connectors, telemetry.

use super::ui::{
    AssignmentRows, Badge, DriftBadge, ErrorBox, JsonArea, NodeFactsView, RulepackFields, fetched,
    last_outcome, outcome, section_or_error, when,
};
use crate::fns::{
    AssignNodePolicy, DeleteConnector, DryRunConnector, PutConnector, get_node_policy,
    get_node_telemetry, list_node_connectors,
};
use crate::live;
use crate::model::AppError;
use crate::model::fleet::{
    CONNECTOR_KINDS, Connector, DryRunReport, EnforcementSummary, NodePolicy, NodeTelemetry,
    SloSummary, connector_template,
};
use leptos::either::{Either, EitherOf3};
use leptos::prelude::*;

/// The panels below a node's metadata; `refresh` bumps when the node changes live.
#[component]
pub fn NodeOps(id: String, refresh: RwSignal<u64>) -> impl IntoView {
    view! {
        <PolicyPanel id=id.clone() refresh=refresh/>
        <ConnectorsPanel id=id.clone() refresh=refresh/>
        <TelemetryPanel id=id.clone()/>
        <super::diagnostics::DiagnosticsPanel id=id/>
    }
}

// ---------------------------------------------------------------- policy

#[component]
fn PolicyPanel(id: String, refresh: RwSignal<u64>) -> impl IntoView {
    let live = live::use_live();
    let assign = ServerAction::<AssignNodePolicy>::new();
    let policy = Resource::new(
        {
            let id = id.clone();
            move || {
                (
                    id.clone(),
                    live.sync.get(),
                    refresh.get(),
                    assign.version().get(),
                )
            }
        },
        |(id, ..)| get_node_policy(id),
    );
    view! {
        <section class="card" aria-labelledby="policy-h" data-testid="policy-panel">
            <h2 id="policy-h">"Policy"</h2>
            {fetched(policy, move |p| view! { <PolicyState p=p/> })}
            <h3>"Assign a rulepack to this node"</h3>
            <AssignForm node_id=id assign=assign/>
        </section>
    }
}

#[component]
fn PolicyState(p: NodePolicy) -> impl IntoView {
    let live = live::use_live();
    let clock = live::use_clock();
    let assigned = p.assigned.clone();
    let facts = NodeFactsView::from_base(
        live,
        &p.node_id,
        (
            p.applied.clone(),
            assigned.as_ref().map(|a| a.version.clone()),
        ),
        p.drifted,
        None,
    );
    let dt = |label: &'static str, value: String, testid: &'static str| {
        view! { <dt>{label}</dt><dd data-testid=testid>{value}</dd> }
    };
    view! {
        <dl class="kv">
            {dt("Assigned", assigned.as_ref().map(|a| a.version.clone()).unwrap_or_else(|| "none".into()), "policy-assigned")}
            {dt("Mode", assigned.as_ref().map(|a| a.mode.clone()).unwrap_or_else(|| "—".into()), "policy-mode")}
            {dt("Assigned by", assigned.as_ref().map(|a| format!("{} {}", a.scope_kind, a.scope_value)).unwrap_or_else(|| "—".into()), "policy-scope")}
            <dt>"Applied"</dt>
            <dd data-testid="policy-applied">
                <span class="mono">{move || facts.applied.get().unwrap_or_else(|| "none reported".into())}</span>
                " "
                <DriftBadge drifted=facts.drifted/>
            </dd>
            <dt>"Drifting since"</dt>
            <dd data-testid="policy-drift-since">{when(clock, p.drift_since.clone())}</dd>
            <dt>"Last policy sync"</dt>
            <dd>{when(clock, p.last_policy_sync_at.clone())}</dd>
        </dl>
        <h3>"Matching assignments"</h3>
        <AssignmentRows list=p.assignments show_delete=false/>
    }
}

#[component]
fn AssignForm(node_id: String, assign: ServerAction<AssignNodePolicy>) -> impl IntoView {
    view! {
        <ActionForm action=assign attr:class="stack" attr:data-testid="node-policy-form">
            <input type="hidden" name="node_id" value=node_id/>
            <RulepackFields prefix="np"/>
            <div>
                <button type="submit" class="primary" disabled=move || assign.pending().get()>"Assign to this node"</button>
            </div>
            {outcome(*assign, "node-policy-result", |a| format!("Assigned {} ({}) to this node.", a.rulepack, a.mode))}
        </ActionForm>
    }
}

// ---------------------------------------------------------------- connectors

#[component]
fn ConnectorsPanel(id: String, refresh: RwSignal<u64>) -> impl IntoView {
    let put = ServerAction::<PutConnector>::new();
    let delete = ServerAction::<DeleteConnector>::new();
    let dry_run = ServerAction::<DryRunConnector>::new();
    let list = Resource::new(
        {
            let id = id.clone();
            move || {
                (
                    id.clone(),
                    refresh.get(),
                    put.version().get(),
                    delete.version().get(),
                    dry_run.version().get(),
                )
            }
        },
        |(id, ..)| list_node_connectors(id),
    );
    let form = ConnectorForm::new();
    let node = id.clone();
    view! {
        <section class="card" aria-labelledby="connectors-h" data-testid="connectors-panel">
            <h2 id="connectors-h">"Connectors"</h2>
            {fetched(list, move |items| view! { <NodeConnectorTable items=items node_id=node.clone() delete=delete dry_run=dry_run form=form/> })}
            <DryRunResult dry_run=dry_run/>
            <h3 id="connector-form-h">"Add or replace a connector"</h3>
            <ConnectorEditor node_id=id put=put form=form/>
        </section>
    }
}

/// The editor's fields, so a table row's "Edit" can fill them.
#[derive(Clone, Copy)]
struct ConnectorForm {
    id: RwSignal<String>,
    kind: RwSignal<String>,
    config: RwSignal<String>,
}

impl ConnectorForm {
    fn new() -> Self {
        ConnectorForm {
            id: RwSignal::new(String::new()),
            kind: RwSignal::new("host".into()),
            config: RwSignal::new(connector_template("host").into()),
        }
    }

    fn load(&self, c: &Connector) {
        self.id.set(c.id.clone());
        self.kind.set(c.kind.clone());
        self.config.set(c.config_text());
    }

    /// A new kind: its example replaces the text unless the text was edited.
    fn set_kind(&self, kind: String) {
        let untouched = self.config.with(|t| {
            t.trim().is_empty() || CONNECTOR_KINDS.iter().any(|k| connector_template(k) == t)
        });
        if untouched {
            self.config.set(connector_template(&kind).into());
        }
        self.kind.set(kind);
    }
}

#[component]
fn NodeConnectorTable(
    items: Vec<Connector>,
    node_id: String,
    delete: ServerAction<DeleteConnector>,
    dry_run: ServerAction<DryRunConnector>,
    form: ConnectorForm,
) -> impl IntoView {
    if items.is_empty() {
        return Either::Left(
            view! { <p class="muted" data-testid="node-connectors-empty">"No connectors on this node."</p> },
        );
    }
    Either::Right(view! {
        <div class="table-wrap">
            <table data-testid="node-connectors-table">
                <thead>
                    <tr>
                        <th scope="col">"ID"</th>
                        <th scope="col">"Kind"</th>
                        <th scope="col">"Last run"</th>
                        <th scope="col">"When"</th>
                        <th scope="col"><span class="sr-only">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {items.into_iter().map(|c| view! { <ConnectorRow c=c node_id=node_id.clone() delete=delete dry_run=dry_run form=form/> }).collect_view()}
                </tbody>
            </table>
        </div>
    })
}

/// The hidden `node_id` and `connector_id` of a row's action form.
fn connector_inputs(node_id: String, cid: String) -> impl IntoView {
    view! {
        <input type="hidden" name="node_id" value=node_id/>
        <input type="hidden" name="connector_id" value=cid/>
    }
}

#[component]
fn ConnectorRow(
    c: Connector,
    node_id: String,
    delete: ServerAction<DeleteConnector>,
    dry_run: ServerAction<DryRunConnector>,
    form: ConnectorForm,
) -> impl IntoView {
    let clock = live::use_clock();
    let run = c.last_run.clone();
    let outcome_badge = last_outcome(run.as_ref());
    let edit = c.clone();
    let run_inputs = connector_inputs(node_id.clone(), c.id.clone());
    let delete_inputs = connector_inputs(node_id, c.id.clone());
    let (run_aria, edit_aria, delete_aria) = (
        format!("Dry run {}", c.id),
        format!("Edit {}", c.id),
        format!("Delete {}", c.id),
    );
    view! {
        <tr data-connector-id=c.id.clone()>
            <td class="mono">{c.id.clone()}</td>
            <td>{c.kind.clone()}</td>
            <td data-testid="connector-last-outcome">{outcome_badge}</td>
            <td>{when(clock, run.map(|r| r.finished_at))}</td>
            <td class="actions">
                <ActionForm action=dry_run attr:class="inline">
                    {run_inputs}
                    <button type="submit" class="small" data-testid="dry-run" aria-label=run_aria disabled=move || dry_run.pending().get()>"Dry run"</button>
                </ActionForm>
                <button type="button" class="small" aria-label=edit_aria on:click=move |_| form.load(&edit)>"Edit"</button>
                <ActionForm action=delete attr:class="inline">
                    {delete_inputs}
                    <button type="submit" class="small danger" aria-label=delete_aria>"Delete"</button>
                </ActionForm>
            </td>
        </tr>
    }
}

#[component]
fn ConnectorEditor(
    node_id: String,
    put: ServerAction<PutConnector>,
    form: ConnectorForm,
) -> impl IntoView {
    view! {
        <ActionForm action=put attr:class="stack" attr:data-testid="connector-form" attr:aria-labelledby="connector-form-h">
            <input type="hidden" name="node_id" value=node_id/>
            <div class="row">
                <div class="field">
                    <label for="c-id">"Connector ID"</label>
                    <input id="c-id" name="connector_id" required maxlength="64" placeholder="host-main"
                        prop:value=move || form.id.get() on:input=move |ev| form.id.set(event_target_value(&ev))/>
                </div>
                <div class="field">
                    <label for="c-kind">"Kind"</label>
                    <select id="c-kind" name="kind" prop:value=move || form.kind.get() on:change=move |ev| form.set_kind(event_target_value(&ev))>
                        {CONNECTOR_KINDS.map(|k| view! { <option value=k selected=move || form.kind.with(|v| v == k)>{k}</option> }).collect_view()}
                    </select>
                </div>
            </div>
            <JsonArea id="c-config" name="config" label="config" text=form.config rows=8 testid="connector-config"/>
            <p class="muted small">"Secrets only as references: " <code>"env:NAME"</code> " or " <code>"file:/path"</code> ". The " <code>"kind"</code> " field is set from the selection."</p>
            <div>
                <button type="submit" class="primary" disabled=move || put.pending().get()>"Save connector"</button>
            </div>
            {outcome(*put, "connector-result", |c| format!("Saved connector {} ({}).", c.id, c.kind))}
        </ActionForm>
    }
}

#[component]
fn DryRunResult(dry_run: ServerAction<DryRunConnector>) -> impl IntoView {
    let value = dry_run.value();
    view! {
        <div aria-live="polite" data-testid="dryrun-result">
            {move || dry_run.pending().get().then(|| view! { <p class="muted">"Running the checks on the node (up to 10 s)…"</p> })}
            {move || value.get().map(|r| match r {
                Ok(report) => EitherOf3::A(view! { <DryRunFindings report=report/> }),
                Err(AppError::NodeUnreachable(m)) => EitherOf3::B(view! {
                    <div class="banner warn" role="alert" data-testid="dryrun-unreachable">
                        <strong>"Node did not answer. "</strong>
                        "The node did not reply to the dry run within 10 seconds; it may be offline or busy. "
                        <span class="muted small">{m}</span>
                    </div>
                }),
                Err(e) => EitherOf3::C(view! { <ErrorBox err=e/> }),
            })}
        </div>
    }
}

#[component]
fn DryRunFindings(report: DryRunReport) -> impl IntoView {
    view! {
        <h3>"Dry run of " <code>{report.connector_id.clone()}</code> " · " <Badge value=report.outcome.clone()/></h3>
        <p class="muted small">{format!("{} · {} → {}", report.kind, report.started_at.text, report.finished_at.text)}</p>
        <div class="table-wrap">
            <table data-testid="dryrun-findings" data-outcome=report.outcome.clone()>
                <thead>
                    <tr>
                        <th scope="col">"Check"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">"Severity"</th>
                        <th scope="col">"Message"</th>
                    </tr>
                </thead>
                <tbody>
                    {report.findings.into_iter().map(|f| view! {
                        <tr>
                            <td class="mono">{f.check}</td>
                            <td><Badge value=f.status/></td>
                            <td><Badge value=f.severity/></td>
                            <td>{f.message}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

// ---------------------------------------------------------------- telemetry

#[component]
fn TelemetryPanel(id: String) -> impl IntoView {
    let live = live::use_live();
    let data = Resource::new(
        move || (id.clone(), live.sync.get()),
        |(id, _)| get_node_telemetry(id),
    );
    view! {
        <div class="grid2">
            {fetched(data, |t: NodeTelemetry| view! {
                <section class="card" aria-labelledby="slo-h">
                    <h2 id="slo-h">"SLO summary " <span class="muted small">"last 24 h"</span></h2>
                    {section_or_error(t.slo, |s| view! { <SloTable s=s/> })}
                </section>
                <section class="card" aria-labelledby="events-h">
                    <h2 id="events-h">"Enforcement events " <span class="muted small">"last 24 h"</span></h2>
                    {section_or_error(t.events, |e| view! { <EventTotals e=e/> })}
                </section>
            })}
        </div>
    }
}

#[component]
fn SloTable(s: SloSummary) -> impl IntoView {
    if s.totals.is_empty() {
        return Either::Left(
            view! { <p class="muted" data-testid="slo-empty">"No SLO samples in the last 24 hours."</p> },
        );
    }
    Either::Right(view! {
        <div class="table-wrap">
            <table data-testid="slo-table">
                <thead>
                    <tr>
                        <th scope="col">"Component"</th>
                        <th scope="col">"Operation"</th>
                        <th scope="col">"Outcome"</th>
                        <th scope="col" class="num">"Count"</th>
                    </tr>
                </thead>
                <tbody>
                    {s.totals.into_iter().map(|t| view! {
                        <tr>
                            <td>{t.component}</td>
                            <td class="mono">{t.operation}</td>
                            <td><Badge value=t.outcome/></td>
                            <td class="num">{t.count}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    })
}

#[component]
fn EventTotals(e: EnforcementSummary) -> impl IntoView {
    let t = e.totals;
    let rows = [
        ("allow", t.allow),
        ("deny", t.deny),
        ("throttle", t.throttle),
        ("isolate", t.isolate),
    ];
    view! {
        <div class="table-wrap">
            <table data-testid="events-table">
                <thead>
                    <tr>
                        <th scope="col">"Decision"</th>
                        <th scope="col" class="num">"Count"</th>
                    </tr>
                </thead>
                <tbody>
                    {rows.map(|(k, n)| view! {
                        <tr data-decision=k>
                            <td><Badge value=k/></td>
                            <td class="num" data-testid=format!("events-{k}")>{n}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}
