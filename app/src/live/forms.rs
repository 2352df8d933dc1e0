//! Forms the server renders (`ui::PostForm`) that post to a server function
//! without leaving the page: they need no island. One listener on the document
//! takes every `<form data-enhance>` submitted, also those inside swapped live
//! regions; it posts the fields, shows the outcome in the form's `.outcome`
//! element or the one its `data-outcome` names (the reply's `message`, else
//! `data-ok`; an error: the server's message), puts a panel the reply carries
//! (`html`, rendered by the server: a secret shown once) where its `data-result`
//! says, emptied when the form is posted again, and re-syncs the page, so lists
//! read again. Fields named in `data-join` go as one comma-separated value.
//! A `button[data-copy]` copies the text of the element whose id it names; a
//! `textarea[data-json]` says as it is typed when it is not valid JSON.
//! Before this code runs, the form is a plain POST: the server function
//! redirects back and the page shows the result.

use crate::model::AppError;
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::Closure;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Element, Event, HtmlFormElement, RequestInit, Response, UrlSearchParams};

/// Listens for submits (once per page load).
pub(crate) fn install() {
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    let on_submit = Closure::<dyn FnMut(Event)>::new(move |ev: Event| {
        let Some(form) = ev
            .target()
            .and_then(|t| t.dyn_into::<HtmlFormElement>().ok())
        else {
            return;
        };
        if !form.has_attribute("data-enhance") {
            return;
        }
        ev.prevent_default();
        leptos::task::spawn_local(submit(form));
    });
    let _ = doc.add_event_listener_with_callback("submit", on_submit.as_ref().unchecked_ref());
    on_submit.forget();
    let on_click = Closure::<dyn FnMut(Event)>::new(move |ev: Event| {
        let Some(button) = ev.target().and_then(|t| t.dyn_into::<Element>().ok()) else {
            return;
        };
        let Some(source) = button.get_attribute("data-copy") else {
            return;
        };
        let text = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.get_element_by_id(&source))
            .and_then(|e| e.text_content())
            .unwrap_or_default();
        let label = button.text_content();
        // Copied again within the 2 s: the label to restore is already waiting.
        if super::copy_text(&text) && label.as_deref() != Some("Copied") {
            button.set_text_content(Some("Copied"));
            leptos::prelude::set_timeout(
                move || button.set_text_content(label.as_deref()),
                std::time::Duration::from_secs(2),
            );
        }
    });
    let _ = doc.add_event_listener_with_callback("click", on_click.as_ref().unchecked_ref());
    on_click.forget();
    let on_input = Closure::<dyn FnMut(Event)>::new(move |ev: Event| {
        if let Some(area) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlTextAreaElement>().ok())
        {
            check_json(&area);
        }
    });
    let _ = doc.add_event_listener_with_callback("input", on_input.as_ref().unchecked_ref());
    on_input.forget();
}

/// A `textarea[data-json]`: says at once, in the element `data-json-error`
/// names, when its text is not valid JSON (`data-json`: the field's name).
fn check_json(area: &web_sys::HtmlTextAreaElement) {
    let Some(field) = area.get_attribute("data-json") else {
        return;
    };
    let text = area.value();
    let error = (!text.trim().is_empty())
        .then(|| crate::model::fleet::check_json_field(&field, &text).err())
        .flatten();
    let _ = area.set_attribute(
        "aria-invalid",
        if error.is_some() { "true" } else { "false" },
    );
    if let Some(target) = area
        .get_attribute("data-json-error")
        .and_then(|id| area.owner_document()?.get_element_by_id(&id))
    {
        target.set_text_content(error.as_deref());
    }
}

async fn submit(form: HtmlFormElement) {
    let buttons = form.query_selector_all("button[type=submit]").ok();
    let each_button = |f: &dyn Fn(&Element)| {
        if let Some(list) = &buttons {
            (0..list.length())
                .filter_map(|i| list.item(i))
                .filter_map(|n| n.dyn_into::<Element>().ok())
                .for_each(|b| f(&b));
        }
    };
    each_button(&|b| {
        let _ = b.set_attribute("disabled", "");
    });
    show_panel(&form, "");
    let result = post(&form).await;
    if let Ok(Reply {
        html: Some(html), ..
    }) = &result
    {
        show_panel(&form, html);
    }
    each_button(&|b| {
        let _ = b.remove_attribute("disabled");
    });
    let ok = result.is_ok();
    show(&form, result.map(|r| r.message));
    if ok {
        super::use_live().resync();
    }
}

