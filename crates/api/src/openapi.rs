//! The OpenAPI document's component schemas, generated from the contract's
//! types and spliced between two marker lines of
//! `crates/controller/openapi.yaml`. `tests/openapi.rs` fails when the
//! committed document drifts from the types; `RITMA_BLESS=1 cargo test -p
//! ritma-api` rewrites it after an intended change.

use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value};

use crate::access::{AuditEntryView, GrantRequest, MeView, RoleGrantView};
use crate::activity::Activity;
use crate::alerts::{
    AlertList, ChannelCreate, ChannelCreated, ChannelList, DeliveryList, DeliveryView, RuleCreate,
    RuleList, RuleView, SilenceCreate, SilenceList, SilenceView,
};
use crate::bulk::{BulkJobItemPage, BulkJobList, BulkJobPreview, BulkJobRequest, BulkJobView};
use crate::connectors::{
    ConnectorAllowList, ConnectorConfig, ConnectorList, ConnectorView, DryRunReport,
};
use crate::console::{ConsoleCredentialRequest, ConsoleCredentialResponse};
use crate::enrollment::{
    CredentialsRequest, CredentialsResponse, RegisterRequest, RegisterResponse, RekeyRequest,
};
use crate::error::ErrorBody;
use crate::keys::{GovernancePatch, KeyCreate, KeyList, KeySummaryView, KeyView};
use crate::nodes::{NodeDetail, NodeList, NodeSummary};
use crate::orgs::{CreateOrg, IntegratorRequest, IntegratorResponse, IntegratorView, OrgView};
use crate::policies::{
    AssignmentCreate, AssignmentList, AssignmentView, NodeAssign, NodePolicies, RulepackCreate,
    RulepackList, RulepackRevisions,
};
use crate::tokens::{CreateToken, TokenView};
use crate::usage::{NodeEventsSummary, NodeSloSummary, UsageSummary};
use crate::yaml;

/// The document's path, from the workspace root.
pub const DOCUMENT: &str = "crates/controller/openapi.yaml";
pub const BEGIN: &str =
    "    # generated from crates/api (RITMA_BLESS=1 cargo test -p ritma-api): begin";
pub const END: &str = "    # generated from crates/api: end";

/// Every schema the contract's types define, by name, in OpenAPI 3.0 form:
/// responses as the controller writes them, requests as it reads them (so
/// `deny_unknown_fields` shows as `additionalProperties: false`). A type in
/// both (an enum, say) has one schema (`tests/openapi.rs` checks).
pub fn component_schemas() -> Map<String, Value> {
    let mut out = response_schemas();
    out.extend(request_schemas());
    out
}

/// The schemas of what the controller writes.
pub fn response_schemas() -> Map<String, Value> {
    let mut generator = SchemaGenerator::new(SchemaSettings::openapi3().for_serialize());
    add::<ErrorBody>(&mut generator);
    add::<OrgView>(&mut generator);
    add::<TokenView>(&mut generator);
    add::<NodeList>(&mut generator);
    add::<NodeDetail>(&mut generator);
    add::<NodeSummary>(&mut generator);
    add::<MeView>(&mut generator);
    add::<AuditEntryView>(&mut generator);
    add::<ConsoleCredentialResponse>(&mut generator);
    add::<BulkJobPreview>(&mut generator);
    add::<BulkJobView>(&mut generator);
    add::<BulkJobList>(&mut generator);
    add::<BulkJobItemPage>(&mut generator);
    add::<RulepackList>(&mut generator);
    add::<RulepackRevisions>(&mut generator);
    add::<AssignmentView>(&mut generator);
    add::<AssignmentList>(&mut generator);
    add::<NodePolicies>(&mut generator);
    add::<KeyView>(&mut generator);
    add::<KeyList>(&mut generator);
    add::<KeySummaryView>(&mut generator);
    add::<ConnectorView>(&mut generator);
    add::<ConnectorList>(&mut generator);
    add::<DryRunReport>(&mut generator);
    add::<ChannelCreated>(&mut generator);
    add::<ChannelList>(&mut generator);
    add::<DeliveryView>(&mut generator);
    add::<DeliveryList>(&mut generator);
    add::<RuleView>(&mut generator);
    add::<RuleList>(&mut generator);
    add::<SilenceView>(&mut generator);
    add::<SilenceList>(&mut generator);
    add::<AlertList>(&mut generator);
    add::<NodeSloSummary>(&mut generator);
    add::<NodeEventsSummary>(&mut generator);
    add::<UsageSummary>(&mut generator);
    add::<Activity>(&mut generator);
    add::<RoleGrantView>(&mut generator);
    add::<IntegratorResponse>(&mut generator);
    add::<IntegratorView>(&mut generator);
    add::<RegisterResponse>(&mut generator);
    add::<CredentialsResponse>(&mut generator);
    definitions(generator)
}

