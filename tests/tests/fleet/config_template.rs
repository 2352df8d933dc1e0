//! The node config template.

use reqwest::Method;
use ritma_tests::TestStack;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_template_is_what_a_new_node_needs() {
    let stack = TestStack::start_with(|c| {
        c.public_url = Some("https://console.example.com".into());
        c.utld_usage_http_url = Some("http://billing.internal/usage".into());
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    let (status, t) = stack
        .api(
            Method::GET,
            "/api/orgs/acme/nodes/config-template?tenant_id=prod",
            None,
        )
        .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(
        t["env"]["RITMA_NODE_CONTROLLER_URL"],
        "https://console.example.com"
    );
    assert_eq!(t["env"]["RITMA_NODE_TENANT_ID"], "prod");
    assert_eq!(
        t["env"]["UTLD_USAGE_HTTP_URL"],
        "http://billing.internal/usage"
    );
    for key in ["UTLD_SOCKET", "UTLD_TLS_ADDR", "RITMA_ENROLL_TOKEN"] {
        assert!(t["env"][key].is_string(), "{key}: {t}");
    }
    assert!(t["env"].get("RITMA_CLOUD_URL").is_none(), "not configured");
    assert!(
        t["systemd_unit"]
            .as_str()
            .unwrap()
            .contains("ExecStart=/usr/bin/ritma-node")
    );
    assert!(
        t["env_file"]
            .as_str()
            .unwrap()
            .contains("RITMA_NODE_ORG_ID=acme\n")
    );
    let (status, _) = stack
        .api(
            Method::GET,
            "/api/orgs/acme/nodes/config-template?tenant_id=Not%20Valid",
            None,
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = stack
        .api(Method::GET, "/api/orgs/nope/nodes/config-template", None)
        .await;
    assert_eq!(status, 404);
}
