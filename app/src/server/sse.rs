//! `GET /live`: each browser's stream of server-sent events. The state changes and
//! alerts of the org its session shows, while the person may see that org (re-checked
//! with the controller), with a replay from `Last-Event-ID` on reconnect.

use super::api::Api;
use super::guard::{ClientIp, store_down};
use super::live::{BusState, HubMsg};
use super::session::Sessions;
use super::{AppState, metrics, replay};
use crate::model::{LiveEvent, OrgInfo};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

fn bus_event(bus: &BusState, org: &str, allowed: bool) -> SseEvent {
    let (connected, error) = if allowed {
        (bus.live(), bus.error.clone())
    } else {
        (false, Some(format!("no access to org {org}")))
    };
    SseEvent::default()
        .event("bus")
        .data(serde_json::json!({ "connected": connected, "error": error }).to_string())
}

fn state_event(ev: &LiveEvent) -> SseEvent {
    SseEvent::default()
        .event("state")
        .id(ev.event_id.to_string())
        .data(serde_json::to_string(ev).unwrap_or_default())
}

fn alert_event(alert: &crate::model::alerts::LiveAlert) -> SseEvent {
    SseEvent::default()
        .event("alert")
        .data(serde_json::to_string(alert).unwrap_or_default())
}

fn job_event(job: &crate::model::bulk::LiveJob) -> SseEvent {
    SseEvent::default()
        .event("job")
        .data(serde_json::to_string(job).unwrap_or_default())
}

fn rollups_event() -> SseEvent {
    SseEvent::default().event("rollups").data("{}")
}

fn resync_event() -> SseEvent {
    SseEvent::default().event("resync").data("{}")
}

