//! The integrators' contract checked with a client this project did not
//! write: nats-py (Python) with the `.creds` file `ritma creds integrator`
//! writes. `tests/run.sh` prepares the interpreter and sets `RITMA_PYTHON`.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use ritma_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_py_with_integrator_creds_reads_only_its_org() {
    let Ok(python) = std::env::var("RITMA_PYTHON") else {
        eprintln!(
            "RITMA_PYTHON is not set: run tests/run.sh (it installs nats-py) to include this test"
        );
        return;
    };
    let stack = TestStack::start().await.unwrap();
    let mut daemons = Vec::new();
    for org in ["acme", "globex"] {
        stack.create_org(org).await;
        let token = stack.create_token(org, "prod", 1).await;
        daemons.push(
            stack
                .spawn_daemon(Some(&token), stack.dir.path().join(org), 1, 60)
                .await
                .unwrap(),
        );
    }
    // Credentials exactly as the CLI makes them: key made here, public half sent.
    let key = nkeys::KeyPair::new_user();
    let (status, body) = stack
        .api(
            reqwest::Method::POST,
            "/api/orgs/acme/integrator-credentials",
            Some(serde_json::json!({ "public_key": key.public_key() })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let creds = stack.dir.path().join("acme.creds");
    ritma_bus::creds::write_private(
        &creds,
        &ritma_bus::creds::format_creds(body["jwt"].as_str().unwrap(), &key.seed().unwrap()),
    )
    .unwrap();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/integrators/nats_py_check.py");
    let out = tokio::process::Command::new(python)
        .args([script, "--server", &stack.nats.url, "--creds"])
        .arg(&creds)
        .args(["--org", "acme", "--foreign-org", "globex", "--seconds", "4"])
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "nats-py check failed: {report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(report.trim()).unwrap();
    assert!(report["heartbeats"].as_u64().unwrap() >= 2, "{report}");
    for d in daemons {
        d.stop().await.unwrap();
    }
}
