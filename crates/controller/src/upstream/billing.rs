//! The `billing_daemon`: `GET /invoice-draft?org_id=..&tenant_id=..&period_idx=..`,
//! cached per (org, tenant, period) so console traffic never reaches it
//! directly. Tenant ids are per org (two orgs may both have `prod`): the org
//! is part of every request and of every cache key.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::{UpstreamError, http_client, send_json};

const SERVICE: &str = "billing_daemon";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DraftLine {
    pub metric: String,
    #[serde(default)]
    pub quantity: f64,
    #[serde(default)]
    pub unit: String,
    #[serde(default)]
    pub unit_price: f64,
    pub amount: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvoiceDraft {
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub lines: Vec<DraftLine>,
    pub total: f64,
}

/// (org, tenant, period index).
type DraftKey = (String, String, i64);

pub struct BillingClient {
    base: String,
    http: reqwest::Client,
    ttl: Duration,
    cache: Mutex<HashMap<DraftKey, (Instant, InvoiceDraft)>>,
}

impl BillingClient {
    pub fn new(base: &str, ttl: Duration) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http: http_client(),
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The draft for one tenant of an org and one period, from the cache
    /// while fresh.
    pub async fn invoice_draft(
        &self,
        org_id: &str,
        tenant_id: &str,
        period_idx: i64,
    ) -> Result<InvoiceDraft, UpstreamError> {
        let key = (org_id.to_owned(), tenant_id.to_owned(), period_idx);
        if let Some((at, draft)) = self.cache.lock().await.get(&key)
            && at.elapsed() < self.ttl
        {
            return Ok(draft.clone());
        }
        let draft: InvoiceDraft = send_json(
            SERVICE,
            self.http
                .get(format!("{}/invoice-draft", self.base))
                .query(&[
                    ("org_id", org_id.to_owned()),
                    ("tenant_id", tenant_id.to_owned()),
                    ("period_idx", period_idx.to_string()),
                ]),
        )
        .await?;
        let mut cache = self.cache.lock().await;
        // Bounded: old periods fall out first when many tenants are asked for.
        if cache.len() > 10_000 {
            cache.retain(|_, (at, _)| at.elapsed() < self.ttl);
        }
        cache.insert(key, (Instant::now(), draft.clone()));
        Ok(draft)
    }
}
