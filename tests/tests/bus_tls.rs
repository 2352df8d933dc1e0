//! TLS between nodes and the bus, for real (issue 24): a test CA made here
//! with the openssl CLI, nats-server serving TLS with it, the controller
//! verifying the bus against it and handing it to nodes at enrollment, nodes
//! pinning it. A wrong CA or a certificate for another name is refused, and
//! the daemon refuses plaintext addresses off loopback at start-up.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ritma_bus::connect::{self, BusTls};
use ritma_devstack::nats::NatsTls;
use ritma_devstack::{NatsServer, NatsServerSpec};
use ritma_tests::TestStack;

const WAIT: Duration = Duration::from_secs(30);

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl CLI");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`<name>.pem`, `<name>.key`).
fn ca(dir: &Path, name: &str) -> PathBuf {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    dir.join(format!("{name}.pem"))
}

/// A server certificate for `san`, signed by the CA `ca`.
fn server_cert(dir: &Path, ca: &str, name: &str, san: &str) -> NatsTls {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!(
            "subjectAltName={san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
    NatsTls {
        cert_file: dir.join(format!("{name}.pem")),
        key_file: dir.join(format!("{name}.key")),
    }
}

/// A stack whose bus serves TLS only, with `tls`; the controller verifies
/// it against `ca`.
async fn tls_stack(dir: &Path, tls: NatsTls, ca: PathBuf) -> TestStack {
    ritma_tests::init_logging();
    let root = tempfile::tempdir().unwrap();
    let keys = ritma_bus::BusKeys::load_or_create(&root.path().join("keys")).unwrap();
    let nats = NatsServer::start(NatsServerSpec {
        data_dir: &dir.join("nats"),
        keys: &keys,
        port: 0,
        name: "ritma-tls",
        cluster: None,
        tls: Some(tls),
    })
    .await
    .unwrap();
    let database_url = ritma_tests::fresh_database().await.unwrap();
    let mut stack = TestStack {
        pool: sqlx::PgPool::connect(&database_url).await.unwrap(),
        dir: root,
        keys,
        nats,
        database_url,
        controller: None,
        http: reqwest::Client::new(),
    };
    let ca_for_controller = ca.clone();
    stack.controller = Some(
        stack
            .start_controller(&move |c| c.nats_ca_file = Some(ca_for_controller.clone()))
            .await
            .unwrap(),
    );
    stack
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_pins_the_bus_ca_at_enrollment_and_refuses_other_certificates() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    let ca_pem = ca(dir, "bus-ca");
    let wrong_ca = ca(dir, "other-ca");
    let tls = server_cert(dir, "bus-ca", "bus", "IP:127.0.0.1,DNS:localhost");
    let stack = tls_stack(dir, tls, ca_pem.clone()).await;
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 2).await;

    // Enrolled over the loopback API, the node pins the bus CA and reaches
    // the TLS-only bus with it (its URL says nats://: TLS is enforced).
    let node = stack
        .spawn_daemon_with(Some(&token), stack.dir.path().join("n1"), 1, 60, |a| {
            a.node_id = Some("n1".into());
        })
        .await
        .unwrap();
    stack.wait_status("n1", "online", WAIT).await;
    let identity: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(stack.dir.path().join("n1").join("identity.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        identity["bus_ca_pem"].as_str().unwrap(),
        std::fs::read_to_string(&ca_pem).unwrap()
    );
    node.stop().await.unwrap();

    // CA rotation, first step: the controller trusts a bundle of the old and
    // a new CA. Enrolled nodes move to it, signed by their org's control
    // key, at their next policy sync, without enrolling again.
    let next_ca = ca(dir, "next-ca");
    let bundle = dir.join("bundle.pem");
    std::fs::write(
        &bundle,
        std::fs::read_to_string(&ca_pem).unwrap() + &std::fs::read_to_string(&next_ca).unwrap(),
    )
    .unwrap();
    let mut stack = stack;
    stack.controller.take().unwrap().stop().await;
    let bundle_for_controller = bundle.clone();
    stack.controller = Some(
        stack
            .start_controller(&move |c| c.nats_ca_file = Some(bundle_for_controller.clone()))
            .await
            .unwrap(),
    );
    let node = stack
        .spawn_daemon_with(None, stack.dir.path().join("n1"), 1, 60, |_| {})
        .await
        .unwrap();
    let wanted = std::fs::read_to_string(&bundle).unwrap();
    stack
        .eventually("n1 pins the new bundle", WAIT, || async {
            let id: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(stack.dir.path().join("n1").join("identity.json")).ok()?,
            )
            .ok()?;
            (id["bus_ca_pem"].as_str() == Some(wanted.as_str())).then_some(())
        })
        .await;
    assert_eq!(
        std::fs::read_to_string(stack.dir.path().join("n1").join("bus-ca.pem")).unwrap(),
        wanted
    );
    node.stop().await.unwrap();

    // A node told to trust another CA never gets onto the bus.
    let stray = stack
        .spawn_daemon_with(Some(&token), stack.dir.path().join("n2"), 1, 60, |a| {
            a.node_id = Some("n2".into());
            a.ca_file = Some(wrong_ca.clone());
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(stack.node_status("n2").await.as_deref(), Some("unseen"));
    let _ = tokio::time::timeout(Duration::from_secs(5), stray.stop()).await;

    // The bus client directly: right CA works; the wrong CA, a certificate
    // for another name, or no TLS at all are refused.
    let jwt = stack.keys.controller_user_jwt().unwrap();
    let user = &stack.keys.controller_user;
    let url = vec![stack.nats.url.clone()];
    let pinned = BusTls {
        ca_file: Some(ca_pem.clone()),
        required: false,
    };
    connect::connect_as_tls(&url, "right-ca", jwt.clone(), user, &pinned)
        .await
        .expect("the right CA verifies the bus");
    let wrong = BusTls {
        ca_file: Some(wrong_ca.clone()),
        required: false,
    };
    let e = connect::connect_as_tls(&url, "wrong-ca", jwt.clone(), user, &wrong)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    assert!(
        connect::connect_as(&url, "plaintext", jwt.clone(), user)
            .await
            .is_err(),
        "a plaintext client is not served"
    );

    let misnamed = server_cert(dir, "bus-ca", "elsewhere", "DNS:bus.elsewhere.example");
    let other_bus = NatsServer::start(NatsServerSpec {
        data_dir: &dir.join("nats-elsewhere"),
        keys: &stack.keys,
        port: 0,
        name: "ritma-elsewhere",
        cluster: None,
        tls: Some(misnamed),
    })
    .await
    .unwrap();
    let e = connect::connect_as_tls(
        std::slice::from_ref(&other_bus.url),
        "wrong-name",
        jwt,
        user,
        &pinned,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("not valid for name"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_refuses_plaintext_addresses_off_loopback_at_start_up() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let token = stack.create_token("acme", "prod", 1).await;
    let e = stack
        .spawn_daemon_with(Some(&token), stack.dir.path().join("x"), 1, 60, |a| {
            a.controller_url = Some("http://10.9.8.7:8080".into());
        })
        .await
        .err()
        .expect("a plaintext controller off loopback is refused");
    let text = e.to_string();
    assert!(
        text.contains("https://") && text.contains("RITMA_NODE_ALLOW_PLAINTEXT"),
        "{text}"
    );
    // Nothing was sent: the token is unused.
    assert_eq!(stack.count("SELECT count(*) FROM nodes").await, 0);

    // Enrolled on loopback, then pointed at a plaintext bus elsewhere.
    let node = stack
        .spawn_daemon_with(Some(&token), stack.dir.path().join("n"), 1, 60, |a| {
            a.node_id = Some("n".into());
        })
        .await
        .unwrap();
    node.stop().await.unwrap();
    let moved = stack
        .spawn_daemon_with(None, stack.dir.path().join("n"), 1, 60, |a| {
            a.nats_urls = vec!["nats://10.9.8.7:4222".into()];
        })
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), moved.handle)
        .await
        .expect("the daemon stops at once")
        .unwrap();
    let text = ended.unwrap_err().to_string();
    assert!(
        text.contains("tls://") && text.contains("RITMA_NODE_ALLOW_PLAINTEXT"),
        "{text}"
    );
}
