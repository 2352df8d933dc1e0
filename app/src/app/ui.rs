//! Widgets shared by the console's pages: error box, status badge, copy buttons,
//! relative times, loading a resource, an action's outcome, badges, live policy/key
//! facts of a node, JSON text areas, policy assignment pieces, the alerts section's
//! navigation and export links. Pages import from here, never from each other.

use crate::fns::{DeleteAssignment, list_rulepacks};
use crate::live::{self, Clock, Live};
use crate::model::fleet::Assignment;
use crate::model::{AppError, Instant, NodeRow, Status, relative};
use leptos::either::Either;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::components::A;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

// ---------------------------------------------------------------- page basics

/// A server-rendered part of a page that follows the live feed. In islands mode
/// the browser swaps in the server's fresh render of it when a change it `follows`
/// arrives (`sync`, `status`, `rollups`, `alerts`, `jobs`; at most every
/// `every_ms`): see `live::regions`. It must hold no island. When the whole page
/// hydrates, its content is reactive itself and this is a plain wrapper.
#[component]
pub fn LiveRegion(
    id: &'static str,
    follows: &'static str,
    #[prop(optional)] every_ms: Option<u64>,
    children: Children,
) -> impl IntoView {
    view! {
        <div class="live-region" data-live-region=id data-live-on=follows
            data-live-every=every_ms.map(|ms| ms.to_string())>
            {children()}
        </div>
    }
}

/// A page's document title (`{title} · Ritma`, the heading unless given) and its
/// heading row; `children` follow the heading (a description, export links).
#[component]
pub fn PageHead(
    heading: &'static str,
    #[prop(optional)] title: Option<&'static str>,
    #[prop(optional)] children: Option<Children>,
) -> impl IntoView {
    view! {
        <leptos_meta::Title text=format!("{} · Ritma", title.unwrap_or(heading))/>
        <div class="page-head">
            <h1>{heading}</h1>
            {children.map(|c| c())}
        </div>
    }
}

#[component]
pub fn StatusBadge(#[prop(into)] status: Signal<Status>) -> impl IntoView {
    view! {
        <span class=move || format!("badge status-{}", status.get().as_str())>
            <span class="dot" aria-hidden="true"></span>
            {move || status.get().label()}
        </span>
    }
}

#[component]
pub fn ErrorBox(err: AppError, #[prop(optional)] retry: Option<Callback<()>>) -> impl IntoView {
    let (title, hint) = match &err {
        AppError::Unauthorized => (
            "Signed out",
            "Your session has ended or the token was revoked.",
        ),
        AppError::Unavailable(_) => (
            "Controller unreachable",
            "The console cannot reach the controller API. This page re-syncs when the connection is back.",
        ),
        AppError::NodeUnreachable(_) => (
            "Node did not answer",
            "The controller asked the node, which did not reply in time (HTTP 504). It may be offline or busy; try again.",
        ),
        AppError::Forbidden(_) => ("No permission", "Your token may not see this."),
        AppError::NotFound(_) => ("Not found", ""),
        AppError::BadRequest(_) => ("Invalid request", ""),
        AppError::Internal(_) => ("Error", ""),
    };
    let unauthorized = matches!(err, AppError::Unauthorized);
    view! {
        <div class="card error-box" role="alert" data-testid="error">
            <h2>{title}</h2>
            <p>{err.to_string()}</p>
            {(!hint.is_empty()).then(|| view! { <p class="muted">{hint}</p> })}
            {unauthorized.then(|| view! { <p><a href="/login" rel="external" class="button primary">"Sign in"</a></p> })}
            {retry.map(|cb| view! { <button type="button" on:click=move |_| cb.run(())>"Retry"</button> })}
        </div>
    }
}

#[component]
pub fn CopyButton(
    #[prop(into)] text: Signal<String>,
    #[prop(optional, into)] label: Option<String>,
) -> impl IntoView {
    let copied = RwSignal::new(false);
    let label = label.unwrap_or_else(|| "Copy".to_string());
    view! {
        <button
            type="button"
            class="small copy"
            on:click=move |_| {
                if live::copy_text(&text.get_untracked()) {
                    copied.set(true);
                    set_timeout(move || copied.set(false), Duration::from_secs(2));
                }
            }
        >
            {move || if copied.get() { "Copied".to_string() } else { label.clone() }}
        </button>
    }
}

pub fn rel_time(clock: Clock, fallback_ms: i64, then_ms: i64) -> String {
    relative(clock.now_or(fallback_ms), then_ms)
}

