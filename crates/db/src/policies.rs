//! Rulepacks, policy assignments, each node's effective policy, and drift.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::DbError;
use crate::outbox::NodeChange;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RulepackRecord {
    pub name: String,
    pub revision: i32,
    pub description: String,
    pub frameworks: sqlx::types::Json<Vec<String>>,
    pub content: String,
    pub sha256: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// The org control key's signature, made when the revision was created
    /// (None for revisions older than signing: nodes refuse those).
    pub signed_by: Option<String>,
    pub signature: Option<String>,
}

const RULEPACK_COLUMNS: &str =
    "name, revision, description, frameworks, content, sha256, created_by, created_at,
     signed_by, signature";

pub struct NewRulepack<'a> {
    pub org_id: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub frameworks: &'a [String],
    pub content: &'a str,
    pub sha256: &'a str,
    pub created_by: &'a str,
}

/// A control-key signature: who signed, and the signature.
pub struct Signed {
    pub signed_by: String,
    pub signature: String,
}

/// Add the next revision of a rulepack, signed by `sign(revision)`, unless
/// the latest one already has this content and is signed (then that one is
/// returned, `false`).
pub async fn rulepack_revision_insert(
    tx: &mut Transaction<'_, Postgres>,
    r: &NewRulepack<'_>,
    sign: impl FnOnce(i32) -> Result<Signed, DbError>,
) -> Result<(RulepackRecord, bool), DbError> {
    // Serialise revisions of one rulepack name.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1 || '/' || $2))")
        .bind(r.org_id)
        .bind(r.name)
        .execute(tx.as_mut())
        .await?;
    let latest: Option<RulepackRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RULEPACK_COLUMNS} FROM rulepacks WHERE org_id = $1 AND name = $2
         ORDER BY revision DESC LIMIT 1"
    )))
    .bind(r.org_id)
    .bind(r.name)
    .fetch_optional(tx.as_mut())
    .await?;
    let next = latest.as_ref().map_or(1, |l| l.revision + 1);
    if let Some(latest) = latest.filter(|l| {
        l.sha256 == r.sha256
            && l.frameworks.0 == r.frameworks
            && l.description == r.description
            && l.signature.is_some()
    }) {
        return Ok((latest, false));
    }
    let signed = sign(next)?;
    let created = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO rulepacks (org_id, name, revision, description, frameworks, content, sha256,
                                created_by, signed_by, signature)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         RETURNING {RULEPACK_COLUMNS}"
    )))
    .bind(r.org_id)
    .bind(r.name)
    .bind(next)
    .bind(r.description)
    .bind(sqlx::types::Json(r.frameworks))
    .bind(r.content)
    .bind(r.sha256)
    .bind(r.created_by)
    .bind(signed.signed_by)
    .bind(signed.signature)
    .fetch_one(tx.as_mut())
    .await?;
    Ok((created, true))
}

/// Every signed revision of an org's rulepacks (for a key rotation).
pub async fn rulepack_signed_all(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
) -> Result<Vec<RulepackRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RULEPACK_COLUMNS} FROM rulepacks WHERE org_id = $1 AND signature IS NOT NULL
         ORDER BY name, revision FOR UPDATE"
    )))
    .bind(org_id)
    .fetch_all(tx.as_mut())
    .await?)
}

pub async fn rulepack_signature_set(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
    name: &str,
    revision: i32,
    signed: &Signed,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE rulepacks SET signed_by = $4, signature = $5
         WHERE org_id = $1 AND name = $2 AND revision = $3",
    )
    .bind(org_id)
    .bind(name)
    .bind(revision)
    .bind(&signed.signed_by)
    .bind(&signed.signature)
    .execute(tx.as_mut())
    .await?;
    Ok(())
}

/// The latest revision of every rulepack of an org.
pub async fn rulepack_list(pool: &PgPool, org_id: &str) -> Result<Vec<RulepackRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT ON (name) {RULEPACK_COLUMNS} FROM rulepacks WHERE org_id = $1
         ORDER BY name, revision DESC"
    )))
    .bind(org_id)
    .fetch_all(pool)
    .await?)
}

/// Every revision of one rulepack, newest first.
pub async fn rulepack_revisions(
    pool: &PgPool,
    org_id: &str,
    name: &str,
) -> Result<Vec<RulepackRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RULEPACK_COLUMNS} FROM rulepacks WHERE org_id = $1 AND name = $2
         ORDER BY revision DESC"
    )))
    .bind(org_id)
    .bind(name)
    .fetch_all(pool)
    .await?)
}