/// Puts the server-rendered `html` into the element whose id the form's
/// `data-result` names.
fn show_panel(form: &HtmlFormElement, html: &str) {
    if let Some(target) = form
        .get_attribute("data-result")
        .and_then(|id| form.owner_document()?.get_element_by_id(&id))
    {
        target.set_inner_html(html);
    }
}

/// What a server function may reply for its form to show
/// (`crate::model::FormReply`): its own message, and a panel it rendered.
#[derive(Default, serde::Deserialize)]
struct Reply {
    message: Option<String>,
    html: Option<String>,
}

/// Posts the form's fields to its action, as the browser would, but asking for
/// the server function's own reply.
async fn post(form: &HtmlFormElement) -> Result<Reply, String> {
    let unreachable = || AppError::Unavailable("console server unreachable".into()).to_string();
    let window = web_sys::window().ok_or_else(unreachable)?;
    let fields = web_sys::FormData::new_with_form(form).map_err(|_| unreachable())?;
    // Fields sent as one comma-separated value (ticked checkboxes of one name).
    for name in form
        .get_attribute("data-join")
        .unwrap_or_default()
        .split_whitespace()
    {
        let joined = fields
            .get_all(name)
            .iter()
            .filter_map(|v| v.as_string())
            .filter(|v| !v.is_empty())
            .collect::<Vec<_>>()
            .join(",");
        fields.delete(name);
        let _ = fields.append_with_str(name, &joined);
    }
    let body =
        UrlSearchParams::new_with_str_sequence_sequence(&fields).map_err(|_| unreachable())?;
    let headers = web_sys::Headers::new().map_err(|_| unreachable())?;
    let _ = headers.set("Accept", "application/json");
    let _ = headers.set("Content-Type", "application/x-www-form-urlencoded");
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(&body);
    let response: Response = JsFuture::from(window.fetch_with_str_and_init(&form.action(), &init))
        .await
        .map_err(|_| unreachable())?
        .dyn_into()
        .map_err(|_| unreachable())?;
    // Server functions do not redirect: this was a sign-in page.
    if response.redirected() {
        return Err(AppError::Unauthorized.to_string());
    }
    let text = match response.text() {
        Ok(p) => JsFuture::from(p).await.ok().and_then(|t| t.as_string()),
        Err(_) => None,
    }
    .unwrap_or_default();
    if response.ok() {
        return Ok(serde_json::from_str::<Reply>(&text).unwrap_or_default());
    }
    Err(serde_json::from_str::<AppError>(&text)
        .map(|e| e.to_string())
        .unwrap_or_else(|_| AppError::Internal(format!("HTTP {}", response.status())).to_string()))
}

/// Writes the outcome as `ui::outcome` renders it: a confirmation, or an alert.
fn show(form: &HtmlFormElement, result: Result<Option<String>, String>) {
    let Some(doc) = form.owner_document() else {
        return;
    };
    let named = form
        .get_attribute("data-outcome")
        .and_then(|id| doc.get_element_by_id(&id));
    let Some(target) = named.or_else(|| form.query_selector(".outcome").ok().flatten()) else {
        return;
    };
    let Ok(p) = doc.create_element("p") else {
        return;
    };
    match result {
        Ok(message) => {
            let _ = p.set_attribute("class", "ok-msg");
            let _ = p.set_attribute("data-state", "ok");
            p.set_text_content(message.or_else(|| form.get_attribute("data-ok")).as_deref());
        }
        Err(message) => {
            let _ = p.set_attribute("class", "error");
            let _ = p.set_attribute("role", "alert");
            let _ = p.set_attribute("data-state", "error");
            p.set_text_content(Some(&message));
        }
    }
    target.set_text_content(None);
    let _ = target.append_child(&p);
}
