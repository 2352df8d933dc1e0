//! Which claims of a batch name an active node: the database lookup and the
//! claims remembered across batches while the admission epoch stays the same.

use std::collections::HashMap;
use std::sync::Mutex;

use sqlx::{Postgres, Transaction};

use super::Claim;
use crate::DbError;

/// Claims found to name an active node, remembered across batches (shared
/// by a controller's workers) while the admission epoch stays the same: a
/// batch then looks up only the nodes it has not seen, where it looked up
/// every node it mentions. The epoch moves whenever a node is decommissioned,
/// deleted or moved to another org or tenant (a trigger, see the migration
/// `node_admission_epoch`), and a worker that reads a new epoch forgets them
/// all. Read at the start of the batch's transaction, it gives the same
/// guarantee as the lookup did: a change committed before the batch began is
/// seen.
#[derive(Default)]
pub struct AdmittedClaims(Mutex<AdmittedAt>);

#[derive(Default)]
struct AdmittedAt {
    epoch: i64,
    /// Node id to its (org, tenant): a node id names one node.
    nodes: HashMap<String, (String, String)>,
}

/// A bound on what is remembered (about 100 bytes per node).
const ADMITTED_MAX: usize = 1_000_000;

impl AdmittedClaims {
    fn lock(&self) -> std::sync::MutexGuard<'_, AdmittedAt> {
        // A worker that panicked holding the lock left a consistent map.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The claims not known to be admitted at `epoch`.
    pub(super) fn unknown<'a>(&self, epoch: i64, claims: &[Claim<'a>]) -> Vec<Claim<'a>> {
        let mut at = self.lock();
        if epoch > at.epoch {
            at.epoch = epoch;
            at.nodes.clear();
        }
        if epoch != at.epoch {
            return claims.to_vec();
        }
        claims
            .iter()
            .filter(|(node, org, tenant)| {
                at.nodes
                    .get(*node)
                    .is_none_or(|(o, t)| o != org || t != tenant)
            })
            .copied()
            .collect()
    }

    /// Remember claims found admitted by a lookup made at `epoch`.
    pub(super) fn remember(
        &self,
        epoch: i64,
        admitted: impl Iterator<Item = (String, String, String)>,
    ) {
        let mut at = self.lock();
        if epoch != at.epoch {
            return;
        }
        for (node, org, tenant) in admitted {
            if at.nodes.len() >= ADMITTED_MAX {
                at.nodes.clear();
            }
            at.nodes.insert(node, (org, tenant));
        }
    }
}

pub(super) async fn admission_epoch(tx: &mut Transaction<'_, Postgres>) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar("SELECT epoch FROM node_admission_epoch")
        .fetch_one(tx.as_mut())
        .await?)
}

/// The claims of a batch that name no active node in that org and tenant.
/// Only these come back: reading every node's scope back (four strings per
/// node per batch) was an eighth of the controller's ingest CPU, to find
/// what is almost always nothing.
///
/// With `lock`, the claimed nodes' rows (the ones heartbeats update) are
/// locked in id order, so concurrent workers never deadlock, and the check
/// reads the locked rows. Nodes that only get summary rows are checked
/// without a lock (a row lock is a tuple write and a WAL record per node, and
/// summaries never update the node row).
pub(super) async fn claims_refused(
    tx: &mut Transaction<'_, Postgres>,
    claims: &[Claim<'_>],
    lock: bool,
) -> Result<Vec<(String, String, String)>, DbError> {
    if claims.is_empty() {
        return Ok(vec![]);
    }
    // Joins on UNNEST, not `id = ANY($1)`: measured here, the planner ran
    // the ANY form as a sequential scan testing every row against the whole
    // array (10k nodes x 1000 ids: 15-20 s per batch under load), while the
    // join probes the primary key once per id.
    let sql = if lock {
        "SELECT c.node_id, c.org_id, c.tenant_id
         FROM UNNEST($1::text[], $2::text[], $3::text[]) AS c(node_id, org_id, tenant_id)
         LEFT JOIN (SELECT n.id, n.org_id, n.tenant_id, n.status
                    FROM (SELECT DISTINCT id FROM UNNEST($1::text[]) AS u(id)) u
                    JOIN nodes n ON n.id = u.id
                    ORDER BY n.id FOR UPDATE OF n) l ON l.id = c.node_id
         WHERE l.id IS NULL OR l.org_id <> c.org_id OR l.tenant_id <> c.tenant_id
            OR l.status = 'decommissioned'"
    } else {
        "SELECT c.node_id, c.org_id, c.tenant_id
         FROM UNNEST($1::text[], $2::text[], $3::text[]) AS c(node_id, org_id, tenant_id)
         WHERE NOT EXISTS (SELECT 1 FROM nodes n
                           WHERE n.id = c.node_id AND n.org_id = c.org_id
                             AND n.tenant_id = c.tenant_id AND n.status <> 'decommissioned')"
    };
    let refused = sqlx::query_as(sql)
        .bind(claims.iter().map(|c| c.0).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.1).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.2).collect::<Vec<_>>())
        .fetch_all(tx.as_mut())
        .await?;
    Ok(refused)
}
