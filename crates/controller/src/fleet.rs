//! Settings and clients of the fleet-operations features: drift grace, dry
//! runs, the optional `ritma_cloud` and `billing_daemon` upstreams, the price
//! table for estimates, and what the node config template offers.

use ritma_api::keys::CloudSyncStatus;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::config::Config;
use crate::upstream::billing::BillingClient;
use crate::upstream::ritma_cloud::CloudClient;

pub struct Fleet {
    pub drift_grace_secs: i32,
    pub dry_run_timeout: Duration,
    pub cloud: Option<CloudClient>,
    pub cloud_sync_every: Duration,
    pub cloud_status: Mutex<CloudSyncStatus>,
    pub billing: Option<BillingClient>,
    pub prices: PriceTable,
    pub template: TemplateSettings,
}

/// What the node config template fills in.
#[derive(Debug, Clone)]
pub struct TemplateSettings {
    pub controller_url: String,
    pub utld_socket: String,
    pub utld_tls_addr: String,
    pub utld_usage_http_url: Option<String>,
    pub ritma_cloud_url: Option<String>,
}

impl Fleet {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let prices = match &config.price_table_file {
            Some(path) => PriceTable::load(path)?,
            None => PriceTable::default(),
        };
        Ok(Self {
            drift_grace_secs: config.policy_drift_grace_secs.max(0),
            dry_run_timeout: Duration::from_secs(config.dry_run_timeout_secs.clamp(1, 300)),
            cloud: config
                .ritma_cloud_url
                .as_deref()
                .map(|url| CloudClient::new(url, config.ritma_cloud_token.clone())),
            cloud_sync_every: Duration::from_secs(config.ritma_cloud_sync_secs.max(1)),
            cloud_status: Mutex::new(CloudSyncStatus {
                configured: config.ritma_cloud_url.is_some(),
                ..Default::default()
            }),
            billing: config
                .billing_daemon_url
                .as_deref()
                .map(|url| BillingClient::new(url, Duration::from_secs(config.billing_cache_secs))),
            prices,
            template: TemplateSettings {
                controller_url: config
                    .public_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{}", config.api_listen)),
                utld_socket: config.utld_socket.clone(),
                utld_tls_addr: config.utld_tls_addr.clone(),
                utld_usage_http_url: config.utld_usage_http_url.clone(),
                ritma_cloud_url: config.ritma_cloud_url.clone(),
            },
        })
    }
}

/// One metric's price: `price` per `per` units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub unit: String,
    pub per: f64,
    pub price: f64,
}

/// The price list estimates use when no billing daemon is configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    pub currency: String,
    pub decisions: Price,
    pub dig_files: Price,
    pub storage_bytes: Price,
    pub snapshot_exports: Price,
}

impl Default for PriceTable {
    fn default() -> Self {
        let price = |unit: &str, per: f64, price: f64| Price {
            unit: unit.into(),
            per,
            price,
        };
        Self {
            currency: "USD".into(),
            decisions: price("1M decisions", 1_000_000.0, 2.00),
            dig_files: price("1k files", 1_000.0, 0.50),
            storage_bytes: price("GiB", 1_073_741_824.0, 0.10),
            snapshot_exports: price("export", 1.0, 0.05),
        }
    }
}

impl PriceTable {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("price table {}: {e}", path.display()))?;
        let table: Self = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("price table {}: {e}", path.display()))?;
        for (name, p) in table.lines() {
            if !(p.per > 0.0 && p.price >= 0.0) {
                anyhow::bail!(
                    "price table {}: {name} needs per > 0 and price >= 0",
                    path.display()
                );
            }
        }
        Ok(table)
    }

    /// The metrics in invoice order.
    pub fn lines(&self) -> [(&'static str, &Price); 4] {
        [
            ("decisions", &self.decisions),
            ("dig_files", &self.dig_files),
            ("storage_bytes", &self.storage_bytes),
            ("snapshot_exports", &self.snapshot_exports),
        ]
    }
}

/// Round to cents.
pub fn money(amount: f64) -> f64 {
    (amount * 100.0).round() / 100.0
}

/// A billing period: one calendar month (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub year: i32,
    pub month: u32,
}

impl Period {
    pub fn current() -> Self {
        let now = Utc::now();
        Self {
            year: now.year(),
            month: now.month(),
        }
    }

    /// `YYYY-MM`.
    pub fn parse(s: &str) -> Option<Self> {
        let (y, m) = s.split_once('-')?;
        let (year, month) = (y.parse().ok()?, m.parse().ok()?);
        (y.len() == 4 && m.len() == 2 && (1..=12).contains(&month) && year >= 1970)
            .then_some(Self { year, month })
    }

    /// Months since January 1970: the billing daemon's `period_idx`.
    pub fn index(self) -> i64 {
        i64::from(self.year - 1970) * 12 + i64::from(self.month) - 1
    }

    pub fn start(self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(self.year, self.month, 1, 0, 0, 0)
            .single()
            .unwrap_or(DateTime::UNIX_EPOCH)
    }

    pub fn end(self) -> DateTime<Utc> {
        let (y, m) = if self.month == 12 {
            (self.year + 1, 1)
        } else {
            (self.year, self.month + 1)
        };
        Self { year: y, month: m }.start()
    }

    pub fn label(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        let p = Period::parse("2026-11").unwrap();
        assert_eq!(p.index(), 56 * 12 + 10);
        assert_eq!(p.start().to_rfc3339(), "2026-11-01T00:00:00+00:00");
        assert_eq!(p.end().to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(
            Period::parse("2026-12").unwrap().end().to_rfc3339(),
            "2027-01-01T00:00:00+00:00"
        );
        for bad in ["2026-13", "2026-1", "26-11", "x", "2026-00", ""] {
            assert!(Period::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_documented_price_table_is_the_built_in_one() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/price-table.json");
        assert_eq!(PriceTable::load(&shipped).unwrap(), PriceTable::default());
    }

    #[test]
    fn price_table_refuses_nonsense() {
        let dir = std::env::temp_dir().join(format!("ritma-prices-{}", uuid::Uuid::new_v4()));
        std::fs::write(&dir, r#"{"currency":"EUR"}"#).unwrap();
        assert!(PriceTable::load(&dir).is_err());
        let mut t = PriceTable::default();
        t.decisions.per = 0.0;
        std::fs::write(&dir, serde_json::to_string(&t).unwrap()).unwrap();
        assert!(
            PriceTable::load(&dir)
                .unwrap_err()
                .to_string()
                .contains("decisions")
        );
        std::fs::write(&dir, serde_json::to_string(&PriceTable::default()).unwrap()).unwrap();
        assert_eq!(PriceTable::load(&dir).unwrap(), PriceTable::default());
        let _ = std::fs::remove_file(dir);
        assert_eq!(money(1.005), 1.0);
        assert_eq!(money(2.499), 2.5);
    }
}