/// One revision (or the latest when `revision` is None).
pub async fn rulepack_get(
    pool: &PgPool,
    org_id: &str,
    name: &str,
    revision: Option<i32>,
) -> Result<Option<RulepackRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RULEPACK_COLUMNS} FROM rulepacks
         WHERE org_id = $1 AND name = $2 AND ($3::int IS NULL OR revision = $3)
         ORDER BY revision DESC LIMIT 1"
    )))
    .bind(org_id)
    .bind(name)
    .bind(revision)
    .fetch_optional(pool)
    .await?)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AssignmentRecord {
    pub id: Uuid,
    pub scope_kind: String,
    pub scope_value: String,
    pub rulepack: String,
    pub revision: Option<i32>,
    pub mode: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// Nodes whose effective policy comes from this assignment.
    pub nodes: i64,
}

const ASSIGNMENT_COLUMNS: &str =
    "a.id, a.scope_kind, a.scope_value, a.rulepack, a.revision, a.mode, a.created_by, a.created_at,
     (SELECT count(*) FROM nodes n WHERE n.policy_assignment = a.id) AS nodes";

pub struct NewAssignment<'a> {
    pub org_id: &'a str,
    pub scope_kind: &'a str,
    pub scope_value: &'a str,
    pub selector: Option<BTreeMap<String, String>>,
    pub rulepack: &'a str,
    pub revision: Option<i32>,
    pub mode: &'a str,
    pub created_by: &'a str,
}

/// Add an assignment. A node-scoped one replaces the node's previous one.
pub async fn assignment_insert(
    tx: &mut Transaction<'_, Postgres>,
    a: &NewAssignment<'_>,
) -> Result<Uuid, DbError> {
    if a.scope_kind == "node" {
        sqlx::query(
            "DELETE FROM policy_assignments
             WHERE org_id = $1 AND scope_kind = 'node' AND scope_value = $2",
        )
        .bind(a.org_id)
        .bind(a.scope_value)
        .execute(tx.as_mut())
        .await?;
    }
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO policy_assignments (id, org_id, scope_kind, scope_value, selector, rulepack,
                                         revision, mode, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(a.org_id)
    .bind(a.scope_kind)
    .bind(a.scope_value)
    .bind(a.selector.as_ref().map(sqlx::types::Json))
    .bind(a.rulepack)
    .bind(a.revision)
    .bind(a.mode)
    .bind(a.created_by)
    .execute(tx.as_mut())
    .await?;
    Ok(id)
}

/// Give each of `node_ids` its own node-scoped assignment of one rulepack
/// (replacing each node's previous one): a bulk job's page.
pub async fn assignments_replace_for_nodes(
    tx: &mut Transaction<'_, Postgres>,
    a: &NewAssignment<'_>,
    node_ids: &[String],
) -> Result<(), DbError> {
    sqlx::query(
        "DELETE FROM policy_assignments
         WHERE org_id = $1 AND scope_kind = 'node' AND scope_value = ANY($2)",
    )
    .bind(a.org_id)
    .bind(node_ids)
    .execute(tx.as_mut())
    .await?;
    sqlx::query(
        "INSERT INTO policy_assignments (id, org_id, scope_kind, scope_value, selector, rulepack,
                                         revision, mode, created_by)
         SELECT gen_random_uuid(), $1, 'node', node_id, NULL, $3, $4, $5, $6
         FROM unnest($2::text[]) AS node_id",
    )
    .bind(a.org_id)
    .bind(node_ids)
    .bind(a.rulepack)
    .bind(a.revision)
    .bind(a.mode)
    .bind(a.created_by)
    .execute(tx.as_mut())
    .await?;
    Ok(())
}

pub async fn assignment_delete(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
    id: Uuid,
) -> Result<bool, DbError> {
    let done = sqlx::query("DELETE FROM policy_assignments WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(tx.as_mut())
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn assignment_get(
    pool: &PgPool,
    org_id: &str,
    id: Uuid,
) -> Result<Option<AssignmentRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM policy_assignments a WHERE a.org_id = $1 AND a.id = $2"
    )))
    .bind(org_id)
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

pub async fn assignment_list(
    pool: &PgPool,
    org_id: &str,
) -> Result<Vec<AssignmentRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM policy_assignments a WHERE a.org_id = $1
         ORDER BY a.created_at DESC"
    )))
    .bind(org_id)
    .fetch_all(pool)
    .await?)
}

