//! Node page panel: ask the node for its diagnostic bundle over the bus,
//! show it and offer it as a file.

use super::ui::ErrorBox;
use crate::fns::DiagnoseNode;
use crate::model::{AppError, url_encode};
use leptos::either::EitherOf3;
use leptos::prelude::*;

#[component]
pub fn DiagnosticsPanel(id: String) -> impl IntoView {
    let diagnose = ServerAction::<DiagnoseNode>::new();
    let value = diagnose.value();
    let file = format!("ritma-diagnose-{id}.json");
    view! {
        <section class="card" aria-labelledby="diagnose-h" data-testid="diagnose-panel">
            <div class="section-head">
                <h2 id="diagnose-h">"Diagnostics"</h2>
                <ActionForm action=diagnose attr:class="inline">
                    <input type="hidden" name="node_id" value=id/>
                    <button type="submit" data-testid="diagnose" disabled=move || diagnose.pending().get()>
                        "Collect a diagnostic bundle"
                    </button>
                </ActionForm>
            </div>
            <p class="muted">
                "The node answers over the bus with its versions, configuration and identity (no secrets), "
                "credential expiry, spool state and recent warnings. The request is audited."
            </p>
            <div aria-live="polite" data-testid="diagnose-result">
                {move || diagnose.pending().get().then(|| view! { <p class="muted">"Asking the node (up to 10 s)…"</p> })}
                {move || value.get().map(|r| match r {
                    Ok(json) => EitherOf3::A(view! {
                        <p>
                            <a class="button" download=file.clone() data-testid="diagnose-download"
                                href=format!("data:application/json;charset=utf-8,{}", url_encode(&json))>
                                "Download " {file.clone()}
                            </a>
                        </p>
                        <pre class="code" data-testid="diagnose-bundle">{json}</pre>
                    }),
                    Err(AppError::NodeUnreachable(m)) => EitherOf3::B(view! {
                        <div class="banner warn" role="alert" data-testid="diagnose-unreachable">
                            <strong>"Node did not answer. "</strong>
                            "It may be offline or busy; run " <code>"ritma-node diagnose"</code> " on the machine instead. "
                            <span class="muted small">{m}</span>
                        </div>
                    }),
                    Err(e) => EitherOf3::C(view! { <ErrorBox err=e/> }),
                })}
            </div>
        </section>
    }
}