/// `GET /live`: server-sent events of the org the session shows, while the
/// person may see it.
pub(super) async fn live_stream(
    State(st): State<AppState>,
    axum::Extension(ClientIp(ip)): axum::Extension<ClientIp>,
    headers: HeaderMap,
) -> Response {
    let (id, session) = match st.sessions.from_headers(&headers).await {
        Ok(Some(found)) => found,
        Ok(None) => return (StatusCode::UNAUTHORIZED, "sign in first").into_response(),
        Err(e) => return store_down(&e),
    };
    let api = st.api.for_client(ip);
    // Which orgs the person may see now (not only at sign-in).
    let access = match Access::check(&api, &session.token).await {
        Ok((a, orgs)) => {
            if let Err(e) = st.sessions.set_orgs(&id, orgs).await {
                tracing::warn!(error = %e, "live: cannot store the person's orgs");
            }
            a
        }
        Err(crate::model::AppError::Unauthorized) => {
            return (StatusCode::UNAUTHORIZED, "sign in again").into_response();
        }
        Err(e) => {
            tracing::warn!(error = %e, "live: cannot check the person's orgs; using the session's");
            Access::from_orgs(session.orgs.iter().map(|o| o.id.clone()))
        }
    };
    // Subscribed before the replay is read: nothing falls in between.
    let rx = st.recent.subscribe();
    let mut out = std::collections::VecDeque::new();
    let mut replayed_upto = 0;
    if let Some(last) = replay::last_event_id(&headers)
        && access.allows(&session.org)
    {
        // A reconnect (perhaps from another replica): what changed since.
        let resume = st.recent.resume(&session.org, last);
        if resume.resync {
            out.push_back(resync_event());
        }
        for ev in resume.events {
            replayed_upto = replayed_upto.max(ev.event_id);
            out.push_back(state_event(&ev));
        }
    }
    let stream = events(LiveCtx {
        replayed_upto,
        session_read: None,
        org: session.org.clone(),
        sid: id,
        sessions: st.sessions.clone(),
        api,
        recheck: st.config.role_recheck,
        access,
        checked: tokio::time::Instant::now(),
        rx,
        bus: st.hub.bus.clone(),
        closing: st.closing.clone(),
        out,
        _client: st.metrics.sse_client(),
        metrics: st.metrics.clone(),
    });
    let mut resp = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// The orgs a person may see, as the controller says with their own token.
#[derive(Clone, Debug)]
struct Access {
    orgs: std::collections::HashSet<String>,
}

impl Access {
    fn from_orgs(orgs: impl IntoIterator<Item = String>) -> Self {
        Access {
            orgs: orgs.into_iter().collect(),
        }
    }

    /// `GET /api/orgs` lists the orgs the caller has a role in (every org
    /// for the operator's admin token, including orgs created later).
    async fn check(
        api: &Api,
        token: &str,
    ) -> Result<(Access, Vec<OrgInfo>), crate::model::AppError> {
        let orgs = api.orgs(token).await?;
        Ok((Self::from_orgs(orgs.iter().map(|o| o.id.clone())), orgs))
    }

    fn allows(&self, org: &str) -> bool {
        self.orgs.contains(org)
    }
}

/// One browser's live stream.
struct LiveCtx {
    /// The org this stream currently delivers (the session's shown org).
    org: String,
    sid: String,
    sessions: Sessions,
    api: Api,
    recheck: Duration,
    access: Access,
    checked: tokio::time::Instant,
    rx: broadcast::Receiver<Arc<HubMsg>>,
    bus: tokio::sync::watch::Receiver<BusState>,
    closing: tokio::sync::watch::Receiver<bool>,
    /// Events to send before waiting again.
    out: std::collections::VecDeque<SseEvent>,
    /// Counts this stream in the SSE clients gauge while it lives.
    _client: metrics::SseClient,
    metrics: Arc<metrics::ConsoleMetrics>,
    /// Replayed on resume: not sent again when they also arrive live.
    replayed_upto: i64,
    /// When the session was last read from the store.
    session_read: Option<tokio::time::Instant>,
}

enum Step {
    Continue,
    End,
}

impl LiveCtx {
    fn bus_now(&mut self) -> SseEvent {
        let allowed = self.access.allows(&self.org);
        bus_event(&self.bus.borrow_and_update(), &self.org, allowed)
    }

    /// Follow the session: the org it shows now, and (at most every
    /// `recheck`, or at once for an org not known to be allowed) whether the
    /// person still has a role there.
    async fn follow_session(&mut self) -> Step {
        // At most once a second (not once per bus event): a sign-out or an
        // org switch on any replica is followed within that.
        if self
            .session_read
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return Step::Continue;
        }
        self.session_read = Some(tokio::time::Instant::now());
        let session = match self.sessions.get(&self.sid).await {
            Ok(Some(s)) => s,
            Ok(None) => return Step::End, // signed out (on any replica) or expired
            Err(e) => {
                // Store briefly away: the stream goes on with what it knows.
                tracing::warn!(error = %e, "live: cannot read the session");
                return Step::Continue;
            }
        };
        let switched = session.org != self.org;
        let due = self.checked.elapsed() >= self.recheck
            || (switched && !self.access.allows(&session.org));
        let mut changed = switched;
        if due {
            self.checked = tokio::time::Instant::now();
            match Access::check(&self.api, &session.token).await {
                Ok((a, orgs)) => {
                    if let Err(e) = self.sessions.set_orgs(&self.sid, orgs).await {
                        tracing::warn!(error = %e, "live: cannot store the person's orgs");
                    }
                    if a.allows(&session.org) != self.access.allows(&session.org) {
                        changed = true;
                    }
                    self.access = a;
                }
                Err(crate::model::AppError::Unauthorized) => return Step::End,
                Err(e) => {
                    tracing::warn!(error = %e, "live: role re-check failed; keeping the last answer")
                }
            }
        }
        if changed {
            self.org = session.org;
            self.out.push_back(resync_event());
            let ev = self.bus_now();
            self.out.push_back(ev);
        }
        Step::Continue
    }

    async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(ev) = self.out.pop_front() {
                return Some(ev);
            }
            if *self.closing.borrow() {
                return None;
            }
            let until_check = self.recheck.saturating_sub(self.checked.elapsed());
            let poll = until_check.min(Duration::from_secs(1));
            tokio::select! {
                _ = self.closing.changed() => return None,
                msg = self.rx.recv() => {
                    if let Step::End = self.follow_session().await {
                        return None;
                    }
                    match msg {
                        Ok(m) => match m.as_ref() {
                            HubMsg::State { org, event } => {
                                if *org == self.org
                                    && self.access.allows(org)
                                    && event.event_id > self.replayed_upto
                                {
                                    self.metrics.live_events.inc();
                                    self.out.push_back(state_event(event));
                                }
                            }
                            HubMsg::Alert { org, alert } => {
                                if *org == self.org && self.access.allows(org) {
                                    self.out.push_back(alert_event(alert));
                                }
                            }
                            HubMsg::Job { org, job } => {
                                if *org == self.org && self.access.allows(org) {
                                    self.out.push_back(job_event(job));
                                }
                            }
                            HubMsg::Rollups { org } => {
                                if *org == self.org && self.access.allows(org) {
                                    self.out.push_back(rollups_event());
                                }
                            }
                            HubMsg::Resync => self.out.push_back(resync_event()),
                        },
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "live: a browser fell behind; asking it to re-sync");
                            self.out.push_back(resync_event());
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
                changed = self.bus.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    let ev = self.bus_now();
                    self.out.push_back(ev);
                }
                _ = tokio::time::sleep(poll) => {
                    if let Step::End = self.follow_session().await {
                        return None;
                    }
                }
            }
        }
    }
}

fn events(mut ctx: LiveCtx) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let first = ctx.bus_now();
    ctx.out.push_back(first);
    futures::stream::unfold(ctx, |mut ctx| async move {
        let ev = ctx.next_event().await?;
        Some((Ok(ev), ctx))
    })
}
