//! The bound on distinct SLO labels per node and hour.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ritma_protocol::SloCount;
use sqlx::{Postgres, Transaction};

use super::SloRow;
use crate::DbError;

/// Distinct (component, operation) labels one node may have in one hour of
/// SLO rollups; labels past the limit are folded into `other`/`other` ...
pub const SLO_LABELS_PER_NODE_HOUR: usize = 64;
/// ... and distinct outcomes, past which an outcome is folded into `other`.
pub const SLO_OUTCOMES_PER_NODE_HOUR: usize = 16;
pub const SLO_OTHER: &str = "other";

#[derive(Default)]
struct LabelSet {
    pairs: std::collections::HashSet<(String, String)>,
    outcomes: std::collections::HashSet<String>,
}

/// Fold the labels of `counts` past the limits of `known` (which grows),
/// and merge rows that became equal.
fn fold_counts(counts: &mut Vec<SloCount>, known: &mut LabelSet) {
    let mut changed = false;
    for c in counts.iter_mut() {
        let pair = (c.component.clone(), c.operation.clone());
        let is_other = c.component == SLO_OTHER && c.operation == SLO_OTHER;
        if !is_other && !known.pairs.contains(&pair) {
            if known.pairs.len() < SLO_LABELS_PER_NODE_HOUR {
                known.pairs.insert(pair);
            } else {
                c.component = SLO_OTHER.into();
                c.operation = SLO_OTHER.into();
                changed = true;
            }
        }
        if c.outcome != SLO_OTHER && !known.outcomes.contains(&c.outcome) {
            if known.outcomes.len() < SLO_OUTCOMES_PER_NODE_HOUR {
                known.outcomes.insert(c.outcome.clone());
            } else {
                c.outcome = SLO_OTHER.into();
                changed = true;
            }
        }
    }
    if changed {
        let mut merged: Vec<SloCount> = Vec::with_capacity(counts.len());
        for c in counts.drain(..) {
            match merged.iter_mut().find(|m| {
                m.component == c.component && m.operation == c.operation && m.outcome == c.outcome
            }) {
                Some(m) => m.count = m.count.saturating_add(c.count),
                None => merged.push(c),
            }
        }
        *counts = merged;
    }
}

/// Bound the SLO labels per node and hour against what the rollups already
/// hold: a node inventing new component/operation labels (or outcomes)
/// cannot grow `slo_hourly` past the limits; the excess counts under
/// `other`.
pub(super) async fn slo_labels_fold(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[&SloRow],
) -> Result<Vec<SloRow>, DbError> {
    if rows.is_empty() {
        return Ok(vec![]);
    }
    let mut keys: Vec<(&str, DateTime<Utc>)> = rows
        .iter()
        .map(|r| {
            (
                r.period.origin.node_id.as_str(),
                crate::telemetry::rollup_hour(r.period.period_start),
            )
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    // One worker at a time per node and hour (transaction-scoped advisory
    // locks, taken in one order by every worker), so concurrent batches
    // cannot each add up to the limit.
    sqlx::query(
        "SELECT count(pg_advisory_xact_lock(l.k)) FROM (
             SELECT DISTINCT hashtextextended(k.node_id || '|' || k.hour::text, 18) AS k
             FROM UNNEST($1::text[], $2::timestamptz[]) AS k(node_id, hour)
             ORDER BY 1) l",
    )
    .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .execute(tx.as_mut())
    .await?;
    let stored: Vec<(String, DateTime<Utc>, String, String, String)> = sqlx::query_as(
        "SELECT s.node_id, s.hour, s.component, s.operation, s.outcome
         FROM UNNEST($1::text[], $2::timestamptz[]) AS k(node_id, hour)
         JOIN slo_hourly s ON s.node_id = k.node_id AND s.hour = k.hour",
    )
    .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .fetch_all(tx.as_mut())
    .await?;
    let mut known: HashMap<(String, DateTime<Utc>), LabelSet> = HashMap::new();
    for (node, hour, component, operation, outcome) in stored {
        let set = known.entry((node, hour)).or_default();
        if !(component == SLO_OTHER && operation == SLO_OTHER) {
            set.pairs.insert((component, operation));
        }
        if outcome != SLO_OTHER {
            set.outcomes.insert(outcome);
        }
    }
    Ok(rows
        .iter()
        .map(|r| {
            let mut row = (*r).clone();
            let key = (
                row.period.origin.node_id.clone(),
                crate::telemetry::rollup_hour(row.period.period_start),
            );
            fold_counts(&mut row.counts, known.entry(key).or_default());
            row
        })
        .collect())
}
