use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, QueryBuilder, Transaction};
use uuid::Uuid;

use crate::DbError;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NodeRecord {
    pub id: String,
    pub org_id: String,
    pub tenant_id: String,
    pub public_key: String,
    pub hostname: String,
    pub labels: sqlx::types::Json<BTreeMap<String, String>>,
    pub capabilities: sqlx::types::Json<Vec<String>>,
    pub enrolled_at: DateTime<Utc>,
    pub status: String,
    pub status_changed_at: DateTime<Utc>,
    pub interval_secs: i32,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub last_sent_at: Option<DateTime<Utc>>,
    pub last_seq: i64,
    pub agent_version: Option<String>,
    pub policy_version: Option<String>,
    pub last_policy_sync_at: Option<DateTime<Utc>>,
    pub last_evidence_batch_at: Option<DateTime<Utc>>,
    pub key_id: Option<String>,
    pub slo_counters: Option<sqlx::types::Json<BTreeMap<String, u64>>>,
    pub host_os: Option<String>,
    pub host_kernel: Option<String>,
    pub host_arch: Option<String>,
    pub host_cpus: Option<i32>,
    pub host_memory_bytes: Option<i64>,
    pub host_uptime_secs: Option<i64>,
    pub spool_depth: Option<i64>,
    pub spool_dropped: Option<i64>,
    pub decommissioned_at: Option<DateTime<Utc>>,
    pub policy_assigned: Option<String>,
    pub policy_mode: Option<String>,
    pub drifted: bool,
    pub drift_since: Option<DateTime<Utc>>,
    pub key_warning: Option<String>,
    pub policy_rejected: Option<String>,
    /// Connectors configured on the node.
    pub connector_count: i64,
}

/// `status` is what the API shows: the real liveness, or `flapping` (see the
/// migration `flapping`).
const COLUMNS: &str =
    "id, nodes.org_id, tenant_id, public_key, hostname, labels, capabilities, enrolled_at,
    nodes.shown_status AS status, status_changed_at, interval_secs, l.last_seen_at, l.last_sent_at,
    l.last_seq, agent_version, policy_version, l.last_policy_sync_at, l.last_evidence_batch_at,
    key_id, l.slo_counters, host_os, host_kernel, host_arch, host_cpus, host_memory_bytes,
    l.host_uptime_secs, l.spool_depth, l.spool_dropped, decommissioned_at, policy_assigned,
    policy_mode, drifted, drift_since, key_warning, policy_rejected,
    (SELECT count(*) FROM node_connectors c WHERE c.node_id = nodes.id) AS connector_count";

/// A node's wide row and its liveness row (`migrations/*_node_liveness.sql`).
const FROM: &str = "nodes JOIN node_liveness l ON l.node_id = nodes.id";

pub async fn node_get(
    pool: &PgPool,
    org_id: &str,
    id: &str,
) -> Result<Option<NodeRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE nodes.org_id = $1 AND id = $2"
    )))
    .bind(org_id)
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// Any node by id, whatever its org (for node-authenticated calls).
pub async fn node_get_any(pool: &PgPool, id: &str) -> Result<Option<NodeRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

pub async fn node_lock(
    tx: &mut Transaction<'_, Postgres>,
    id: &str,
) -> Result<Option<NodeRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE id = $1 FOR UPDATE OF nodes"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

pub async fn node_lock_by_public_key(
    tx: &mut Transaction<'_, Postgres>,
    public_key: &str,
) -> Result<Option<NodeRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE public_key = $1 FOR UPDATE OF nodes"
    )))
    .bind(public_key)
    .fetch_optional(&mut **tx)
    .await?)
}

/// True when some node (in any org, decommissioned or not) holds or held
/// `public_key` as its current key.
pub async fn node_key_in_use(
    tx: &mut Transaction<'_, Postgres>,
    public_key: &str,
) -> Result<bool, DbError> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM nodes WHERE public_key = $1)")
            .bind(public_key)
            .fetch_one(&mut **tx)
            .await?,
    )
}

