//! The node-facing calls: enrollment, credential refresh and re-key
//! (`/api/nodes/register`, `/api/nodes/{id}/credentials`,
//! `/api/nodes/{id}/rekey`). The daemon speaks them, so their types live with
//! the bus contract in `ritma_protocol::enrollment`; they are part of this
//! contract too.

pub use ritma_protocol::enrollment::{
    CredentialsRequest, CredentialsResponse, RegisterRequest, RegisterResponse, RekeyRequest,
};
