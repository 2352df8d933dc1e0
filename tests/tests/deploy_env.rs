//! The environment variables named in deploy/ and the READMEs are the ones
//! the binaries read: the controller's, the node's and the console's come
//! from their clap definitions; the few read elsewhere are listed here with
//! the source that reads them, and that source is checked too.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::CommandFactory;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn clap_envs(cmd: clap::Command, out: &mut BTreeSet<String>) {
    for arg in cmd.get_arguments() {
        if let Some(env) = arg.get_env() {
            out.insert(env.to_string_lossy().into_owned());
        }
    }
    for sub in cmd.get_subcommands() {
        clap_envs(sub.clone(), out);
    }
}

/// Names read outside the three binaries' clap definitions: (name, file
/// that reads or defines it). Each file must contain the name.
const OTHER_NAMES: &[(&str, &str)] = &[
    // Logging, read by every binary through ritma-runtime.
    ("RITMA_LOG", "crates/runtime/src/lib.rs"),
    ("RITMA_LOG_FORMAT", "crates/runtime/src/lib.rs"),
    // JetStream stream names (not variables, named in the docs).
    ("RITMA_TELEMETRY", "crates/bus/src/streams.rs"),
    ("RITMA_DEADLETTER", "crates/bus/src/streams.rs"),
    // The `ritma` CLI (a binary crate) and its dev stack.
    ("RITMA_SUMMARY_SECS", "crates/cli/src/up.rs"),
    ("RITMA_OFFLINE_GRACE_SECS", "crates/cli/src/up.rs"),
    ("RITMA_DEMO_DECISIONS_PER_SEC", "crates/cli/src/up.rs"),
    // The nats-server binary the dev stack, tests and benchmarks run.
    ("RITMA_NATS_SERVER", "crates/devstack/src/nats_binary.rs"),
    // Tests and the scripts around them.
    ("RITMA_FAULT_OUTAGE_SECS", "tests/tests/faults.rs"),
    ("RITMA_NOISY_SECS", "tests/tests/noisy_neighbour.rs"),
    ("RITMA_NOISY_RATE", "tests/tests/noisy_neighbour.rs"),
    ("RITMA_DENY_ADVISORIES", "tests/run.sh"),
    ("RITMA_PYTHON", "tests/run.sh"),
    ("RITMA_TEST_DATABASE_URL", "tests/run.sh"),
    ("RITMA_BLESS", "crates/protocol/src/contract.rs"),
    // Deploy tooling: the image tag (compose), the console's API token
    // (compose, mapped to RITMA_API_TOKEN), the validator's tool folder.
    ("RITMA_VERSION", "deploy/compose/compose.yaml"),
    ("RITMA_CONSOLE_API_TOKEN", "deploy/compose/compose.yaml"),
    ("RITMA_VALIDATE_TOOLS", "deploy/validate.sh"),
];

fn known_names() -> BTreeSet<String> {
    let mut known = BTreeSet::new();
    clap_envs(ritma_controller::Config::command(), &mut known);
    clap_envs(ritma_node::Args::command(), &mut known);
    clap_envs(ritma_console::server::config::Config::command(), &mut known);
    let root = workspace();
    for (name, file) in OTHER_NAMES {
        let text = std::fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("{file} (said to read {name}): {e}"));
        assert!(
            text.contains(name),
            "{file} no longer mentions {name}: update OTHER_NAMES"
        );
        known.insert((*name).to_owned());
    }
    known
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "node_modules" || name == "target" {
            continue;
        }
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// `RITMA_[A-Z0-9_]+` words in `text`.
fn ritma_names(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while let Some(at) = text[i..].find("RITMA_") {
        let start = i + at;
        let boundary = start == 0 || {
            let b = bytes[start - 1];
            !(b.is_ascii_alphanumeric() || b == b'_')
        };
        let mut end = start + "RITMA_".len();
        while end < bytes.len()
            && (bytes[end].is_ascii_uppercase()
                || bytes[end].is_ascii_digit()
                || bytes[end] == b'_')
        {
            end += 1;
        }
        if boundary && end > start + "RITMA_".len() {
            out.insert(text[start..end].trim_end_matches('_').to_owned());
        }
        i = end;
    }
    out
}

#[test]
fn deploy_files_and_readmes_name_only_variables_the_binaries_read() {
    let known = known_names();
    // The names the issue found wrong are not among them.
    for wrong in ["RITMA_RITMA_CLOUD_URL", "RITMA_BILLING_URL"] {
        assert!(!known.contains(wrong), "{wrong}");
    }
    let root = workspace();
    let mut files = Vec::new();
    files_under(&root.join("deploy"), &mut files);
    files.push(root.join("README.md"));
    let mut unknown: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for name in ritma_names(&text) {
            if !known.contains(&name) {
                unknown
                    .entry(name)
                    .or_default()
                    .push(file.strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "variables no binary reads (name: files): {unknown:#?}"
    );
}

#[test]
fn the_scanner_finds_whole_names() {
    let names = ritma_names("a RITMA_X_URL=1 xRITMA_NO ${RITMA_Y:-2} `RITMA_Z`.");
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["RITMA_X_URL", "RITMA_Y", "RITMA_Z"]
    );
}