/// The precedence of assignment kinds, most specific first (SQL).
const PRECEDENCE: &str =
    "CASE a.scope_kind WHEN 'node' THEN 0 WHEN 'label' THEN 1 WHEN 'tenant' THEN 2 ELSE 3 END";
/// An assignment `a` applies to node `n` (SQL).
const MATCHES: &str = "a.org_id = n.org_id AND (
       (a.scope_kind = 'node' AND a.scope_value = n.id)
    OR (a.scope_kind = 'label' AND n.labels @> a.selector)
    OR (a.scope_kind = 'tenant' AND a.scope_value = n.tenant_id)
    OR a.scope_kind = 'org')";

/// Every assignment that applies to a node, the winning one first.
pub async fn assignments_for_node(
    pool: &PgPool,
    node_id: &str,
) -> Result<Vec<AssignmentRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM policy_assignments a JOIN nodes n ON {MATCHES}
         WHERE n.id = $1 ORDER BY {PRECEDENCE}, a.created_at DESC"
    )))
    .bind(node_id)
    .fetch_all(pool)
    .await?)
}

/// A node whose assigned policy changed: it gets a `policy_changed` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyReassigned {
    pub node_id: String,
    pub tenant_id: String,
    pub assigned: Option<String>,
}

/// Recompute the effective policy of every node of an org (after a change
/// of assignments or rulepacks, or an enrollment). Idempotent: only nodes
/// whose assignment changed are written and returned.
pub async fn policies_recompute(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
) -> Result<Vec<PolicyReassigned>, DbError> {
    policies_recompute_for(tx, org_id, None).await
}

/// [`policies_recompute`] for one node only (at enrollment).
pub async fn policies_recompute_for(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
    node_id: Option<&str>,
) -> Result<Vec<PolicyReassigned>, DbError> {
    let scope = match node_id {
        Some(id) => RecomputeScope::One(id),
        None => RecomputeScope::Org,
    };
    recompute(tx, org_id, scope).await
}

/// [`policies_recompute`] for some nodes of the org (a bulk job's page:
/// their labels or node assignments changed).
pub async fn policies_recompute_nodes(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
    node_ids: &[String],
) -> Result<Vec<PolicyReassigned>, DbError> {
    recompute(tx, org_id, RecomputeScope::Some(node_ids)).await
}

enum RecomputeScope<'a> {
    Org,
    One(&'a str),
    Some(&'a [String]),
}

async fn recompute(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
    scope: RecomputeScope<'_>,
) -> Result<Vec<PolicyReassigned>, DbError> {
    // Separate statements rather than `($2 IS NULL OR n.id = $2)`: once
    // PostgreSQL switches a prepared statement to its generic plan, that
    // condition cannot use the primary key, and every enrollment scanned its
    // whole org.
    let node_filter = match scope {
        RecomputeScope::Org => "",
        RecomputeScope::One(_) => "AND n.id = $2",
        RecomputeScope::Some(_) => "AND n.id = ANY($2)",
    };
    let query = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH eff AS (
             SELECT DISTINCT ON (n.id) n.id, a.id AS assignment, a.mode,
                    a.rulepack || '@' || COALESCE(a.revision,
                        (SELECT max(r.revision) FROM rulepacks r
                         WHERE r.org_id = a.org_id AND r.name = a.rulepack)) AS version
             FROM nodes n JOIN policy_assignments a ON {MATCHES}
             WHERE n.org_id = $1 AND n.status <> 'decommissioned'
               {node_filter}
             ORDER BY n.id, {PRECEDENCE}, a.created_at DESC
         ), want AS (
             SELECT n.id, e.assignment, e.mode, e.version
             FROM nodes n LEFT JOIN eff e ON e.id = n.id
             WHERE n.org_id = $1 AND n.status <> 'decommissioned'
               {node_filter}
         )
         UPDATE nodes n SET policy_assigned = w.version, policy_mode = w.mode,
                            policy_assignment = w.assignment
         FROM want w
         WHERE n.id = w.id
           AND (n.policy_assigned IS DISTINCT FROM w.version
                OR n.policy_mode IS DISTINCT FROM w.mode
                OR n.policy_assignment IS DISTINCT FROM w.assignment)
         RETURNING n.id, n.tenant_id, n.policy_assigned"
    )))
    .bind(org_id);
    let query = match scope {
        RecomputeScope::Org => query,
        RecomputeScope::One(id) => query.bind(id),
        RecomputeScope::Some(ids) => query.bind(ids),
    };
    let rows: Vec<(String, String, Option<String>)> = query.fetch_all(tx.as_mut()).await?;
    Ok(rows
        .into_iter()
        .map(|(node_id, tenant_id, assigned)| PolicyReassigned {
            node_id,
            tenant_id,
            assigned,
        })
        .collect())
}