/// `view` as HTML, for a post form's reply panel (`model::FormReply::html`).
#[cfg(feature = "ssr")]
pub fn reply_html<V: IntoView + 'static>(view: impl FnOnce() -> V) -> String {
    Owner::new().with(|| view().to_html())
}

/// A titled `<pre>` with a copy button (`live::forms` copies it: no island),
/// in panels only the server renders.
#[cfg(feature = "ssr")]
#[component]
pub fn CopyBlock(
    title: &'static str,
    text: String,
    #[prop(optional)] class: &'static str,
    testid: &'static str,
) -> impl IntoView {
    let id = format!("copy-{testid}");
    view! {
        <div class="section-head">
            <h3>{title}</h3>
            <button type="button" class="small copy" data-copy=id.clone()>{format!("Copy {}", title.to_lowercase())}</button>
        </div>
        <pre class=format!("snippet {class}") id=id data-testid=testid tabindex="0">{text}</pre>
    }
}

// ---------------------------------------------------------------- loading and outcomes

/// A form posting its fields to the server function at `action` (its `PATH`),
/// needing no island: in the browser `live::forms` posts it without leaving the
/// page, writes the outcome (`ok`, or the error) into its `.outcome` element or
/// the element whose id is `outcome`, puts a panel the reply carries (`html`) into
/// the element whose id is `result`, and re-syncs the page; the fields named in
/// `join` go as one comma-separated value. Before that code runs it is a plain
/// POST, which the server function answers by coming back.
#[component]
pub fn PostForm(
    action: &'static str,
    #[prop(into)] ok: String,
    #[prop(optional)] class: &'static str,
    #[prop(optional)] testid: Option<&'static str>,
    #[prop(optional)] outcome: Option<&'static str>,
    #[prop(optional)] join: Option<&'static str>,
    #[prop(optional)] result: Option<&'static str>,
    children: Children,
) -> impl IntoView {
    view! {
        <form method="post" action=action class=class data-enhance="" data-ok=ok
            data-testid=testid data-outcome=outcome data-join=join data-result=result>
            {children()}
        </form>
    }
}

/// Where a [`PostForm`] writes its outcome (server-rendered empty).
#[component]
pub fn OutcomeSlot(
    testid: &'static str,
    #[prop(optional)] id: Option<&'static str>,
) -> impl IntoView {
    view! { <div class="outcome" aria-live="polite" data-testid=testid id=id></div> }
}

/// A resource's value rendered by `render`, or its error; keeps the old content while
/// re-fetching.
pub fn fetched<T, V>(
    res: Resource<Result<T, AppError>>,
    render: impl Fn(T) -> V + Send + Sync + 'static,
) -> impl IntoView
where
    T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    V: IntoView + 'static,
{
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || res.get().map(|r| match r {
                Ok(v) => Either::Left(render(v)),
                Err(e) => Either::Right(view! { <ErrorBox err=e/> }),
            })}
        </Transition>
    }
}

/// What `fetch` reads, rendered by `render`, read again whenever the page
/// re-syncs (the stream opening, a post form's action): a live region's list.
pub fn synced<T, Fut, V>(
    fetch: fn() -> Fut,
    render: impl Fn(T) -> V + Send + Sync + 'static,
) -> impl IntoView
where
    Fut: std::future::Future<Output = Result<T, AppError>> + Send + 'static,
    T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    V: IntoView + 'static,
{
    let live = live::use_live();
    fetched(
        Resource::new(move || live.sync.get(), move |_| fetch()),
        render,
    )
}

/// The result of a form's action: a confirmation, or the error (announced).
pub fn outcome<I, T>(
    action: Action<I, Result<T, AppError>>,
    testid: &'static str,
    ok: impl Fn(&T) -> String + Send + Sync + 'static,
) -> impl IntoView
where
    I: Send + Sync + 'static,
    T: Send + Sync + 'static,
{
    let text = move || {
        action.value().with(|v| match v {
            None => None,
            Some(Ok(t)) => Some(Ok(ok(t))),
            Some(Err(e)) => Some(Err(e.to_string())),
        })
    };
    view! {
        <div class="outcome" aria-live="polite" data-testid=testid>
            {move || text().map(|r| match r {
                Ok(m) => Either::Left(view! { <p class="ok-msg" data-state="ok">{m}</p> }),
                Err(m) => Either::Right(view! { <p class="error" role="alert" data-state="error">{m}</p> }),
            })}
        </div>
    }
}

