//! Refused messages: what is kept of them, where they go and their table.

use std::collections::BTreeMap;

use sqlx::{PgPool, Postgres, Transaction};

use crate::DbError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterRow {
    pub stream_seq: i64,
    /// The org token of its subject (what the dead-letter budget is kept by).
    pub org_id: String,
    pub subject: String,
    pub reason: String,
    pub detail: String,
    pub content: DeadLetterContent,
}

/// At most this much of a refused message's body is kept (table and stream).
pub const DEAD_LETTER_BODY_MAX: usize = 4096;
/// At most this many of its headers, each value at most this long.
pub const DEAD_LETTER_HEADERS_MAX: usize = 32;
pub const DEAD_LETTER_HEADER_VALUE_MAX: usize = 256;

/// What is kept of a refused message: its headers (`{name: [values]}`,
/// bounded), the first [`DEAD_LETTER_BODY_MAX`] bytes of its body and the
/// body's original size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterContent {
    pub headers: Option<serde_json::Value>,
    pub body: Vec<u8>,
    pub body_size: i64,
}

impl DeadLetterContent {
    /// Keep the bounded part of a message's body.
    pub fn of_body(body: &[u8]) -> Self {
        Self {
            headers: None,
            body: body[..body.len().min(DEAD_LETTER_BODY_MAX)].to_vec(),
            body_size: i64::try_from(body.len()).unwrap_or(i64::MAX),
        }
    }
}

/// Where the ingest's refused messages go: which are kept (a per-org
/// budget) and what is kept of them.
pub trait DeadLetterSink: Sync {
    fn keep(&self, org: &str) -> bool;
    fn content(&self, stream_seq: i64) -> DeadLetterContent;
}

/// Keeps every dead letter, without content (tools and tests).
pub struct KeepAllDeadLetters;

impl DeadLetterSink for KeepAllDeadLetters {
    fn keep(&self, _org: &str) -> bool {
        true
    }

    fn content(&self, _stream_seq: i64) -> DeadLetterContent {
        DeadLetterContent::default()
    }
}

pub(super) async fn dead_letters_insert(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[DeadLetterRow],
) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO dead_letters (stream_seq, org_id, subject, reason, detail, headers, body, body_size)
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::jsonb[], $7::bytea[], $8::bigint[])
         ON CONFLICT (stream_seq) DO NOTHING",
    )
    .bind(rows.iter().map(|r| r.stream_seq).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.org_id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.subject.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.reason.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.detail.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.content.headers.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.content.body.as_slice()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.content.body_size).collect::<Vec<_>>())
    .execute(tx.as_mut())
    .await?;
    Ok(())
}

/// Dead letters by reason (for `/metrics`-style reporting and tests).
pub async fn dead_letter_counts(pool: &PgPool) -> Result<BTreeMap<String, i64>, DbError> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT reason, count(*) FROM dead_letters GROUP BY reason")
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().collect())
}