pub struct NewNode<'a> {
    pub id: &'a str,
    pub org_id: &'a str,
    pub tenant_id: &'a str,
    pub public_key: &'a str,
    pub hostname: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub capabilities: &'a [String],
    pub agent_version: Option<&'a str>,
    pub enrollment_token_id: Uuid,
}

pub async fn node_insert(
    tx: &mut Transaction<'_, Postgres>,
    n: &NewNode<'_>,
) -> Result<NodeRecord, DbError> {
    // The insert's trigger makes the liveness row, which this statement's
    // RETURNING cannot join: the record is read back after it.
    sqlx::query(
        "INSERT INTO nodes (id, org_id, tenant_id, public_key, hostname, labels, capabilities,
                            agent_version, enrollment_token_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(n.id)
    .bind(n.org_id)
    .bind(n.tenant_id)
    .bind(n.public_key)
    .bind(n.hostname)
    .bind(sqlx::types::Json(n.labels))
    .bind(sqlx::types::Json(n.capabilities))
    .bind(n.agent_version)
    .bind(n.enrollment_token_id)
    .execute(&mut **tx)
    .await?;
    node_lock(tx, n.id)
        .await?
        .ok_or_else(|| DbError::Corrupt(format!("node {} missing after its insert", n.id)))
}

/// Mark a node decommissioned; its status history and outbox rows are
/// written by the caller in the same transaction.
pub async fn node_decommission(
    tx: &mut Transaction<'_, Postgres>,
    id: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE nodes SET status = 'decommissioned', status_changed_at = now(),
                decommissioned_at = now(), flapping_since = NULL
         WHERE id = $1",
    )
    .bind(id)
    .execute(tx.as_mut())
    .await?;
    liveness_deadlines_clear(tx, id).await
}