/// The colour of a status word: ok, warn, bad or idle.
pub fn tone(value: &str) -> &'static str {
    match value {
        "pass" | "active" | "observe" | "allow" | "info" | "low" | "resolved" | "delivered" => "ok",
        "incomplete" | "expired" | "unreachable" | "error" | "medium" | "throttle"
        | "rotation_due" | "pending" => "warn",
        "fail" | "revoked" | "compromised" | "high" | "deny" | "isolate" | "firing" | "failed" => {
            "bad"
        }
        _ => "idle",
    }
}

/// A pill with the value's tone (`data-value` carries the raw value for tests).
#[component]
pub fn Badge(#[prop(into)] value: String) -> impl IntoView {
    view! { <span class=format!("badge tone-{}", tone(&value)) data-value=value.clone()>{value.replace('_', " ")}</span> }
}

/// A time as "3 min ago" (its exact time as the title; the exact time itself until the
/// browser's clock runs), or a dash.
pub fn when(clock: Clock, at: Option<Instant>) -> impl IntoView {
    match at {
        Some(t) => {
            let text = t.text.clone();
            Either::Left(view! {
                <time title=t.text.clone()>
                    {move || match clock.0.get() {
                        Some(now) => crate::model::relative(now, t.ms),
                        None => text.clone(),
                    }}
                </time>
            })
        }
        None => Either::Right(view! { <span class="muted">"—"</span> }),
    }
}

/// A part of a page that may have failed alone.
pub fn section_or_error<T, V: IntoView>(
    r: Result<T, AppError>,
    render: impl FnOnce(T) -> V,
) -> impl IntoView {
    match r {
        Ok(v) => Either::Left(render(v)),
        Err(e) => Either::Right(view! { <ErrorBox err=e/> }),
    }
}

/// A connector's last dry-run outcome as a badge, or "never run".
pub fn last_outcome(run: Option<&crate::model::fleet::DryRunReport>) -> impl IntoView + use<> {
    match run {
        Some(r) => Either::Left(view! { <Badge value=r.outcome.clone()/> }),
        None => Either::Right(view! { <span class="muted">"never run"</span> }),
    }
}

/// A stat card (not a link).
#[component]
pub fn Stat(
    label: &'static str,
    #[prop(into)] value: String,
    #[prop(optional, into)] sub: String,
    #[prop(optional)] class: &'static str,
    testid: &'static str,
) -> impl IntoView {
    view! {
        <div class=format!("card stat {class}") data-testid=testid>
            <span class="stat-label">{label}</span>
            <span class="stat-value">{value}</span>
            <span class="stat-sub">{sub}</span>
        </div>
    }
}