/// The schemas of what the controller reads.
pub fn request_schemas() -> Map<String, Value> {
    let mut generator = SchemaGenerator::new(SchemaSettings::openapi3().for_deserialize());
    add::<CreateOrg>(&mut generator);
    add::<CreateToken>(&mut generator);
    add::<ConsoleCredentialRequest>(&mut generator);
    add::<BulkJobRequest>(&mut generator);
    add::<RulepackCreate>(&mut generator);
    add::<AssignmentCreate>(&mut generator);
    add::<NodeAssign>(&mut generator);
    add::<KeyCreate>(&mut generator);
    add::<GovernancePatch>(&mut generator);
    add::<ConnectorConfig>(&mut generator);
    add::<ChannelCreate>(&mut generator);
    add::<RuleCreate>(&mut generator);
    add::<SilenceCreate>(&mut generator);
    add::<RegisterRequest>(&mut generator);
    add::<CredentialsRequest>(&mut generator);
    add::<RekeyRequest>(&mut generator);
    add::<GrantRequest>(&mut generator);
    add::<IntegratorRequest>(&mut generator);
    // Read and written; the request's schema (no unknown fields) holds for both.
    add::<ConnectorAllowList>(&mut generator);
    definitions(generator)
}

fn definitions(mut generator: SchemaGenerator) -> Map<String, Value> {
    let mut out = generator.take_definitions(true);
    out.values_mut().for_each(nullable_refs);
    out
}

fn add<T: JsonSchema>(generator: &mut SchemaGenerator) {
    generator.subschema_for::<T>();
}

/// OpenAPI 3.0 has no `null` type: an optional reference, which schemars
/// writes as `anyOf: [{$ref}, {nullable, enum: [null]}]`, becomes
/// `allOf: [{$ref}], nullable: true`.
fn nullable_refs(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let optional_ref = map.get("anyOf").and_then(Value::as_array).and_then(|any| {
                let [first, second] = any.as_slice() else {
                    return None;
                };
                let only_null = second.get("const") == Some(&Value::Null)
                    || second.get("enum") == Some(&Value::Array(vec![Value::Null]));
                let null = second.get("nullable") == Some(&Value::Bool(true)) && only_null;
                (null && first.get("$ref").is_some()).then(|| first.clone())
            });
            if let Some(reference) = optional_ref {
                map.remove("anyOf");
                map.insert("allOf".into(), Value::Array(vec![reference]));
                map.insert("nullable".into(), Value::Bool(true));
            }
            map.values_mut().for_each(nullable_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(nullable_refs),
        _ => {}
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpliceError {
    #[error("the document has no line {0:?}")]
    MissingMarker(&'static str),
}

/// `document` with the lines between [`BEGIN`] and [`END`] replaced by `schemas`.
pub fn splice(document: &str, schemas: &Map<String, Value>) -> Result<String, SpliceError> {
    let begin = find_line(document, BEGIN).ok_or(SpliceError::MissingMarker(BEGIN))?;
    let end = find_line(&document[begin..], END)
        .map(|at| begin + at)
        .ok_or(SpliceError::MissingMarker(END))?;
    let head_end = begin + BEGIN.len() + 1;
    let mut out = String::with_capacity(document.len());
    out.push_str(&document[..head_end.min(document.len())]);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&yaml::mapping(schemas, 4));
    out.push_str(&document[end..]);
    Ok(out)
}

/// Byte offset of the line that is exactly `line`.
fn find_line(text: &str, line: &str) -> Option<usize> {
    let mut at = 0;
    for l in text.split_inclusive('\n') {
        if l.trim_end_matches('\n') == line {
            return Some(at);
        }
        at += l.len();
    }
    None
}
