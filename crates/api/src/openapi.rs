//! The OpenAPI document's paths and component schemas, generated from the
//! operation table ([`crate::routes`]) and the contract's types, and spliced
//! between marker lines of `crates/controller/openapi.yaml` (the header, the
//! security schemes and the shared error answers around them are written by
//! hand). `tests/openapi.rs` fails when the committed document drifts;
//! `RITMA_BLESS=1 cargo test -p ritma-api` rewrites it.

use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use crate::endpoint::Access;
use crate::error::ErrorBody;
use crate::routes::{Generators, Operation, operations};
use crate::yaml;

/// The document's path, from the workspace root.
pub const DOCUMENT: &str = "crates/controller/openapi.yaml";

/// The marker lines around one generated block, and its indent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub begin: &'static str,
    pub end: &'static str,
    pub indent: usize,
}

pub const PATHS: Block = Block {
    begin: "  # paths generated from crates/api (RITMA_BLESS=1 cargo test -p ritma-api): begin",
    end: "  # paths generated from crates/api: end",
    indent: 2,
};

pub const SCHEMAS: Block = Block {
    begin: "    # generated from crates/api (RITMA_BLESS=1 cargo test -p ritma-api): begin",
    end: "    # generated from crates/api: end",
    indent: 4,
};

/// What is generated: the paths and the component schemas, as written
/// (`responses`) and as read (`requests`).
pub struct Generated {
    pub paths: Map<String, Value>,
    pub requests: Map<String, Value>,
    pub responses: Map<String, Value>,
}

impl Generated {
    /// Every schema, by name. A type both read and written has one schema
    /// (`tests/openapi.rs` checks); the request's form is kept.
    pub fn schemas(&self) -> Map<String, Value> {
        let mut out = self.responses.clone();
        out.extend(self.requests.clone());
        out
    }
}

pub fn generate() -> Generated {
    let mut generators = Generators {
        requests: SchemaGenerator::new(SchemaSettings::openapi3().for_deserialize()),
        responses: SchemaGenerator::new(SchemaSettings::openapi3().for_serialize()),
    };
    generators.responses.subschema_for::<ErrorBody>();
    let mut paths = Map::new();
    for op in operations() {
        let item = paths
            .entry(op.path)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(item) = item {
            item.insert(op.method.key().into(), operation(&op, &mut generators));
        }
    }
    let mut paths = Value::Object(paths);
    nullable_refs(&mut paths);
    let Value::Object(paths) = paths else {
        unreachable!("built as an object")
    };
    Generated {
        paths,
        requests: definitions(generators.requests),
        responses: definitions(generators.responses),
    }
}

/// One operation object.
fn operation(op: &Operation, generators: &mut Generators) -> Value {
    let schemas = (op.schemas)(generators);
    let mut out = Map::new();
    out.insert("operationId".into(), op.operation_id.into());
    out.insert("summary".into(), op.summary.into());
    if let Some(text) = op.description {
        out.insert("description".into(), text.into());
    }
    match op.access {
        Access::Principal => {}
        Access::Public => {
            out.insert("security".into(), json!([]));
        }
        Access::ConsoleService => {
            out.insert("security".into(), json!([{ "consoleService": [] }]));
        }
        Access::MetricsToken => {
            out.insert("security".into(), json!([{ "metrics": [] }]));
        }
    }
    let mut params = parameters(&schemas.path.to_value(), "path");
    params.extend(parameters(&schemas.query.to_value(), "query"));
    if !params.is_empty() {
        out.insert("parameters".into(), Value::Array(params));
    }
    if let Some(schema) = schemas.request {
        out.insert(
            "requestBody".into(),
            json!({ "required": true, "content": { "application/json": { "schema": schema } } }),
        );
    }
    let mut responses = Map::new();
    for (status, text) in op.ok {
        let mut answer = Map::new();
        answer.insert("description".into(), (*text).into());
        if let Some(content) = &schemas.response {
            answer.insert("content".into(), content.clone());
        }
        responses.insert(status.to_string(), Value::Object(answer));
    }
    let mut errors = op.errors.to_vec();
    // A parameter or a body that does not parse is refused before the
    // handler runs, whatever the operation documents itself.
    let takes_input = out.contains_key("parameters") || out.contains_key("requestBody");
    if takes_input && !errors.iter().any(|(status, _)| *status == 400) {
        errors.push((400, "BadRequest"));
    }
    for (status, name) in errors {
        responses.insert(
            status.to_string(),
            json!({ "$ref": format!("#/components/responses/{name}") }),
        );
    }
    out.insert("responses".into(), Value::Object(responses));
    Value::Object(out)
}

/// One parameter per property of an object schema (path parameters are
/// always required; query ones when the type requires them).
fn parameters(schema: &Value, location: &str) -> Vec<Value> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, property)| {
            let mut property = property.clone();
            nullable_refs(&mut property);
            let mut out = Map::new();
            out.insert("name".into(), name.as_str().into());
            out.insert("in".into(), location.into());
            if location == "path" || required.contains(&name.as_str()) {
                out.insert("required".into(), true.into());
            }
            if let Value::Object(p) = &mut property {
                if let Some(text) = p.remove("description") {
                    out.insert("description".into(), text);
                }
                // An absent parameter is how a query says "none".
                p.remove("nullable");
                if let Some(Value::Array(all)) = p.get("allOf").cloned()
                    && let [only] = all.as_slice()
                {
                    p.remove("allOf");
                    if let Value::Object(only) = only {
                        p.extend(only.clone());
                    }
                }
                if p.get("default") == Some(&Value::Null) {
                    p.remove("default");
                }
                if let Some(Value::Array(types)) = p.get("type").cloned() {
                    let one: Vec<Value> = types.into_iter().filter(|t| t != "null").collect();
                    if let [only] = one.as_slice() {
                        p.insert("type".into(), only.clone());
                    }
                }
            }
            out.insert("schema".into(), property);
            Value::Object(out)
        })
        .collect()
}

fn definitions(mut generator: SchemaGenerator) -> Map<String, Value> {
    let mut out = generator.take_definitions(true);
    out.values_mut().for_each(nullable_refs);
    out
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

/// The committed `document` with both generated blocks written afresh.
pub fn document(document: &str, generated: &Generated) -> Result<String, SpliceError> {
    let with_paths = splice(document, PATHS, &generated.paths)?;
    splice(&with_paths, SCHEMAS, &generated.schemas())
}

/// `document` with the lines between `block`'s markers replaced by `entries`.
pub fn splice(
    document: &str,
    block: Block,
    entries: &Map<String, Value>,
) -> Result<String, SpliceError> {
    let begin = find_line(document, block.begin).ok_or(SpliceError::MissingMarker(block.begin))?;
    let end = find_line(&document[begin..], block.end)
        .map(|at| begin + at)
        .ok_or(SpliceError::MissingMarker(block.end))?;
    let head_end = begin + block.begin.len() + 1;
    let mut out = String::with_capacity(document.len());
    out.push_str(&document[..head_end.min(document.len())]);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&yaml::mapping(entries, block.indent));
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