/// `true` → "warn" etc.: the class of a stat card that should draw attention.
pub fn alert_class(n: i64, class: &'static str) -> &'static str {
    if n > 0 { class } else { "" }
}

// ---------------------------------------------------------------- live node facts

/// A node's policy and key state: the fetched values, overridden by newer pushed ones.
#[derive(Clone, Copy)]
pub struct NodeFactsView {
    pub applied: Signal<Option<String>>,
    pub assigned: Signal<Option<String>>,
    pub drifted: Signal<bool>,
    pub key_warning: Signal<Option<String>>,
}

impl NodeFactsView {
    pub fn new(live: Live, n: &NodeRow) -> Self {
        Self::from_base(
            live,
            &n.id,
            (n.policy_version.clone(), n.policy_assigned.clone()),
            n.drifted,
            n.key_warning.clone(),
        )
    }

    /// `policy`: (applied, assigned) as fetched.
    pub fn from_base(
        live: Live,
        id: &str,
        policy: (Option<String>, Option<String>),
        drifted: bool,
        key_warning: Option<String>,
    ) -> Self {
        let id = id.to_string();
        let (applied, assigned) = policy;
        let pick = |f: fn(&crate::live::NodeFacts) -> Option<Option<String>>,
                    base: Option<String>| {
            let id = id.clone();
            Signal::derive(move || live.fact(&id, f).unwrap_or_else(|| base.clone()))
        };
        NodeFactsView {
            applied: pick(|f| f.policy_version.clone(), applied),
            assigned: pick(|f| f.policy_assigned.clone(), assigned),
            key_warning: pick(|f| f.key_warning.clone(), key_warning),
            drifted: {
                let id = id.clone();
                Signal::derive(move || live.fact(&id, |f| f.drifted).unwrap_or(drifted))
            },
        }
    }
}

/// "drifted" pill while the node's applied policy differs from the assigned one.
#[component]
pub fn DriftBadge(drifted: Signal<bool>) -> impl IntoView {
    view! {
        <Show when=move || drifted.get()>
            <span class="badge tone-warn" data-testid="node-drifted" title="The applied policy differs from the assigned one">"drifted"</span>
        </Show>
    }
}

/// Applied policy version and the drift badge (inventory column, node metadata).
#[component]
pub fn PolicyCell(facts: NodeFactsView) -> impl IntoView {
    let title = move || {
        facts
            .assigned
            .get()
            .map(|a| format!("assigned {a}"))
            .unwrap_or_else(|| "no policy assigned".into())
    };
    view! {
        <span class="mono" data-testid="node-policy-applied" title=title>
            {move || facts.applied.get().unwrap_or_else(|| "—".into())}
        </span>
        " "
        <DriftBadge drifted=facts.drifted/>
    }
}

/// A small "key revoked" pill in the inventory.
#[component]
pub fn KeyWarningBadge(facts: NodeFactsView) -> impl IntoView {
    move || {
        facts.key_warning.get().map(|k| {
            view! {
                <span class="badge tone-bad" data-testid="node-key-warning" data-value=k.clone() title="This node signs with a key that should not be used">
                    {format!("key {k}")}
                </span>
            }
        })
    }
}

/// The node page's alert while the node signs with a revoked, compromised or expired key.
#[component]
pub fn KeyWarningBanner(facts: NodeFactsView, key_id: Option<String>) -> impl IntoView {
    let key = key_id.unwrap_or_else(|| "its key".into());
    move || {
        let key = key.clone();
        facts.key_warning.get().map(|k| {
            view! {
                <div class="banner bad" role="alert" data-testid="key-warning-banner" data-value=k.clone()>
                    <strong>{format!("Signing key {k}. ")}</strong>
                    {format!("This node still signs with {key}, which is {k}. Re-key the node and review the evidence it signed with this key. ")}
                    <a href="/keys">"Key registry"</a>
                </div>
            }
        })
    }
}

// ---------------------------------------------------------------- JSON text areas

/// A labelled JSON text area rendered by the server: `live::forms` says at once
/// when the text is not valid JSON (the server function says it again on submit).
#[component]
pub fn JsonField(
    id: &'static str,
    name: &'static str,
    label: &'static str,
    text: &'static str,
    #[prop(optional)] rows: Option<u32>,
    #[prop(optional)] testid: &'static str,
) -> impl IntoView {
    let err_id = format!("{id}-error");
    view! {
        <div class="field">
            <label for=id>{label}</label>
            <textarea id=id name=name class="code" rows=rows.unwrap_or(8) spellcheck="false"
                data-testid=testid data-json=label data-json-error=err_id.clone()
                aria-invalid="false" aria-describedby=err_id.clone()>
                {text}
            </textarea>
            <p id=err_id class="error small" aria-live="polite" data-testid=format!("{name}-json-error")></p>
        </div>
    }
}

/// A labelled JSON text area that says at once (and again on submit, server side)
/// when the text is not valid JSON.
#[component]
pub fn JsonArea(
    id: &'static str,
    name: &'static str,
    label: &'static str,
    #[prop(into)] text: RwSignal<String>,
    #[prop(optional)] rows: Option<u32>,
    #[prop(optional)] testid: &'static str,
) -> impl IntoView {
    let err_id = format!("{id}-error");
    let error = Memo::new(move |_| {
        text.with(|t| {
            (!t.trim().is_empty())
                .then(|| crate::model::fleet::parse_json_field(label, t).err())
                .flatten()
        })
    });
    view! {
        <div class="field">
            <label for=id>{label}</label>
            <textarea
                id=id
                name=name
                class="code"
                rows=rows.unwrap_or(8)
                spellcheck="false"
                data-testid=testid
                aria-invalid=move || if error.with(Option::is_some) { "true" } else { "false" }
                aria-describedby=err_id.clone()
                prop:value=move || text.get()
                on:input=move |ev| text.set(event_target_value(&ev))
            >
                {text.get_untracked()}
            </textarea>
            <p id=err_id class="error small" aria-live="polite" data-testid=format!("{name}-json-error")>
                {move || error.get()}
            </p>
        </div>
    }
}

// ---------------------------------------------------------------- policy assignments

/// Assignments as a table (the first one wins on a node page).
#[component]
pub fn AssignmentRows(list: Vec<Assignment>, show_delete: bool) -> impl IntoView {
    if list.is_empty() {
        return Either::Left(
            view! { <p class="muted" data-testid="assignments-empty">"No assignments."</p> },
        );
    }
    Either::Right(view! {
        <div class="table-wrap">
            <table data-testid="assignments-table">
                <thead>
                    <tr>
                        <th scope="col">"Scope"</th>
                        <th scope="col">"Rulepack"</th>
                        <th scope="col">"Revision"</th>
                        <th scope="col">"Mode"</th>
                        <th scope="col" class="num">"Nodes"</th>
                        <th scope="col">"Created"</th>
                        {show_delete.then(|| view! { <th scope="col"><span class="sr-only">"Actions"</span></th> })}
                    </tr>
                </thead>
                <tbody>
                    {list.into_iter().map(|a| {
                        let (aid, aria) = (a.id.clone(), format!("Delete assignment {} of {}", a.scope_text(), a.rulepack));
                        let del = show_delete.then(|| view! {
                            <td>
                                <PostForm action=DeleteAssignment::PATH
                                    ok="Assignment deleted." class="inline" outcome="assignment-delete-outcome">
                                    <input type="hidden" name="id" value=aid/>
                                    <button type="submit" class="small danger" aria-label=aria>"Delete"</button>
                                </PostForm>
                            </td>
                        });
                        view! {
                            <tr data-assignment-id=a.id.clone()>
                                <td>{a.scope_text()}</td>
                                <td class="mono">{a.rulepack.clone()}</td>
                                <td>{a.revision_text()}</td>
                                <td><Badge value=a.mode.clone()/></td>
                                <td class="num">{a.nodes}</td>
                                <td class="small">{a.created_at.text.clone()} <span class="muted">{a.created_by.clone().map(|b| format!(" by {b}"))}</span></td>
                                {del}
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    })
}

/// Rulepack, revision and mode fields (shared by the node and the org assignment forms).
#[component]
pub fn RulepackFields(prefix: &'static str) -> impl IntoView {
    let packs = Resource::new(|| (), |_| list_rulepacks());
    let list_id = format!("{prefix}-rulepacks");
    view! {
        <div class="row">
            <div class="field">
                <label for=format!("{prefix}-rulepack")>"Rulepack"</label>
                <input id=format!("{prefix}-rulepack") name="rulepack" list=list_id.clone() required placeholder="baseline"/>
                <Suspense fallback=|| ()>
                    <datalist id=list_id.clone()>
                        {move || packs.get().and_then(Result::ok).map(|ps| ps.into_iter().map(|p| view! { <option value=p.name.clone()>{p.version}</option> }).collect_view())}
                    </datalist>
                </Suspense>
            </div>
            <div class="field">
                <label for=format!("{prefix}-revision")>"Revision (empty: latest)"</label>
                <input id=format!("{prefix}-revision") name="revision" type="number" min="1" inputmode="numeric"/>
            </div>
        </div>
        <div class="field">
            <label for=format!("{prefix}-mode")>"Mode"</label>
            <select id=format!("{prefix}-mode") name="mode">
                <option value="observe" selected>"observe (report only)"</option>
                <option value="enforce">"enforce"</option>
            </select>
        </div>
    }
}

// ---------------------------------------------------------------- alerts section

/// The alerts section's own navigation.
#[component]
pub fn AlertsNav() -> impl IntoView {
    view! {
        <nav class="subnav row-inline" aria-label="Alerts">
            <A href="/alerts" exact=true>"Alerts"</A>
            <A href="/alerts/rules">"Rules"</A>
            <A href="/alerts/channels">"Channels"</A>
            <A href="/alerts/silences">"Silences"</A>
        </nav>
    }
}

/// Changes whenever a pushed alert fires or resolves (pages re-fetch on it).
pub fn alerts_version(live: Live) -> Memo<i64> {
    Memo::new(move |_| {
        live.alerts.with(|m| {
            m.values()
                .map(|a| a.at.ms.wrapping_add(a.status.len() as i64))
                .fold(m.len() as i64, i64::wrapping_add)
        })
    })
}

// ---------------------------------------------------------------- exports

/// CSV and JSON downloads of the console's `/export/{kind}` (the controller's
/// streamed export, for the org on screen) with `query`, the page's filters
/// as an encoded query string without `?` (the server passes on only what
/// the export takes).
#[component]
pub fn ExportLinks(kind: &'static str, #[prop(into)] query: Signal<String>) -> impl IntoView {
    let href = move |format: &'static str| {
        move || {
            let q = query.get();
            let q = q.trim_start_matches('?');
            if q.is_empty() {
                format!("/export/{kind}?format={format}")
            } else {
                format!("/export/{kind}?{q}&format={format}")
            }
        }
    };
    // `download` and `rel=external`: a file, not a page for the router.
    view! {
        <span class="export-links">
            <a class="button" href=href("csv") download="" rel="external" data-testid=format!("export-{kind}-csv")>"Export CSV"</a>
            " "
            <a class="button" href=href("json") download="" rel="external" data-testid=format!("export-{kind}-json")>"Export JSON"</a>
        </span>
    }
}
