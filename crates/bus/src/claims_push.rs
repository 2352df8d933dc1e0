//! Pushing account JWTs to the servers' `full` resolver: a new org, a changed
//! export list, a revocation. No server restart; pushed accounts persist in
//! the resolver folder.

use std::time::Duration;

use serde::Deserialize;

use crate::BusError;

const CLAIMS_UPDATE: &str = "$SYS.REQ.CLAIMS.UPDATE";

#[derive(Deserialize)]
struct Reply {
    error: Option<ReplyError>,
}

#[derive(Deserialize)]
struct ReplyError {
    description: Option<String>,
}

/// Push `account_jwt` through a connection in the system account.
pub async fn push_account_jwt(
    system: &async_nats::Client,
    account_jwt: &str,
) -> Result<(), BusError> {
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        system.request(CLAIMS_UPDATE, account_jwt.to_owned().into()),
    )
    .await
    .map_err(|_| BusError::Request("claims update timed out".into()))?
    .map_err(|e| BusError::Request(e.to_string()))?;
    let reply: Reply = serde_json::from_slice(&reply.payload)
        .map_err(|e| BusError::ClaimsRejected(format!("unreadable reply: {e}")))?;
    match reply.error {
        Some(e) => Err(BusError::ClaimsRejected(
            e.description.unwrap_or_else(|| "no reason given".into()),
        )),
        None => Ok(()),
    }
}
