//! The CLI's controller client: the contract's typed client
//! (`ritma_api::client`) with the admin token.

use ritma_api::client::{Client, ClientError};

pub type Api = Client;

pub fn api(base: &str, token: &str) -> Api {
    Client::new(reqwest::Client::new(), base).bearer(token)
}

/// A create that already happened (409) counts as done: the demo setup
/// runs again on every `ritma up`.
pub fn done_or_exists<T>(result: Result<T, ClientError>) -> Result<(), ClientError> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.status() == Some(409) => Ok(()),
        Err(e) => Err(e),
    }
}
