//! Keeps the node on the policy the controller assigns, as far as the org's
//! control key vouches for it.

use std::sync::Arc;
use std::time::Duration;

use nkeys::KeyPair;
use ritma_protocol::{NodeId, OrgId};
use tokio_util::sync::CancellationToken;

use crate::compliance::ComplianceIndex;
use crate::controller_client::ControllerClient;
use crate::policy::{self, ApplyError, PolicyStore};
use crate::trust::PinnedKey;

pub struct PolicySync {
    pub client: Arc<ControllerClient>,
    pub key: Arc<KeyPair>,
    pub org: OrgId,
    pub node: NodeId,
    pub pinned: Arc<PinnedKey>,
    pub store: Arc<PolicyStore>,
    pub compliance: Arc<ComplianceIndex>,
    pub hold: bool,
    pub every: Duration,
    /// The bus CA bundle this node pinned (None: none, or RITMA_NODE_CA_FILE
    /// is configured and wins, so offered bundles are not followed).
    pub bus_ca: Option<std::sync::Mutex<Option<String>>>,
}

impl PolicySync {
    pub async fn run<F, Fut>(
        self,
        now: Arc<tokio::sync::Notify>,
        stop: CancellationToken,
        on_change: F,
    ) where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        loop {
            if self.sync_once().await {
                on_change().await;
            }
            let jitter = 0.9 + rand::random::<f64>() * 0.2;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = now.notified() => {}
                _ = tokio::time::sleep(self.every.mul_f64(jitter)) => {}
            }
        }
    }

    /// One sync; true when what the heartbeat reports changed (the applied
    /// policy, or a refusal).
    pub async fn sync_once(&self) -> bool {
        if self.hold {
            tracing::info!("policy on hold: keeping the cached policy");
            return false;
        }
        let response = match self.client.policy(&self.node, &self.key).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "policy sync failed; keeping the cached policy");
                return false;
            }
        };
        self.pinned.follow(&response.key_rotations);
        if let (Some(cell), Some(offered)) = (&self.bus_ca, &response.bus_ca) {
            let mut current = cell.lock().unwrap_or_else(|e| e.into_inner());
            if self.pinned.bus_ca_follow(offered, current.as_deref()) {
                *current = Some(offered.pem.clone());
            }
        }
        let pinned = self.pinned.get();
        let bundle = response.bundle;
        let rejected_before = self.store.applied().rejected;
        let outcome = self.store.apply(bundle.as_ref(), |b| {
            b.verify_signed(&self.org, &self.node, &pinned)
        });
        match outcome {
            Ok(policy::Outcome::Applied(version)) => {
                tracing::info!(%version, "policy applied");
                let mode = bundle.as_ref().map(|b| b.mode);
                let sha = bundle.as_ref().map(|b| b.sha256.clone());
                self.compliance.append(
                    self.node.as_str(),
                    "policy_applied",
                    serde_json::json!({ "version": version, "mode": mode, "sha256": sha }),
                );
                true
            }
            Ok(policy::Outcome::Cleared) => {
                tracing::info!("no policy assigned any more");
                true
            }
            Ok(policy::Outcome::Unchanged) => rejected_before.is_some(),
            Err(ApplyError::Refused(e)) => {
                let reason = e.to_string();
                tracing::error!(error = %reason, "policy refused; keeping the current policy");
                let news = rejected_before != self.store.applied().rejected;
                if news {
                    self.compliance.append(
                        self.node.as_str(),
                        "policy_rejected",
                        serde_json::json!({ "reason": reason }),
                    );
                }
                news
            }
            Err(e) => {
                tracing::error!(error = %e, "policy not applied; keeping the cached policy");
                false
            }
        }
    }
}
