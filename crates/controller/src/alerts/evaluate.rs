//! The alert evaluator: turns node state changes (the inbox the outbox
//! publisher fills) into alert episodes, moves pending ones to firing after
//! their `for`, queues notifications (first, repeated, resolved) unless a
//! silence covers them, and watches the control plane's own conditions.
//! Every step is a transaction over locked rows, so several controllers can
//! run it side by side.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use chrono::Utc;
use ritma_db::DbError;
use ritma_db::alerts::{self as store, AlertContext, DeliveryNew, RuleRecord};
use ritma_protocol::alerts::{
    AlertEvent, AlertNotification, AlertStatus, Condition, conditions_of,
};
use ritma_protocol::{NodeId, OrgId, SCHEMA_VERSION, StateChangeKind, TenantId};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const BATCH: i64 = 500;
/// Resolved alerts and finished deliveries are kept this long.
const KEEP_DAYS: i64 = 30;
/// The window of `dead_letter_spike`.
pub const DEAD_LETTER_WINDOW_SECS: i64 = 300;

const CONTROL_PLANE: [&str; 2] = ["ingest_lag", "dead_letter_spike"];

pub struct Evaluator {
    pub pool: PgPool,
    pub js: jetstream::Context,
    pub every: Duration,
    /// Woken by the outbox publisher when it moved state changes here.
    pub wake: Arc<Notify>,
    /// Wakes the delivery worker when notifications were queued.
    pub deliver: Arc<Notify>,
}

