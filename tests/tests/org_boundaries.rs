//! Every org first-class (issue 18): limits the broker enforces per user,
//! revocations that stay bounded, node signatures that cannot be replayed
//! across protocols, and keys, caches and ids that never cross orgs.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

#[path = "org_boundaries/billing.rs"]
mod billing;
#[path = "org_boundaries/helpers.rs"]
mod helpers;
#[path = "org_boundaries/integrators.rs"]
mod integrators;
#[path = "org_boundaries/limits.rs"]
mod limits;
#[path = "org_boundaries/revocations.rs"]
mod revocations;
#[path = "org_boundaries/signatures.rs"]
mod signatures;
#[path = "org_boundaries/signing_keys.rs"]
mod signing_keys;
