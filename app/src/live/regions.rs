//! Islands mode: the server-rendered parts of a page that follow the live feed
//! (`ui::LiveRegion`). When a change they depend on arrives, the browser reads the
//! page again as the server renders it now and swaps in those parts: tables and
//! charts cost no WASM of their own, and the server remains the one renderer.
//!
//! A region names what it follows (`data-live-on`: `sync`, `status`, `rollups`,
//! `alerts`, `jobs`) and how often at most (`data-live-every`, ms). A re-sync
//! swaps at once; other changes wait out the region's interval, so a burst of
//! changes costs one read. One read runs at a time and serves every region due.

use super::Live;
use leptos::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::time::Duration;
use wasm_bindgen::JsCast as _;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Document, DomParser, Element, Response, SupportedType};

/// Interval of a region that names none.
const DEFAULT_EVERY_MS: u64 = 250;

thread_local! {
    /// Regions whose interval is running.
    static WAITING: RefCell<BTreeSet<String>> = const { RefCell::new(BTreeSet::new()) };
    /// Regions due for a swap.
    static DUE: RefCell<BTreeSet<String>> = const { RefCell::new(BTreeSet::new()) };
    /// A read of the page is under way.
    static READING: Cell<bool> = const { Cell::new(false) };
}

/// Follows the feed's changes (called once, under the feed's owner).
pub(super) fn watch(live: Live) {
    follow(move || live.sync.track(), "sync");
    follow(move || live.tick.track(), "status");
    follow(move || live.rollups.track(), "rollups");
    follow(move || live.alerts.track(), "alerts");
    follow(move || live.jobs.track(), "jobs");
}

fn follow(track: impl Fn() + 'static, kind: &'static str) {
    Effect::new(move |seen: Option<()>| {
        track();
        if seen.is_some() {
            changed(kind);
        }
    });
}

fn document() -> Option<Document> {
    web_sys::window().and_then(|w| w.document())
}

fn regions(doc: &Document) -> Vec<Element> {
    let Ok(list) = doc.query_selector_all("[data-live-region]") else {
        return Vec::new();
    };
    (0..list.length())
        .filter_map(|i| list.item(i))
        .filter_map(|n| n.dyn_into::<Element>().ok())
        .collect()
}

/// Schedules the swap of every region following `kind`.
fn changed(kind: &str) {
    let Some(doc) = document() else { return };
    for region in regions(&doc) {
        let follows = region
            .get_attribute("data-live-on")
            .is_some_and(|on| on.split_whitespace().any(|k| k == kind));
        let Some(id) = region.get_attribute("data-live-region") else {
            continue;
        };
        if !follows {
            continue;
        }
        if kind == "sync" {
            due(id);
            continue;
        }
        if !WAITING.with(|w| w.borrow_mut().insert(id.clone())) {
            continue;
        }
        let every = region
            .get_attribute("data-live-every")
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(DEFAULT_EVERY_MS);
        set_timeout(
            move || {
                WAITING.with(|w| w.borrow_mut().remove(&id));
                due(id);
            },
            Duration::from_millis(every),
        );
    }
}

fn due(id: String) {
    DUE.with(|d| d.borrow_mut().insert(id));
    if READING.with(|r| r.replace(true)) {
        return;
    }
    leptos::task::spawn_local(async {
        loop {
            let ids = DUE.with(|d| std::mem::take(&mut *d.borrow_mut()));
            if ids.is_empty() {
                break;
            }
            // A failed read leaves the page as it is: the next change or
            // re-sync reads it again.
            let _ = swap(&ids).await;
        }
        READING.with(|r| r.set(false));
    });
}

/// Reads the page again and swaps in the regions `ids`.
async fn swap(ids: &BTreeSet<String>) -> Option<()> {
    let window = web_sys::window()?;
    let href = window.location().href().ok()?;
    let response: Response = JsFuture::from(window.fetch_with_str(&href))
        .await
        .ok()?
        .dyn_into()
        .ok()?;
    // Signed out meanwhile (a redirect to the sign-in page), or an error page:
    // keep what is shown; the live indicator tells the rest.
    if !response.ok() || response.redirected() {
        return None;
    }
    let html = JsFuture::from(response.text().ok()?)
        .await
        .ok()?
        .as_string()?;
    let fresh = DomParser::new()
        .ok()?
        .parse_from_string(&html, SupportedType::TextHtml)
        .ok()?;
    let doc = document()?;
    for region in regions(&doc) {
        let Some(id) = region.get_attribute("data-live-region") else {
            continue;
        };
        if !ids.contains(&id) {
            continue;
        }
        let selector = format!("[data-live-region=\"{id}\"]");
        if let Ok(Some(new)) = fresh.query_selector(&selector) {
            region.set_inner_html(&new.inner_html());
        }
    }
    Some(())
}
