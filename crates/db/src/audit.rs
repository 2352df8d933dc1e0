//! The audit trail: append-only (a trigger refuses UPDATE and DELETE) and
//! hash-chained: every entry's hash covers its own fields and the previous
//! entry's hash, so an edited or removed entry breaks the chain from there
//! on. Appends are serialised by a transaction-scoped advisory lock.

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, Transaction};

use crate::DbError;

/// Serialises appends so the chain stays linear.
const AUDIT_LOCK: i64 = 0x5249_544d_4155_4454; // "RITMAUDT"

#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    pub org_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub source: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct AuditRecord {
    pub id: i64,
    pub org_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub source: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub at: DateTime<Utc>,
    #[serde(serialize_with = "hex_bytes")]
    pub prev_hash: Vec<u8>,
    #[serde(serialize_with = "hex_bytes")]
    pub hash: Vec<u8>,
}

/// Lowercase hex, as hashes are shown everywhere.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|x| format!("{x:02x}")).collect()
}

fn hex_bytes<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(b))
}

/// JSON with object keys sorted at every level, so the hash does not depend
/// on how the database returns a jsonb value.
pub fn canonical_json(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(canonical_json)
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}

pub fn audit_hash(prev: &[u8], id: i64, e: &AuditEntry, at: DateTime<Utc>) -> Vec<u8> {
    let body = serde_json::json!({
        "id": id, "org_id": e.org_id, "actor": e.actor, "action": e.action, "target": e.target,
        "source": e.source, "before": e.before, "after": e.after,
        "at": at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    });
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical_json(&body).as_bytes());
    h.finalize().to_vec()
}

pub async fn audit_append(
    tx: &mut Transaction<'_, Postgres>,
    e: &AuditEntry,
) -> Result<AuditRecord, DbError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(AUDIT_LOCK)
        .execute(tx.as_mut())
        .await?;
    let prev: Vec<u8> = sqlx::query_scalar("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
        .fetch_optional(tx.as_mut())
        .await?
        .unwrap_or_else(|| vec![0u8; 32]);
    let id: i64 = sqlx::query_scalar("SELECT nextval('audit_log_id_seq')")
        .fetch_one(tx.as_mut())
        .await?;
    // Postgres keeps microseconds: hash exactly what is stored.
    let at = Utc::now().trunc_subsecs(6);
    let hash = audit_hash(&prev, id, e, at);
    let record: AuditRecord = sqlx::query_as(
        "INSERT INTO audit_log (id, org_id, actor, action, target, source, before, after, at, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING *",
    )
    .bind(id)
    .bind(&e.org_id)
    .bind(&e.actor)
    .bind(&e.action)
    .bind(&e.target)
    .bind(&e.source)
    .bind(&e.before)
    .bind(&e.after)
    .bind(at)
    .bind(&prev)
    .bind(&hash)
    .fetch_one(tx.as_mut())
    .await?;
    sqlx::query("INSERT INTO audit_outbox (audit_id) VALUES ($1)")
        .bind(id)
        .execute(tx.as_mut())
        .await?;
    crate::outbox::outbox_notify(tx).await?;
    Ok(record)
}

/// Append in a transaction of its own.
pub async fn audit_append_now(pool: &PgPool, e: &AuditEntry) -> Result<AuditRecord, DbError> {
    let mut tx = pool.begin().await?;
    let r = audit_append(&mut tx, e).await?;
    tx.commit().await?;
    Ok(r)
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Entries whose target starts with this (a node id, `token:...`).
    pub target: Option<String>,
    pub before_id: Option<i64>,
    pub limit: Option<i64>,
}

pub async fn audit_list(
    pool: &PgPool,
    org_id: &str,
    f: &AuditFilter,
) -> Result<Vec<AuditRecord>, DbError> {
    Ok(sqlx::query_as(
        "SELECT * FROM audit_log
         WHERE org_id = $1 AND ($2::text IS NULL OR actor = $2) AND ($3::text IS NULL OR action = $3)
           AND ($4::bigint IS NULL OR id < $4)
           AND ($6::text IS NULL OR starts_with(target, $6))
         ORDER BY id DESC LIMIT $5",
    )
    .bind(org_id)
    .bind(&f.actor)
    .bind(&f.action)
    .bind(f.before_id)
    .bind(f.limit.unwrap_or(100).clamp(1, 1000))
    .bind(&f.target)
    .fetch_all(pool)
    .await?)
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditBreak {
    pub id: i64,
    pub problem: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditVerification {
    pub entries: u64,
    pub last_hash: Option<String>,
    pub breaks: Vec<AuditBreak>,
}

/// Recompute the whole chain.
pub async fn audit_verify(pool: &PgPool) -> Result<AuditVerification, DbError> {
    let mut out = AuditVerification {
        entries: 0,
        last_hash: None,
        breaks: vec![],
    };
    let mut prev = vec![0u8; 32];
    let mut after_id = 0i64;
    loop {
        let rows: Vec<AuditRecord> =
            sqlx::query_as("SELECT * FROM audit_log WHERE id > $1 ORDER BY id LIMIT 5000")
                .bind(after_id)
                .fetch_all(pool)
                .await?;
        if rows.is_empty() {
            break;
        }
        for r in rows {
            after_id = r.id;
            out.entries += 1;
            if r.prev_hash != prev {
                out.breaks.push(AuditBreak {
                    id: r.id,
                    problem:
                        "previous hash does not match: an entry before it was removed or altered"
                            .into(),
                });
            }
            let entry = AuditEntry {
                org_id: r.org_id.clone(),
                actor: r.actor.clone(),
                action: r.action.clone(),
                target: r.target.clone(),
                source: r.source.clone(),
                before: r.before.clone(),
                after: r.after.clone(),
            };
            if audit_hash(&r.prev_hash, r.id, &entry, r.at) != r.hash {
                out.breaks.push(AuditBreak {
                    id: r.id,
                    problem: "content does not match its hash: the entry was edited".into(),
                });
            }
            prev = r.hash.clone();
        }
    }
    out.last_hash = (out.entries > 0).then(|| hex(&prev));
    Ok(out)
}

/// Entries not yet published on the bus, oldest first (locked for this transaction).
pub async fn audit_outbox_lock(
    tx: &mut Transaction<'_, Postgres>,
    limit: i64,
) -> Result<Vec<AuditRecord>, DbError> {
    Ok(sqlx::query_as(
        "SELECT a.* FROM audit_outbox o JOIN audit_log a ON a.id = o.audit_id
         ORDER BY o.audit_id LIMIT $1 FOR UPDATE OF o SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(tx.as_mut())
    .await?)
}

pub async fn audit_outbox_delete(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[i64],
) -> Result<(), DbError> {
    sqlx::query("DELETE FROM audit_outbox WHERE audit_id = ANY($1)")
        .bind(ids)
        .execute(tx.as_mut())
        .await?;
    Ok(())
}
