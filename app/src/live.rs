//! Browser side of the live feed: one `EventSource` on `/live`, node status overrides
//! applied in place, alert notifications kept by alert id, a re-sync counter bumped
//! whenever the stream (re)opens.

use crate::model::alerts::LiveAlert;
use crate::model::bulk::LiveJob;
use crate::model::{LiveEvent, Status};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[cfg(feature = "hydrate")]
mod forms;
#[cfg(all(feature = "hydrate", feature = "islands"))]
mod regions;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conn {
    /// Server render, or before the stream first opens.
    Connecting,
    Open,
    /// The browser is re-establishing the stream.
    Reconnecting,
    /// The stream was refused or closed; retrying with a delay.
    Offline,
}

/// Bus status as reported by the console server (`bus` events).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusInfo {
    pub connected: bool,
    pub error: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NodeLive {
    pub status: Status,
    pub at_ms: i64,
}

/// Policy and key facts of a node learned from the stream (None: nothing pushed yet).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeFacts {
    pub policy_version: Option<Option<String>>,
    pub policy_assigned: Option<Option<String>>,
    pub drifted: Option<bool>,
    pub key_warning: Option<Option<String>>,
    /// Time of the latest such change.
    pub at_ms: i64,
}

#[derive(Clone, Copy)]
pub struct Live {
    pub conn: RwSignal<Conn>,
    pub bus: RwSignal<Option<BusInfo>>,
    /// Bumped when the stream (re)opens or the server asks for a re-sync: pages re-fetch.
    pub sync: RwSignal<u64>,
    /// Latest status per node id learned from the stream.
    pub nodes: RwSignal<HashMap<String, NodeLive>>,
    /// Policy and key changes per node id since the last (re-)sync.
    pub facts: RwSignal<HashMap<String, NodeFacts>>,
    /// Recent events, newest first.
    pub feed: RwSignal<Vec<LiveEvent>>,
    /// Bumped on every status, policy or key change.
    pub tick: RwSignal<u64>,
    /// The latest notification per alert id since the last (re-)sync.
    pub alerts: RwSignal<HashMap<String, LiveAlert>>,
    /// The latest progress per bulk job id.
    pub jobs: RwSignal<HashMap<String, LiveJob>>,
    /// Bumped when the shown org's hourly rollups grew: charts re-read.
    pub rollups: RwSignal<u64>,
}

impl Live {
    pub fn new() -> Self {
        Live {
            conn: RwSignal::new(Conn::Connecting),
            bus: RwSignal::new(None),
            sync: RwSignal::new(0),
            nodes: RwSignal::new(HashMap::new()),
            facts: RwSignal::new(HashMap::new()),
            feed: RwSignal::new(Vec::new()),
            tick: RwSignal::new(0),
            alerts: RwSignal::new(HashMap::new()),
            jobs: RwSignal::new(HashMap::new()),
            rollups: RwSignal::new(0),
        }
    }

    /// The status to show: the live one when it is at least as new as the fetched one.
    pub fn status_for(&self, id: &str, base: Status, base_at_ms: i64) -> Status {
        self.nodes.with(|m| {
            m.get(id)
                .filter(|l| l.at_ms >= base_at_ms)
                .map(|l| l.status)
                .unwrap_or(base)
        })
    }

    /// A pushed fact of node `id`, if any: `pick` chooses which.
    pub fn fact<T>(&self, id: &str, pick: impl Fn(&NodeFacts) -> Option<T>) -> Option<T> {
        self.facts.with(|m| m.get(id).and_then(pick))
    }

    /// When anything of node `id` last changed on the stream (status, policy or key).
    pub fn changed_at(&self, id: &str) -> (Option<i64>, Option<i64>) {
        (
            self.nodes.with(|m| m.get(id).map(|l| l.at_ms)),
            self.facts.with(|m| m.get(id).map(|f| f.at_ms)),
        )
    }

    /// Pages re-fetch everything: pushed facts are dropped (the fetch supersedes them).
    pub fn resync(&self) {
        self.facts.update(|m| m.clear());
        self.alerts.update(|m| m.clear());
        self.sync.update(|n| *n += 1);
    }

    /// Records a policy or key change; false for other kinds.
    fn apply_fact(&self, ev: &LiveEvent) -> bool {
        let update: fn(&mut NodeFacts, &LiveEvent) = match ev.kind.as_str() {
            "policy_applied" => |f, ev| f.policy_version = Some(ev.applied.clone()),
            "policy_drift" => |f, ev| {
                f.drifted = ev.drifted;
                f.policy_version = Some(ev.applied.clone());
                f.policy_assigned = Some(ev.assigned.clone());
            },
            "key_warning" => |f, ev| f.key_warning = Some(ev.key_status.clone()),
            _ => return false,
        };
        self.facts.update(|m| {
            let f = m.entry(ev.node_id.clone()).or_default();
            update(f, ev);
            f.at_ms = f.at_ms.max(ev.at.ms);
        });
        self.tick.update(|n| *n += 1);
        true
    }