/// A node no longer live can no longer fall due: its deadlines go (the
/// caller holds the node row's lock).
async fn liveness_deadlines_clear(
    tx: &mut Transaction<'_, Postgres>,
    id: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE node_liveness SET offline_after = NULL, stale_after = NULL
         WHERE node_id = $1 AND (offline_after IS NOT NULL OR stale_after IS NOT NULL)",
    )
    .bind(id)
    .execute(tx.as_mut())
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct StatusHistoryEntry {
    pub from_status: String,
    pub to_status: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

pub async fn node_status_history(
    pool: &PgPool,
    node_id: &str,
    limit: i64,
) -> Result<Vec<StatusHistoryEntry>, DbError> {
    Ok(sqlx::query_as(
        "SELECT from_status, to_status, reason, at FROM node_status_history
         WHERE node_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(node_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeSort {
    #[default]
    Name,
    LastSeen,
    Status,
}

#[derive(Debug, Clone, Default)]
pub struct NodeFilter {
    pub tenant: Option<String>,
    pub statuses: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub agent_version: Option<String>,
    pub text: Option<String>,
    /// Only nodes whose policy has drifted.
    pub drifted: bool,
    /// Only nodes signing with a revoked, compromised or expired key.
    pub key_warning: bool,
    pub sort: NodeSort,
    pub descending: bool,
    pub limit: i64,
    /// Keyset position: the sort value and id of the last row of the previous page.
    pub after: Option<(Option<String>, String)>,
    /// Skip counting the matches (`total` is then 0): exports page through
    /// everything and need no count per page.
    pub skip_count: bool,
}

pub struct NodePage {
    pub items: Vec<NodeRecord>,
    /// Matching nodes, counted up to [`NODE_LIST_COUNT_CAP`].
    pub total: i64,
    /// False when more than [`NODE_LIST_COUNT_CAP`] match (`total` is the cap).
    pub total_exact: bool,
}

impl NodePage {
    /// A page whose filter matched `matched` nodes (reported up to the cap).
    fn counted(items: Vec<NodeRecord>, matched: i64) -> Self {
        Self {
            items,
            total: matched.min(NODE_LIST_COUNT_CAP),
            total_exact: matched <= NODE_LIST_COUNT_CAP,
        }
    }
}

/// The list counts matches only this far: an exact count of a 100k-node org
/// costs more than the page itself. Exact counts per status come from
/// [`node_counts`].
pub const NODE_LIST_COUNT_CAP: i64 = 10_000;

/// Appends the join to `node_statuses` when `f` filters or sorts by status,
/// then the filters: what follows the `FROM nodes` of every list statement.
fn push_filters<'a>(q: &mut QueryBuilder<Postgres>, org_id: &'a str, f: &'a NodeFilter) {
    if f.reads_statuses() {
        q.push(" JOIN node_statuses s ON s.node_id = nodes.id AND s.org_id = nodes.org_id");
    }
    q.push(" WHERE nodes.org_id = ").push_bind(org_id);
    if let Some(t) = &f.tenant {
        q.push(" AND tenant_id = ").push_bind(t);
    }
    if !f.statuses.is_empty() {
        q.push(" AND s.shown_status = ANY(")
            .push_bind(&f.statuses)
            .push(")");
    }
    if !f.labels.is_empty() {
        q.push(" AND labels @> ")
            .push_bind(sqlx::types::Json(&f.labels));
    }
    if f.drifted {
        q.push(" AND drifted");
    }
    if f.key_warning {
        q.push(" AND key_warning IS NOT NULL");
    }
    if let Some(v) = &f.agent_version {
        q.push(" AND agent_version = ").push_bind(v);
    }
    if let Some(text) = &f.text {
        let pattern = format!(
            "%{}%",
            text.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        // One expression, indexed by `nodes_search_trgm` (ids and hostnames
        // hold no spaces, so a match never spans the two).
        q.push(" AND (id || ' ' || hostname) ILIKE ")
            .push_bind(pattern);
    }
}

/// The sort expression and its tie-break, both columns of the index the
/// page is read from; NULL last-seen sorts as the epoch so keysets stay total.
fn sort_columns(sort: NodeSort) -> (&'static str, &'static str) {
    match sort {
        NodeSort::Name => ("id", "id"),
        NodeSort::LastSeen => (
            "COALESCE(l.last_seen_at, 'epoch'::timestamptz)",
            "l.node_id",
        ),
        NodeSort::Status => ("s.shown_status", "s.node_id"),
    }
}

/// At most this many matches are gathered by id before the page is chosen
/// (see [`node_list`]).
pub const NODE_LIST_FEW: i64 = 1_000;

impl NodeFilter {
    /// Whether the list reads the status from `node_statuses`: `nodes` has
    /// no index on it, so that a status change is a heap-only update
    /// (`migrations/*_node_statuses.sql`).
    fn reads_statuses(&self) -> bool {
        !self.statuses.is_empty() || self.sort == NodeSort::Status
    }

    /// Whether anything but the org narrows the list.
    fn narrows(&self) -> bool {
        self.tenant.is_some()
            || !self.statuses.is_empty()
            || !self.labels.is_empty()
            || self.drifted
            || self.key_warning
            || self.agent_version.is_some()
            || self.text.is_some()
    }
}

pub async fn node_list(pool: &PgPool, org_id: &str, f: &NodeFilter) -> Result<NodePage, DbError> {
    // Counted already: the org's count deltas keep the matches of no
    // filter, of statuses alone, of drift alone and of key warnings alone
    // (a capped count of 10,001 index entries cost 15-35 ms at 1,000,000
    // nodes). Each of these filters has its own (org, ..., id) index, so its
    // page is read in order without skipping rows.
    if !f.skip_count
        && let Some(matched) = node_count_kept(pool, org_id, f).await?
    {
        let items = node_page(org_id, f, None).fetch_all(pool).await?;
        return Ok(NodePage::counted(items, matched));
    }
    // A narrowing filter first gathers the ids of at most NODE_LIST_FEW + 1
    // matches. Fewer than that and they are the whole match set: the count
    // is exact and the page is chosen among those ids. Without this the
    // planner, estimating the filters as independent, may walk the org in
    // sort order for a page that matches far fewer rows than it expects
    // (tenant + status + label matching nothing walked all 100,000 rows
    // of one tenant in a 1,000,000-node org for an empty page).
    if f.narrows() && !f.skip_count {
        let mut few = QueryBuilder::new("SELECT nodes.id FROM nodes");
        push_filters(&mut few, org_id, f);
        few.push(" LIMIT ").push_bind(NODE_LIST_FEW + 1);
        let ids: Vec<String> = few
            .build_query_scalar()
            .persistent(false)
            .fetch_all(pool)
            .await?;
        if ids.len() as i64 <= NODE_LIST_FEW {
            let items = if ids.is_empty() {
                vec![]
            } else {
                node_page(org_id, f, Some(&ids)).fetch_all(pool).await?
            };
            return Ok(NodePage::counted(items, ids.len() as i64));
        }
    }
    let mut count = QueryBuilder::new("SELECT count(*) FROM (SELECT 1 FROM nodes");
    push_filters(&mut count, org_id, f);
    count
        .push(" LIMIT ")
        .push_bind(NODE_LIST_COUNT_CAP + 1)
        .push(") AS capped");
    // Unnamed statements: planned with the actual filter values every time.
    // A cached generic plan cannot use the trigram index for `q` (unknown
    // pattern) and scanned the whole org instead.
    let counted = count.build_query_scalar::<i64>().persistent(false);
    let page = node_page(org_id, f, None);
    // On two connections at once: the count and the page are independent.
    let (matched, items) = if f.skip_count {
        (0, page.fetch_all(pool).await?)
    } else {
        futures::try_join!(counted.fetch_one(pool), page.fetch_all(pool))?
    };
    Ok(NodePage::counted(items, matched))
}

/// The number of nodes `f` matches when the org's count deltas keep it.
async fn node_count_kept(
    pool: &PgPool,
    org_id: &str,
    f: &NodeFilter,
) -> Result<Option<i64>, DbError> {
    if f.tenant.is_some()
        || !f.labels.is_empty()
        || f.agent_version.is_some()
        || f.text.is_some()
        || usize::from(!f.statuses.is_empty()) + usize::from(f.drifted) + usize::from(f.key_warning)
            > 1
    {
        return Ok(None);
    }
    let counts = node_counts(pool, org_id).await?;
    Ok(Some(if f.drifted {
        counts.drifted
    } else if f.key_warning {
        counts.key_warnings
    } else {
        counts
            .by_status
            .iter()
            .filter(|(status, _)| f.statuses.is_empty() || f.statuses.contains(status))
            .map(|(_, n)| n)
            .sum()
    }))
}

/// The page of `f` after its keyset position, among the nodes `among` when
/// given.
fn node_page<'a>(org_id: &'a str, f: &'a NodeFilter, among: Option<&'a [String]>) -> NodePageQuery {
    // Sorted by last seen, the page is read in order from the liveness
    // table's (org, last seen, node) index, so its keys name that table.
    // Otherwise the page is chosen from `nodes` alone and then joined to its
    // liveness rows, one probe each (a join planned before the limit read
    // the liveness table from its start on every deep page).
    let by_last_seen = f.sort == NodeSort::LastSeen;
    let mut q = QueryBuilder::new(if by_last_seen {
        format!("SELECT {COLUMNS} FROM {FROM}")
    } else {
        format!("SELECT {COLUMNS} FROM (SELECT nodes.* FROM nodes")
    });
    push_filters(&mut q, org_id, f);
    if let Some(ids) = among {
        q.push(" AND nodes.id = ANY(").push_bind(ids).push(")");
    }
    let (col, tie_break) = sort_columns(f.sort);
    if by_last_seen {
        q.push(" AND l.org_id = nodes.org_id");
    }
    let (cmp, dir) = if f.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some((value, id)) = &f.after {
        match f.sort {
            NodeSort::Name => {
                q.push(format!(" AND id {cmp} ")).push_bind(id);
                // The same bound on the joined status rows: the planner
                // carries equalities across a join, not ranges, and a merge
                // join read them from the first on every deep page.
                if f.reads_statuses() {
                    q.push(format!(" AND s.node_id {cmp} ")).push_bind(id);
                }
            }
            NodeSort::LastSeen => {
                let ts: DateTime<Utc> = value
                    .as_deref()
                    .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
                    .map(|d| d.with_timezone(&Utc))
                    .unwrap_or(DateTime::UNIX_EPOCH);
                q.push(format!(" AND ({col}, {tie_break}) {cmp} ("))
                    .push_bind(ts)
                    .push(", ")
                    .push_bind(id)
                    .push(")");
            }
            NodeSort::Status => {
                q.push(format!(" AND ({col}, {tie_break}) {cmp} ("))
                    .push_bind(value.clone().unwrap_or_default())
                    .push(", ")
                    .push_bind(id)
                    .push(")");
            }
        }
    }
    let order = if f.sort == NodeSort::Name {
        format!(" ORDER BY id {dir}")
    } else {
        format!(" ORDER BY {col} {dir}, {tie_break} {dir}")
    };
    q.push(&order).push(" LIMIT ").push_bind(f.limit);
    if !by_last_seen {
        // The chosen rows again in order, by the columns they carry out of
        // the subquery.
        let outer = if f.sort == NodeSort::Status {
            format!(" ORDER BY nodes.shown_status {dir}, id {dir}")
        } else {
            order
        };
        q.push(format!(
            ") nodes JOIN node_liveness l ON l.node_id = nodes.id{outer}"
        ));
    }
    NodePageQuery(q)
}

/// A built page statement, run unnamed (see the count in [`node_list`]).
struct NodePageQuery(QueryBuilder<Postgres>);

impl NodePageQuery {
    async fn fetch_all(mut self, pool: &PgPool) -> Result<Vec<NodeRecord>, sqlx::Error> {
        self.0
            .build_query_as()
            .persistent(false)
            .fetch_all(pool)
            .await
    }
}

/// The keyset value of a row for `sort`, for the next page's cursor.
pub fn sort_value(node: &NodeRecord, sort: NodeSort) -> Option<String> {
    match sort {
        NodeSort::Name => None,
        NodeSort::LastSeen => Some(
            node.last_seen_at
                .unwrap_or(DateTime::UNIX_EPOCH)
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        ),
        NodeSort::Status => Some(node.status.clone()),
    }
}

/// Counts by status for an org (dashboard cards).
/// The dashboard's counts: nodes by shown status, drifted, with a key warning.
#[derive(Debug, Default)]
pub struct NodeCounts {
    pub by_status: BTreeMap<String, i64>,
    pub drifted: i64,
    pub key_warnings: i64,
}

pub async fn node_counts(pool: &PgPool, org_id: &str) -> Result<NodeCounts, DbError> {
    let mut counts = NodeCounts::default();
    for (bucket, n) in node_count_buckets(pool, org_id).await? {
        match bucket.as_str() {
            "drifted" => counts.drifted = n,
            "key_warning" => counts.key_warnings = n,
            other => {
                if let Some(status) = other.strip_prefix("status:").filter(|_| n != 0) {
                    counts.by_status.insert(status.to_owned(), n);
                }
            }
        }
    }
    Ok(counts)
}

/// The org's node counts by bucket, summed from the deltas every write to
/// `nodes` appends (`migrations/*_node_counts.sql`): a few rows per org
/// between folds, where counting the nodes themselves read a million
/// index entries.
async fn node_count_buckets(pool: &PgPool, org_id: &str) -> Result<BTreeMap<String, i64>, DbError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT bucket, sum(delta)::bigint FROM node_count_deltas WHERE org_id = $1 GROUP BY bucket",
    )
    .bind(org_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Fold each org's count deltas into one row per bucket; returns the rows
/// folded away. Idempotent, and safe beside another controller doing the
/// same (a row is deleted, and so summed, once).
pub async fn node_counts_fold(pool: &PgPool) -> Result<u64, DbError> {
    let (gone,): (i64,) = sqlx::query_as(
        "WITH many AS (
             SELECT org_id, bucket FROM node_count_deltas
             GROUP BY org_id, bucket HAVING count(*) > 1
         ), gone AS (
             DELETE FROM node_count_deltas d USING many m
             WHERE d.org_id = m.org_id AND d.bucket = m.bucket
             RETURNING d.org_id, d.bucket, d.delta
         ), kept AS (
             INSERT INTO node_count_deltas (org_id, bucket, delta)
             SELECT org_id, bucket, sum(delta) FROM gone
             GROUP BY org_id, bucket HAVING sum(delta) <> 0
             RETURNING 1
         )
         SELECT (SELECT count(*) FROM gone) - (SELECT count(*) FROM kept)",
    )
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(gone).unwrap_or(0))
}

/// Point the node at a new key (re-keying); the caller revokes the old one at the broker.
pub async fn node_set_public_key(
    tx: &mut Transaction<'_, Postgres>,
    id: &str,
    public_key: &str,
) -> Result<(), DbError> {
    sqlx::query("UPDATE nodes SET public_key = $2, rekeyed_at = now() WHERE id = $1")
        .bind(id)
        .bind(public_key)
        .execute(tx.as_mut())
        .await?;
    Ok(())
}

/// When the node last moved to a new key (None: never).
pub async fn node_rekeyed_at(
    tx: &mut Transaction<'_, Postgres>,
    id: &str,
) -> Result<Option<DateTime<Utc>>, DbError> {
    Ok(
        sqlx::query_scalar::<_, Option<DateTime<Utc>>>(
            "SELECT rekeyed_at FROM nodes WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(tx.as_mut())
        .await?
        .flatten(),
    )
}

/// The ids of the nodes matching `f` (its sort and paging ignored), in id
/// order after `after`, at most `limit`: a bulk job walks a filter
/// selection in these keyset pages instead of holding it whole.
pub async fn node_ids_matching(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
    f: &NodeFilter,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<String>, DbError> {
    let mut q = QueryBuilder::new("SELECT id FROM nodes");
    push_filters(&mut q, org_id, f);
    if let Some(after) = after {
        q.push(" AND id > ").push_bind(after);
    }
    q.push(" ORDER BY id LIMIT ").push_bind(limit);
    Ok(q.build_query_scalar()
        .persistent(false)
        .fetch_all(tx.as_mut())
        .await?)
}

/// How many nodes match `f`, exactly (a bulk job's preview).
pub async fn node_count_matching(
    pool: &PgPool,
    org_id: &str,
    f: &NodeFilter,
) -> Result<i64, DbError> {
    let mut q = QueryBuilder::new("SELECT count(*) FROM nodes");
    push_filters(&mut q, org_id, f);
    Ok(q.build_query_scalar()
        .persistent(false)
        .fetch_one(pool)
        .await?)
}

/// The org's nodes among `ids` (others' and unknown ids are left out), in
/// id order, at most `limit`.
pub async fn nodes_among(
    pool: &PgPool,
    org_id: &str,
    ids: &[String],
    limit: i64,
) -> Result<(i64, Vec<NodeRecord>), DbError> {
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM nodes WHERE org_id = $1 AND id = ANY($2)")
            .bind(org_id)
            .bind(ids)
            .fetch_one(pool)
            .await?;
    let sample = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE nodes.org_id = $1 AND id = ANY($2) ORDER BY id LIMIT $3"
    )))
    .bind(org_id)
    .bind(ids)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok((count, sample))
}

/// The org's nodes among `ids`, locked for a bulk job's page.
pub async fn nodes_lock_among(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
    ids: &[String],
) -> Result<Vec<NodeRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE nodes.org_id = $1 AND id = ANY($2) ORDER BY id FOR UPDATE OF nodes"
    )))
    .bind(org_id)
    .bind(ids)
    .fetch_all(tx.as_mut())
    .await?)
}

/// Merge `labels` into each of `ids` (same org).
pub async fn nodes_labels_merge(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
    ids: &[String],
    labels: &BTreeMap<String, String>,
) -> Result<(), DbError> {
    sqlx::query("UPDATE nodes SET labels = labels || $3 WHERE org_id = $1 AND id = ANY($2)")
        .bind(org_id)
        .bind(ids)
        .bind(sqlx::types::Json(labels))
        .execute(tx.as_mut())
        .await?;
    Ok(())
}

/// Remove the label `keys` from each of `ids` (same org).
pub async fn nodes_labels_remove(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
    ids: &[String],
    keys: &[String],
) -> Result<(), DbError> {
    sqlx::query("UPDATE nodes SET labels = labels - $3::text[] WHERE org_id = $1 AND id = ANY($2)")
        .bind(org_id)
        .bind(ids)
        .bind(keys)
        .execute(tx.as_mut())
        .await?;
    Ok(())
}