impl Evaluator {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut consumer = None;
        let mut pruned: Option<Instant> = None;
        let mut next_tick = Instant::now();
        loop {
            let mut queued = false;
            loop {
                match self.inbox_once().await {
                    Ok((n, q)) => {
                        queued |= q;
                        if (n as i64) < BATCH {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "evaluating state changes for alerts failed; retrying");
                        break;
                    }
                }
            }
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + self.every;
                if let Err(e) = self.control_plane(&mut consumer).await {
                    tracing::warn!(error = %e, "evaluating control-plane alerts failed");
                }
                if pruned.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                    pruned = Some(Instant::now());
                    if let Err(e) = store::alerts_prune(&self.pool, KEEP_DAYS).await {
                        tracing::warn!(error = %e, "pruning old alerts failed");
                    }
                }
            }
            match self.notify_due().await {
                Ok(q) => queued |= q,
                Err(e) => tracing::warn!(error = %e, "queueing alert notifications failed"),
            }
            if queued {
                self.deliver.notify_one();
            }
            let wait = next_tick.saturating_duration_since(Instant::now());
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One batch of state changes: open and close episodes. How many rows,
    /// and whether notifications were queued.
    async fn inbox_once(&self) -> Result<(usize, bool), DbError> {
        let mut tx = self.pool.begin().await?;
        let rows = store::inbox_lock_batch(&mut tx, BATCH).await?;
        if rows.is_empty() {
            return Ok((0, false));
        }
        let orgs: Vec<String> = rows
            .iter()
            .map(|r| r.org_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let rules = store::rules_of_orgs(&mut tx, &orgs, &CONTROL_PLANE).await?;
        let node_ids: Vec<String> = rows
            .iter()
            .map(|r| r.node_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let labels: HashMap<String, serde_json::Value> = store::node_labels(&mut tx, &node_ids)
            .await?
            .into_iter()
            .collect();
        let mut resolved = Vec::new();
        for row in &rows {
            let Ok(change) = serde_json::from_value::<StateChangeKind>(row.payload.clone()) else {
                tracing::warn!(
                    id = row.id,
                    "unreadable state change skipped by the alert evaluator"
                );
                continue;
            };
            let node_labels = labels.get(&row.node_id);
            for condition in conditions_of(&change) {
                let (Condition::Open { event, detail } | Condition::Close { event, detail }) =
                    &condition;
                let matching = rules.iter().filter(|r| {
                    r.org_id == row.org_id
                        && r.event == event.as_str()
                        && r.tenant_id.as_ref().is_none_or(|t| *t == row.tenant_id)
                        && labels_match(&r.labels, node_labels)
                });
                for rule in matching {
                    match condition {
                        Condition::Open { .. } => {
                            store::alert_open(
                                &mut tx,
                                rule,
                                &row.node_id,
                                Some(&row.tenant_id),
                                Some(&row.node_id),
                                detail,
                                row.created_at,
                            )
                            .await?;
                        }
                        Condition::Close { .. } => {
                            if let Some(r) =
                                store::alert_close(&mut tx, rule.id, &row.node_id, detail).await?
                                && r.was_notified
                            {
                                resolved.push(r.id);
                            }
                        }
                    }
                }
            }
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        store::inbox_delete(&mut tx, &ids).await?;
        let queued = notify_resolved(&mut tx, &resolved).await?;
        tx.commit().await?;
        Ok((rows.len(), queued))
    }

    /// Fire pending alerts whose `for` passed, then queue the notifications
    /// that are due (first and repeated) for alerts no silence covers.
    async fn notify_due(&self) -> Result<bool, DbError> {
        let mut queued = false;
        loop {
            let mut tx = self.pool.begin().await?;
            store::alerts_due_fire(&mut tx, BATCH).await?;
            let due = store::alerts_due_notify(&mut tx, BATCH).await?;
            let contexts = store::alert_context(&mut tx, &due).await?;
            queue(&mut tx, &contexts, AlertStatus::Firing).await?;
            let one_shot: Vec<Uuid> = contexts
                .iter()
                .filter(|c| AlertEvent::parse(&c.event).is_some_and(AlertEvent::is_one_shot))
                .map(|c| c.id)
                .collect();
            store::alerts_resolve_quietly(&mut tx, &one_shot).await?;
            tx.commit().await?;
            queued |= !due.is_empty();
            if (due.len() as i64) < BATCH {
                return Ok(queued);
            }
        }
    }

    /// `ingest_lag` and `dead_letter_spike`: conditions of the whole control
    /// plane, measured here and compared with each rule's threshold.
    async fn control_plane(
        &self,
        consumer: &mut Option<crate::tasks::reconciler::IngestConsumer>,
    ) -> Result<(), ControlPlaneError> {
        let rules = store::rules_watching(&self.pool, &CONTROL_PLANE).await?;
        if rules.is_empty() {
            return Ok(());
        }
        let mut lag: Option<i64> = None;
        let mut dead: Option<i64> = None;
        for rule in rules {
            let threshold = rule.threshold.unwrap_or(0);
            let (value, what) = match AlertEvent::parse(&rule.event) {
                Some(AlertEvent::IngestLag) => {
                    if lag.is_none() {
                        let mark = crate::tasks::reconciler::watermark(&self.js, consumer).await?;
                        lag = Some((Utc::now() - mark).num_seconds().max(0));
                    }
                    (lag.unwrap_or(0), "s ingest lag")
                }
                Some(AlertEvent::DeadLetterSpike) => {
                    if dead.is_none() {
                        dead = Some(
                            store::dead_letters_recent(&self.pool, DEAD_LETTER_WINDOW_SECS).await?,
                        );
                    }
                    (dead.unwrap_or(0), " dead letters in 5 min")
                }
                _ => continue,
            };
            let firing = value > threshold;
            let detail = format!("{value}{what} (threshold {threshold})");
            let open = store::alert_is_open(&self.pool, rule.id, "").await?;
            if firing == open {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            if firing {
                store::alert_open(&mut tx, &rule, "", None, None, &detail, Utc::now()).await?;
            } else if let Some(r) = store::alert_close(&mut tx, rule.id, "", &detail).await?
                && r.was_notified
            {
                notify_resolved(&mut tx, &[r.id]).await?;
                self.deliver.notify_one();
            }
            tx.commit().await?;
        }
        Ok(())
    }
}

/// Why the control plane's conditions were not evaluated this round.
#[derive(Debug, thiserror::Error)]
enum ControlPlaneError {
    #[error("database: {0}")]
    Database(#[from] DbError),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("ingest watermark: {0}")]
    Bus(#[from] ritma_bus::BusError),
}

/// Every `key: value` of the rule's selector is among the node's labels.
pub fn labels_match(selector: &serde_json::Value, node: Option<&serde_json::Value>) -> bool {
    let Some(wanted) = selector.as_object() else {
        return true;
    };
    wanted
        .iter()
        .all(|(k, v)| node.and_then(|n| n.get(k)) == Some(v))
}

async fn notify_resolved(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[Uuid],
) -> Result<bool, DbError> {
    let mut told = Vec::new();
    for id in ids {
        // A silence that covers the alert now keeps its resolution quiet too.
        if !store::silenced(tx, *id).await? {
            told.push(*id);
        }
    }
    let contexts = store::alert_context(tx, &told).await?;
    queue(tx, &contexts, AlertStatus::Resolved).await?;
    Ok(!contexts.is_empty())
}

/// One delivery per channel of the alert's rule, and one on the bus.
async fn queue(
    tx: &mut Transaction<'_, Postgres>,
    alerts: &[AlertContext],
    status: AlertStatus,
) -> Result<(), DbError> {
    let mut rows = Vec::new();
    for a in alerts {
        let Some(n) = notification(a, status) else {
            tracing::warn!(alert = %a.id, "alert with unreadable ids or event skipped");
            continue;
        };
        let body = serde_json::to_value(&n).unwrap_or_default();
        for channel in a.channels.iter().copied().map(Some).chain([None]) {
            rows.push(DeliveryNew {
                org_id: a.org_id.clone(),
                channel_id: channel,
                alert_id: Some(a.id),
                status: status.as_str().into(),
                notification: body.clone(),
            });
        }
    }
    store::deliveries_enqueue(tx, &rows).await
}

pub fn notification(a: &AlertContext, status: AlertStatus) -> Option<AlertNotification> {
    let event = AlertEvent::parse(&a.event)?;
    let node = a.node_id.as_deref().map(NodeId::new).transpose().ok()?;
    let tenant = a.tenant_id.as_deref().map(TenantId::new).transpose().ok()?;
    let who = match (&node, &a.hostname) {
        (Some(n), Some(h)) if h != n.as_str() => format!("node {n} ({h})"),
        (Some(n), _) => format!("node {n}"),
        (None, _) => "the control plane".into(),
    };
    let summary = match (event, status) {
        (AlertEvent::NodeOffline, AlertStatus::Resolved) => format!("{who} is back"),
        (AlertEvent::NodeOffline, _) => format!("{who} is offline"),
        (AlertEvent::NodeDegraded, AlertStatus::Resolved) => format!("{who} is no longer degraded"),
        (AlertEvent::NodeDegraded, _) => format!("{who} is degraded"),
        (AlertEvent::NodeFlapping, AlertStatus::Resolved) => format!("{who} is steady again"),
        (AlertEvent::NodeFlapping, _) => format!("{who} is flapping"),
        (AlertEvent::PolicyDrift, AlertStatus::Resolved) => {
            format!("{who} runs its assigned policy")
        }
        (AlertEvent::PolicyDrift, _) => format!("{who} runs another policy than assigned"),
        (AlertEvent::KeyWarning, AlertStatus::Resolved) => {
            format!("{who} no longer signs with a bad key")
        }
        (AlertEvent::KeyWarning, _) => format!("{who} signs with a bad key"),
        (AlertEvent::NodeEnrolled, _) => format!("{who} enrolled"),
        (AlertEvent::PolicyRejected, _) => format!("{who} refused a policy"),
        (AlertEvent::IngestLag, AlertStatus::Resolved) => "the ingest caught up".into(),
        (AlertEvent::IngestLag, _) => "the ingest is behind".into(),
        (AlertEvent::DeadLetterSpike, AlertStatus::Resolved) => {
            "dead letters are back to normal".into()
        }
        (AlertEvent::DeadLetterSpike, _) => "dead letters are piling up".into(),
    };
    Some(AlertNotification {
        v: SCHEMA_VERSION,
        alert_id: a.id,
        org_id: OrgId::new(a.org_id.clone()).ok()?,
        tenant_id: tenant,
        node_id: node,
        event,
        status,
        at: match status {
            AlertStatus::Resolved => a.resolved_at.unwrap_or(a.opened_at),
            _ => a.opened_at,
        },
        rule_id: a.rule_id,
        rule_name: a.rule_name.clone(),
        summary,
        detail: a.detail.chars().take(512).collect(),
    })
}

/// Seed a new rule with the nodes already in its condition (status events).
pub async fn seed_rule(
    tx: &mut Transaction<'_, Postgres>,
    rule: &RuleRecord,
) -> Result<u64, DbError> {
    let status = match AlertEvent::parse(&rule.event) {
        Some(AlertEvent::NodeOffline) => "offline",
        Some(AlertEvent::NodeDegraded) => "degraded",
        Some(AlertEvent::NodeFlapping) => "flapping",
        _ => return Ok(0),
    };
    store::alerts_seed_status(tx, rule, status).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_selector_matches_nodes_that_carry_all_its_labels() {
        let node = json!({"env": "prod", "role": "web"});
        assert!(labels_match(&json!({}), Some(&node)));
        assert!(labels_match(&json!({"env": "prod"}), Some(&node)));
        assert!(!labels_match(&json!({"env": "dev"}), Some(&node)));
        assert!(!labels_match(
            &json!({"env": "prod", "zone": "a"}),
            Some(&node)
        ));
        assert!(!labels_match(&json!({"env": "prod"}), None));
    }
}
