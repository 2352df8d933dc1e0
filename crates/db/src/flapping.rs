//! Flapping: a node whose liveness changed `transitions` times within
//! `window_secs` is shown as `flapping` (one published transition) instead
//! of publishing every flip. While it flaps its real liveness is still kept
//! in `nodes.status` (and its flips in `last_flip_at`), but not published;
//! once it has been steady for the window it returns to its real status with
//! one transition (see [`flapping_settle`]). `nodes.shown_status` is what
//! the API lists.
//!
//! Every writer of liveness transitions (the ingest, the reconciler, the
//! broker-presence task) passes them through [`transitions_gate`] in the
//! transaction that changed the rows, before `transitions_record`.

use sqlx::{PgPool, Postgres, Transaction};

use crate::DbError;
use crate::outbox::{StatusTransition, transitions_record};

/// The status a flapping node is shown with.
pub const FLAPPING: &str = "flapping";

/// Statuses whose changes among each other are flips.
const LIVENESS: [&str; 4] = ["online", "degraded", "stale", "offline"];

/// Most nodes returned to their real status per call.
pub const SETTLE_BATCH: i64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlapPolicy {
    /// This many liveness changes (the one being made included) ... (below 2: off)
    pub transitions: i32,
    /// ... within this many seconds make a node flapping; this long without
    /// a change makes it steady again.
    pub window_secs: i32,
}

impl FlapPolicy {
    pub const OFF: Self = Self {
        transitions: 0,
        window_secs: 0,
    };

    fn on(self) -> bool {
        self.transitions >= 2 && self.window_secs > 0
    }

    fn window_text(self) -> String {
        if self.window_secs % 60 == 0 {
            format!("{} min", self.window_secs / 60)
        } else {
            format!("{} s", self.window_secs)
        }
    }

    /// The reason of the transition into `flapping`.
    pub fn flapping_reason(self) -> String {
        format!(
            "flapping: {} status changes in {}",
            self.transitions,
            self.window_text()
        )
    }

    /// The reason of the transition out of `flapping`.
    pub fn steady_reason(self) -> String {
        if self.on() {
            format!("steady again: no status change in {}", self.window_text())
        } else {
            "flapping detection turned off".into()
        }
    }
}

fn is_flip(t: &StatusTransition) -> bool {
    LIVENESS.contains(&t.from.as_str()) && LIVENESS.contains(&t.to.as_str())
}

/// Apply the flapping rule to liveness transitions whose node rows this
/// transaction has just updated (and so holds locked). Returns what to
/// record: flips of a flapping node are dropped, and the flip that makes a
/// node flapping becomes its transition to `flapping`.
pub async fn transitions_gate(
    tx: &mut Transaction<'_, Postgres>,
    transitions: Vec<StatusTransition>,
    policy: FlapPolicy,
) -> Result<Vec<StatusTransition>, DbError> {
    if !policy.on() || !transitions.iter().any(is_flip) {
        return Ok(transitions);
    }
    let mut ids: Vec<String> = transitions
        .iter()
        .filter(|t| is_flip(t))
        .map(|t| t.node_id.clone())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    // Published flips in the window: the newest `transitions` history rows
    // are enough to know whether this one makes `transitions`.
    let rows: Vec<(String, bool, i64)> = sqlx::query_as(
        "SELECT n.id, n.flapping_since IS NOT NULL,
                (SELECT count(*) FROM (SELECT h.at, h.from_status, h.to_status
                                       FROM node_status_history h WHERE h.node_id = n.id
                                       ORDER BY h.id DESC LIMIT $2) r
                 WHERE r.at > now() - make_interval(secs => $3)
                   AND r.from_status = ANY($4) AND r.to_status = ANY($4))
         FROM nodes n WHERE n.id = ANY($1)",
    )
    .bind(&ids)
    .bind(i64::from(policy.transitions))
    .bind(f64::from(policy.window_secs))
    .bind(&LIVENESS[..])
    .fetch_all(tx.as_mut())
    .await?;
    let state: std::collections::HashMap<&str, (bool, i64)> = rows
        .iter()
        .map(|(id, flapping, recent)| (id.as_str(), (*flapping, *recent)))
        .collect();
    let mut entering: Vec<String> = Vec::new();
    let mut out = Vec::with_capacity(transitions.len());
    for t in transitions {
        if !is_flip(&t) {
            out.push(t);
            continue;
        }
        let (flapping, recent) = state.get(t.node_id.as_str()).copied().unwrap_or_default();
        if flapping || entering.contains(&t.node_id) {
            continue;
        }
        if recent + 1 >= i64::from(policy.transitions) {
            entering.push(t.node_id.clone());
            out.push(StatusTransition {
                to: FLAPPING.into(),
                reason: policy.flapping_reason(),
                ..t
            });
        } else {
            out.push(t);
        }
    }
    // Rows whose flip time the caller set in this transaction (now() is the
    // transaction's start) are left alone unless they start flapping.
    sqlx::query(
        "UPDATE nodes SET last_flip_at = now(),
                flapping_since = CASE WHEN id = ANY($2) THEN now() ELSE flapping_since END
         WHERE id = ANY($1) AND (last_flip_at IS DISTINCT FROM now() OR id = ANY($2))",
    )
    .bind(&ids)
    .bind(&entering)
    .execute(tx.as_mut())
    .await?;
    Ok(out)
}

/// Return flapping nodes steady for the window to their real status (at
/// most [`SETTLE_BATCH`] per call, one transition each); with the policy
/// off, every flapping node. Several controllers may run this at once.
pub async fn flapping_settle(
    pool: &PgPool,
    policy: FlapPolicy,
) -> Result<Vec<StatusTransition>, DbError> {
    let window = if policy.on() { policy.window_secs } else { 0 };
    let mut tx = pool.begin().await?;
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "WITH due AS (
             SELECT id FROM nodes
             WHERE flapping_since IS NOT NULL
               AND last_flip_at <= now() - make_interval(secs => $1)
             ORDER BY last_flip_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED
         )
         UPDATE nodes n SET flapping_since = NULL, status_changed_at = now()
         FROM due WHERE n.id = due.id
         RETURNING n.id, n.org_id, n.tenant_id, n.status",
    )
    .bind(f64::from(window))
    .bind(SETTLE_BATCH)
    .fetch_all(tx.as_mut())
    .await?;
    let transitions: Vec<StatusTransition> = rows
        .into_iter()
        .filter(|r| r.3 != "decommissioned")
        .map(|(node_id, org_id, tenant_id, to)| StatusTransition {
            node_id,
            org_id,
            tenant_id,
            from: FLAPPING.into(),
            to,
            reason: policy.steady_reason(),
        })
        .collect();
    transitions_record(&mut tx, &transitions).await?;
    tx.commit().await?;
    Ok(transitions)
}