    pub fn apply(&self, ev: LiveEvent) {
        if !self.apply_fact(&ev) {
            self.apply_status(&ev);
        }
        self.feed.update(|f| {
            f.insert(0, ev);
            f.truncate(25);
        });
    }

    /// Records an alert's firing or resolution (the newer notification wins).
    pub fn apply_alert(&self, alert: LiveAlert) {
        self.alerts.update(|m| {
            let newer = m
                .get(&alert.alert_id)
                .is_none_or(|old| alert.at.ms >= old.at.ms);
            if newer {
                m.insert(alert.alert_id.clone(), alert);
            }
        });
    }

    /// Records a bulk job's progress (counts only move forward).
    pub fn apply_job(&self, job: LiveJob) {
        self.jobs.update(|m| {
            let newer = m.get(&job.job_id).is_none_or(|old| job.newer_than(old));
            if newer {
                m.insert(job.job_id.clone(), job);
            }
        });
    }

    fn apply_status(&self, ev: &LiveEvent) {
        if ev.kind == "status" {
            if let Some(to) = ev.to {
                let at_ms = ev.at.ms;
                self.nodes.update(|m| {
                    let newer = m.get(&ev.node_id).is_none_or(|l| at_ms >= l.at_ms);
                    if newer {
                        m.insert(ev.node_id.clone(), NodeLive { status: to, at_ms });
                    }
                });
                self.tick.update(|n| *n += 1);
                // A node leaving `unseen` (or enrolling: unseen → unseen) may not be
                // listed yet: lists re-fetch.
                if ev.from == Some(Status::Unseen) {
                    self.sync.update(|n| *n += 1);
                }
            }
        } else if ev.kind == "enrolled" {
            // A node we have not listed yet: lists re-fetch.
            self.sync.update(|n| *n += 1);
        }
    }
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

/// Client clock for relative times; `None` during server render and hydration.
#[derive(Clone, Copy)]
pub struct Clock(pub RwSignal<Option<i64>>);

impl Clock {
    pub fn now_or(&self, fallback_ms: i64) -> i64 {
        self.0.get().unwrap_or(fallback_ms)
    }
}

/// The page's live feed. In the browser there is one per page load, shared by
/// every component without context (an island sees none of the shell's), and
/// owned by no component, so none disposes it. On the server, the one the
/// shell provided for this response, or an idle one.
pub fn use_live() -> Live {
    #[cfg(feature = "hydrate")]
    {
        client::SHARED.with(|s| s.1)
    }
    #[cfg(not(feature = "hydrate"))]
    {
        use_context::<Live>().unwrap_or_default()
    }
}

/// The page's clock for relative times (see [`use_live`]).
pub fn use_clock() -> Clock {
    #[cfg(feature = "hydrate")]
    {
        client::SHARED.with(|s| s.2)
    }
    #[cfg(not(feature = "hydrate"))]
    {
        use_context::<Clock>().unwrap_or_else(|| Clock(RwSignal::new(None)))
    }
}

/// Gives a server render its live feed and clock: every component of the
/// response reads the same ones (they show the state before the stream opens).
pub fn provide_for_render() {
    #[cfg(not(feature = "hydrate"))]
    {
        provide_context(Live::new());
        provide_context(Clock(RwSignal::new(None)));
    }
}

/// Starts the clock and the live stream once per page load (browser only;
/// call from an effect, so hydration has read the state the server rendered).
pub fn start() {
    #[cfg(feature = "hydrate")]
    client::start_once();
}

/// Asks for the live feed to start once the page has hydrated
/// ([`start_if_requested`]); pages without a live part (sign-in) never ask.
pub fn request() {
    #[cfg(feature = "hydrate")]
    client::REQUESTED.with(|r| r.set(true));
}

/// Starts the live feed if a part of the page asked for it.
pub fn start_if_requested() {
    #[cfg(feature = "hydrate")]
    if client::REQUESTED.with(std::cell::Cell::get) {
        client::start_once();
    }
}

/// Marks `<body>` with a data attribute (test and styling hooks), browser only.
pub fn mark_body(name: &str, value: &str) {
    #[cfg(feature = "hydrate")]
    {
        if let Some(body) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.body())
        {
            let _ = body.set_attribute(name, value);
        }
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (name, value);
    }
}

