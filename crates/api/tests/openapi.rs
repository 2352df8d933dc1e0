//! The committed OpenAPI document carries exactly the paths and schemas the
//! contract's operation table and types generate, and every schema it
//! references exists.

use std::collections::BTreeSet;
use std::path::PathBuf;

use ritma_api::openapi::{self, DOCUMENT, PATHS, SCHEMAS, SpliceError};

fn document_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(DOCUMENT)
}

#[test]
fn the_committed_document_carries_the_generated_paths_and_schemas() {
    let path = document_path();
    let committed = std::fs::read_to_string(&path).expect("read the OpenAPI document");
    let generated = openapi::document(&committed, &openapi::generate())
        .expect("the document has its marker lines");
    if std::env::var_os("RITMA_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write the OpenAPI document");
        return;
    }
    assert!(
        committed == generated,
        "{DOCUMENT} drifted from the types in crates/api: run `RITMA_BLESS=1 cargo test -p ritma-api` and commit the result"
    );
}

#[test]
fn every_referenced_schema_is_defined_and_every_defined_one_used() {
    let doc = std::fs::read_to_string(document_path()).expect("read the OpenAPI document");
    let mut defined = BTreeSet::new();
    let mut in_schemas = false;
    for line in doc.lines() {
        if line == "  schemas:" {
            in_schemas = true;
            continue;
        }
        if in_schemas && !line.trim().is_empty() && !line.starts_with("    ") {
            in_schemas = false;
        }
        if in_schemas
            && let Some(name) = line.strip_prefix("    ").and_then(|l| l.strip_suffix(':'))
            && !name.starts_with(' ')
        {
            defined.insert(name.to_string());
        }
    }
    let prefix = "#/components/schemas/";
    let referenced: BTreeSet<String> = doc
        .match_indices(prefix)
        .map(|(at, _)| {
            doc[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect();
    let missing: Vec<&String> = referenced.difference(&defined).collect();
    assert!(
        missing.is_empty(),
        "referenced but not defined: {missing:?}"
    );
    let unused: Vec<&String> = defined.difference(&referenced).collect();
    assert!(
        unused.is_empty(),
        "defined but never referenced: {unused:?}"
    );
    for name in openapi::generate().schemas().keys() {
        assert!(
            defined.contains(name),
            "generated {name} is not in the document"
        );
    }
}

#[test]
fn a_document_without_its_markers_is_refused() {
    let generated = openapi::generate();
    assert_eq!(
        openapi::document("openapi: 3.0.3\n", &generated),
        Err(SpliceError::MissingMarker(PATHS.begin))
    );
    assert_eq!(
        openapi::document(&format!("paths:\n{}\n", PATHS.begin), &generated),
        Err(SpliceError::MissingMarker(PATHS.end))
    );
    assert_eq!(
        openapi::document(
            &format!("paths:\n{}\n{}\n", PATHS.begin, PATHS.end),
            &generated
        ),
        Err(SpliceError::MissingMarker(SCHEMAS.begin))
    );
}

#[test]
fn splicing_twice_changes_nothing() {
    let generated = openapi::generate();
    let doc = format!(
        "paths:\n{}\n  /old: {{}}\n{}\ncomponents:\n  schemas:\n{}\n    Old: {{}}\n{}\n    Kept: {{}}\n",
        PATHS.begin, PATHS.end, SCHEMAS.begin, SCHEMAS.end
    );
    let once = openapi::document(&doc, &generated).expect("markers present");
    assert!(
        !once.contains("Old:") && !once.contains("/old"),
        "the old generated blocks are replaced"
    );
    assert!(
        once.contains("    Kept: {}\n"),
        "what follows a block stays"
    );
    assert!(once.contains("    NodeView:\n"));
    assert!(once.contains("  \"/api/orgs/{org}/nodes\":\n"));
    assert_eq!(openapi::document(&once, &generated).as_ref(), Ok(&once));
}

#[test]
fn a_type_read_and_written_has_one_schema() {
    let generated = openapi::generate();
    for (name, schema) in &generated.requests {
        if let Some(written) = generated.responses.get(name) {
            assert_eq!(
                written, schema,
                "{name} differs as read and as written: give the request its own type"
            );
        }
    }
}

/// Every `{name}` of a path template is a field of its path type, and the
/// other way round (the client fills the template from that type).
#[test]
fn path_templates_and_path_types_agree() {
    let generated = openapi::generate();
    for (path, item) in &generated.paths {
        let in_template: std::collections::BTreeSet<&str> = path
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split('}').next())
            .collect();
        for (method, op) in item.as_object().expect("a path item") {
            let in_type: std::collections::BTreeSet<&str> = op
                .get("parameters")
                .and_then(|p| p.as_array())
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(in_template, in_type, "{method} {path}");
        }
    }
}
