//! The committed OpenAPI document carries exactly the schemas the contract's
//! types generate, and every schema it references exists.

use std::collections::BTreeSet;
use std::path::PathBuf;

use ritma_api::openapi::{self, BEGIN, DOCUMENT, END, SpliceError};

fn document_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(DOCUMENT)
}

#[test]
fn the_committed_document_carries_the_generated_schemas() {
    let path = document_path();
    let committed = std::fs::read_to_string(&path).expect("read the OpenAPI document");
    let generated = openapi::splice(&committed, &openapi::component_schemas())
        .expect("the document has both marker lines");
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
    for name in openapi::component_schemas().keys() {
        assert!(
            defined.contains(name),
            "generated {name} is not in the document"
        );
    }
}

#[test]
fn a_document_without_its_markers_is_refused() {
    let schemas = openapi::component_schemas();
    assert_eq!(
        openapi::splice("openapi: 3.0.3\n", &schemas),
        Err(SpliceError::MissingMarker(BEGIN))
    );
    assert_eq!(
        openapi::splice(&format!("components:\n  schemas:\n{BEGIN}\n"), &schemas),
        Err(SpliceError::MissingMarker(END))
    );
}

#[test]
fn splicing_twice_changes_nothing() {
    let schemas = openapi::component_schemas();
    let doc = format!("components:\n  schemas:\n{BEGIN}\n    Old: {{}}\n{END}\n    Kept: {{}}\n");
    let once = openapi::splice(&doc, &schemas).expect("markers present");
    assert!(
        !once.contains("Old:"),
        "the old generated block is replaced"
    );
    assert!(
        once.contains("    Kept: {}\n"),
        "what follows the block stays"
    );
    assert!(once.contains("    NodeView:\n"));
    assert_eq!(openapi::splice(&once, &schemas).as_ref(), Ok(&once));
}

#[test]
fn a_type_read_and_written_has_one_schema() {
    let responses = openapi::response_schemas();
    for (name, schema) in openapi::request_schemas() {
        if let Some(written) = responses.get(&name) {
            assert_eq!(
                written, &schema,
                "{name} differs as read and as written: give the request its own type"
            );
        }
    }
}