/// Copies text to the clipboard (browser only); returns whether it was attempted.
pub fn copy_text(text: &str) -> bool {
    #[cfg(feature = "hydrate")]
    {
        if let Some(w) = web_sys::window() {
            let _ = w.navigator().clipboard().write_text(text);
            return true;
        }
        false
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = text;
        false
    }
}

#[cfg(feature = "hydrate")]
mod client {
    use super::{BusInfo, Clock, Conn, Live};
    use crate::model::LiveEvent;
    use crate::model::alerts::LiveAlert;
    use leptos::prelude::*;
    use std::time::Duration;
    use wasm_bindgen::JsCast as _;
    use wasm_bindgen::prelude::Closure;
    use web_sys::{Event, EventSource, MessageEvent};

    thread_local! {
        /// The page's live feed and clock, under an owner of their own.
        pub(super) static SHARED: (Owner, Live, Clock) = {
            // A root owner makes itself the current one: made inside `with`,
            // which puts back the caller's owner (and its contexts) after.
            let outer = Owner::current().unwrap_or_default();
            outer.with(|| {
                let owner = Owner::new_root(None);
                let (live, clock) = owner.with(|| (Live::new(), Clock(RwSignal::new(None))));
                (owner, live, clock)
            })
        };
        static STARTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        pub(super) static REQUESTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    pub fn start_once() {
        if STARTED.with(|s| s.replace(true)) {
            return;
        }
        let (owner, live, clock) = SHARED.with(|s| (s.0.clone(), s.1, s.2));
        start_clock(clock);
        super::forms::install();
        #[cfg(feature = "islands")]
        owner.with(|| super::regions::watch(live));
        #[cfg(not(feature = "islands"))]
        let _ = owner;
        connect(live, 1000);
    }

    fn start_clock(clock: Clock) {
        clock.0.set(Some(js_sys::Date::now() as i64));
        set_interval(
            move || clock.0.set(Some(js_sys::Date::now() as i64)),
            Duration::from_secs(5),
        );
    }

    fn listen(es: &EventSource, name: &str, f: impl FnMut(MessageEvent) + 'static) {
        let cb = Closure::<dyn FnMut(MessageEvent)>::new(f);
        let _ = es.add_event_listener_with_callback(name, cb.as_ref().unchecked_ref());
        cb.forget();
    }

    /// Opens `/live`; on a refused or closed stream retries after `delay_ms` (backing off).
    fn connect(live: Live, delay_ms: u32) {
        let es = match EventSource::new("/live") {
            Ok(es) => es,
            Err(_) => {
                live.conn.set(Conn::Offline);
                retry(live, delay_ms);
                return;
            }
        };
        let onopen = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            live.conn.set(Conn::Open);
            super::mark_body("data-live", "open");
            // Anything that changed between the page's fetch and now is re-fetched.
            live.resync();
        });
        es.set_onopen(Some(onopen.as_ref().unchecked_ref()));
        onopen.forget();

        let es2 = es.clone();
        let onerror = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            if es2.ready_state() == EventSource::CLOSED {
                live.conn.set(Conn::Offline);
                super::mark_body("data-live", "offline");
                retry(live, delay_ms);
            } else {
                live.conn.set(Conn::Reconnecting);
                super::mark_body("data-live", "reconnecting");
            }
        });
        es.set_onerror(Some(onerror.as_ref().unchecked_ref()));
        onerror.forget();

        listen(&es, "state", move |m: MessageEvent| {
            if let Some(text) = m.data().as_string()
                && let Ok(ev) = serde_json::from_str::<LiveEvent>(&text)
            {
                live.apply(ev);
            }
        });
        listen(&es, "alert", move |m: MessageEvent| {
            if let Some(text) = m.data().as_string()
                && let Ok(a) = serde_json::from_str::<LiveAlert>(&text)
            {
                live.apply_alert(a);
            }
        });
        listen(&es, "job", move |m: MessageEvent| {
            if let Some(text) = m.data().as_string()
                && let Ok(j) = serde_json::from_str::<crate::model::bulk::LiveJob>(&text)
            {
                live.apply_job(j);
            }
        });
        listen(&es, "rollups", move |_| live.rollups.update(|n| *n += 1));
        listen(&es, "resync", move |_| live.resync());
        listen(&es, "bus", move |m: MessageEvent| {
            if let Some(text) = m.data().as_string()
                && let Ok(b) = serde_json::from_str::<BusInfo>(&text)
            {
                live.bus.set(Some(b));
            }
        });
    }

    fn retry(live: Live, delay_ms: u32) {
        let next = (delay_ms * 2).min(30_000);
        set_timeout(
            move || connect(live, next),
            Duration::from_millis(u64::from(delay_ms)),
        );
    }
}