/// org, assigned version, mode, when assigned.
type AssignedRow = (
    String,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
);

/// The bundle a node must apply: its assigned rulepack revision and mode.
pub async fn policy_for_node(
    pool: &PgPool,
    node_id: &str,
) -> Result<Option<(RulepackRecord, String, DateTime<Utc>)>, DbError> {
    let row: Option<AssignedRow> = sqlx::query_as(
        "SELECT n.org_id, n.policy_assigned, n.policy_mode, a.created_at
             FROM nodes n LEFT JOIN policy_assignments a ON a.id = n.policy_assignment
             WHERE n.id = $1",
    )
    .bind(node_id)
    .fetch_optional(pool)
    .await?;
    let Some((org_id, Some(assigned), Some(mode), at)) = row else {
        return Ok(None);
    };
    let Some((name, revision)) = assigned
        .rsplit_once('@')
        .and_then(|(n, r)| r.parse::<i32>().ok().map(|r| (n.to_owned(), r)))
    else {
        return Err(DbError::Corrupt(format!("policy version {assigned:?}")));
    };
    let Some(pack) = rulepack_get(pool, &org_id, &name, Some(revision)).await? else {
        return Ok(None);
    };
    Ok(Some((pack, mode, at.unwrap_or_else(Utc::now))))
}

/// Drift detection, as an idempotent reconciler pass:
/// - a node out of step gets `drift_since` (once);
/// - one back in step loses it, and its drift flag (a change if it was drifted);
/// - one out of step for longer than `grace_secs` is flagged drifted (a change).
pub async fn nodes_mark_drift(pool: &PgPool, grace_secs: i32) -> Result<Vec<NodeChange>, DbError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE nodes SET drift_since = now()
         WHERE policy_out_of_step AND status <> 'decommissioned'
           AND drift_since IS NULL AND policy_assigned IS NOT NULL",
    )
    .execute(tx.as_mut())
    .await?;
    let back: Vec<DriftRow> = sqlx::query_as(
        "UPDATE nodes n SET drift_since = NULL, drifted = false
         FROM nodes old
         WHERE old.id = n.id AND n.drift_since IS NOT NULL
           AND (n.policy_assigned IS NOT DISTINCT FROM n.policy_version
                OR n.policy_assigned IS NULL OR n.status = 'decommissioned')
         RETURNING n.id, n.org_id, n.tenant_id, old.drifted, n.policy_assigned, n.policy_version",
    )
    .fetch_all(tx.as_mut())
    .await?;
    let drifted: Vec<DriftRow> = sqlx::query_as(
        "UPDATE nodes SET drifted = true
         WHERE drift_since IS NOT NULL AND NOT drifted
           AND drift_since <= now() - make_interval(secs => $1)
         RETURNING id, org_id, tenant_id, false AS drifted, policy_assigned, policy_version",
    )
    .bind(grace_secs)
    .fetch_all(tx.as_mut())
    .await?;
    let changes: Vec<NodeChange> = back
        .into_iter()
        .filter(|r| r.drifted)
        .map(|r| r.change(false))
        .chain(drifted.into_iter().map(|r| r.change(true)))
        .collect();
    crate::outbox::changes_record(&mut tx, &changes).await?;
    tx.commit().await?;
    Ok(changes)
}

#[derive(sqlx::FromRow)]
struct DriftRow {
    id: String,
    org_id: String,
    tenant_id: String,
    drifted: bool,
    policy_assigned: Option<String>,
    policy_version: Option<String>,
}

impl DriftRow {
    fn change(self, drifted: bool) -> NodeChange {
        NodeChange {
            payload: serde_json::json!({
                "kind": "policy_drift", "drifted": drifted,
                "assigned": self.policy_assigned, "applied": self.policy_version,
            }),
            org_id: self.org_id,
            tenant_id: self.tenant_id,
            node_id: self.id,
        }
    }
}
