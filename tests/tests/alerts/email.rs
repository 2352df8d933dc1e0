//! E-mail over STARTTLS.

use reqwest::Method;
use ritma_tests::alert_sinks::{SmtpServer, test_certificates};
use ritma_tests::*;
use serde_json::json;

use crate::helpers::allow_loopback;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_goes_over_starttls_and_a_relay_without_it_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_certificates(certs.path());
    let Some(tls_relay) = SmtpServer::start(certs.path(), &cert, &key, true).await else {
        eprintln!(
            "RITMA_PYTHON is not set: run tests/run.sh (it installs aiosmtpd) to include this test"
        );
        return;
    };
    let plain_relay = SmtpServer::start(certs.path(), &cert, &key, false)
        .await
        .unwrap();
    let relay_url = format!("smtp://localhost:{}", tls_relay.port);
    let ca_file = ca.clone();
    let stack = TestStack::start_with(move |c| {
        allow_loopback(c);
        c.alerts.smtp_url = Some(relay_url.clone());
        c.alerts.smtp_ca_file = Some(ca_file.clone());
        c.alerts.smtp_from = "alerts@ritma.test".into();
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    let (status, channel) = stack
        .api(
            Method::POST,
            "/api/orgs/acme/notification-channels",
            Some(json!({ "name": "oncall mail", "kind": "email", "address": "oncall@acme.test" })),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    assert_eq!(channel["target"], "oncall@acme.test");
    let id = channel["id"].as_str().unwrap();
    let (status, outcome) = stack
        .api(
            Method::POST,
            &format!("/api/orgs/acme/notification-channels/{id}/test"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(outcome["state"], "delivered", "{outcome}");
    let mail = tls_relay.mail();
    assert!(mail.contains("RCPT oncall@acme.test"), "{mail}");
    assert!(mail.contains("TLS yes"), "sent in the clear: {mail}");
    assert!(mail.contains("[TEST]"), "{mail}");

    // The same controller pointed at a relay that offers no STARTTLS
    // refuses to send rather than fall back to plaintext.
    let mut stack = stack;
    stack.controller.take().unwrap().stop().await;
    let plain_url = format!("smtp://localhost:{}", plain_relay.port);
    let ca_file = ca.clone();
    stack.controller = Some(
        stack
            .start_controller(&move |c: &mut ritma_controller::config::Config| {
                allow_loopback(c);
                c.alerts.smtp_url = Some(plain_url.clone());
                c.alerts.smtp_ca_file = Some(ca_file.clone());
            })
            .await
            .unwrap(),
    );
    let (_, outcome) = stack
        .api(
            Method::POST,
            &format!("/api/orgs/acme/notification-channels/{id}/test"),
            None,
        )
        .await;
    assert_eq!(outcome["state"], "failed", "{outcome}");
    assert!(plain_relay.mail().is_empty(), "mail went out without TLS");
}
