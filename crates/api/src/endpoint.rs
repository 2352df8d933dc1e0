//! Each REST operation as a type ([`Endpoint`]): its method, its path
//! template and the types of its path parameters, query, body and answer.
//! The typed client calls them, and the OpenAPI document's paths are
//! generated from them ([`crate::routes::operations`]).

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    /// The HTTP token (`GET`).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    /// The OpenAPI path item key (`get`).
    pub fn key(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Put => "put",
            Method::Patch => "patch",
            Method::Delete => "delete",
        }
    }
}

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential (health, enrollment, a node's signed requests).
    Public,
    /// A principal: the admin token or an OIDC access token (the default).
    Principal,
    /// The console's service token.
    ConsoleService,
    /// The metrics token.
    MetricsToken,
}

/// One REST operation.
pub trait Endpoint {
    const METHOD: Method;
    /// The path template, `{name}` for each field of [`Endpoint::Path`]
    /// (axum's syntax and OpenAPI's).
    const PATH: &'static str;
    const OPERATION_ID: &'static str;
    type Path: Serialize + JsonSchema;
    type Query: Serialize + JsonSchema;
    type Request: RequestBody;
    type Response: ResponseBody;
}

/// What an operation takes as its body.
pub trait RequestBody {
    /// The value the client serialises (`()` for none).
    type Value: Serialize;
    /// Whether the operation takes a body at all.
    const PRESENT: bool;
    /// `None`: the operation takes no body.
    fn schema(generator: &mut SchemaGenerator) -> Option<Schema>;
}

/// What an operation answers on success.
pub trait ResponseBody {
    /// The value the client reads.
    type Value;
    /// The OpenAPI `content` map (`None`: no body).
    fn content(generator: &mut SchemaGenerator) -> Option<serde_json::Value>;
    /// Reads a successful answer's body.
    fn decode(bytes: &[u8]) -> Result<Self::Value, serde_json::Error>;
}

/// A JSON body of type `T` (request or answer).
pub struct Json<T>(std::marker::PhantomData<T>);

impl<T: Serialize + JsonSchema> RequestBody for Json<T> {
    type Value = T;
    const PRESENT: bool = true;
    fn schema(generator: &mut SchemaGenerator) -> Option<Schema> {
        Some(generator.subschema_for::<T>())
    }
}

impl<T: DeserializeOwned + JsonSchema> ResponseBody for Json<T> {
    type Value = T;
    fn content(generator: &mut SchemaGenerator) -> Option<serde_json::Value> {
        let schema = generator.subschema_for::<T>();
        Some(serde_json::json!({ "application/json": { "schema": schema } }))
    }
    fn decode(bytes: &[u8]) -> Result<T, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// No body: a request without one, or `204 No Content`.
pub struct NoBody;

impl RequestBody for NoBody {
    type Value = ();
    const PRESENT: bool = false;
    fn schema(_: &mut SchemaGenerator) -> Option<Schema> {
        None
    }
}

impl ResponseBody for NoBody {
    type Value = ();
    fn content(_: &mut SchemaGenerator) -> Option<serde_json::Value> {
        None
    }
    fn decode(_: &[u8]) -> Result<(), serde_json::Error> {
        Ok(())
    }
}

/// A plain-text answer (the Prometheus metrics).
pub struct PlainText;

impl ResponseBody for PlainText {
    type Value = String;
    fn content(_: &mut SchemaGenerator) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "text/plain": { "schema": { "type": "string" } } }))
    }
    fn decode(bytes: &[u8]) -> Result<String, serde_json::Error> {
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }
}

/// A streamed export: CSV, or a JSON array of rows (`format=json`). The
/// client streams it rather than reading it whole; `decode` keeps the bytes.
pub struct Export;

impl ResponseBody for Export {
    type Value = Vec<u8>;
    fn content(_: &mut SchemaGenerator) -> Option<serde_json::Value> {
        Some(serde_json::json!({
            "text/csv": { "schema": { "type": "string" } },
            "application/json": { "schema": { "type": "array", "items": { "type": "object" } } },
        }))
    }
    fn decode(bytes: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
        Ok(bytes.to_vec())
    }
}
