//! The console's live feed for every org: its own bus credential (minted by
//! the controller for the console's service principal only, subscribe-only
//! on state changes and alert notifications, proven against the real
//! nats-server), and the SSE stream of each browser, which carries the org it
//! shows (state changes and alerts) and only while the person still has a
//! role there.
#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::time::Duration;

use futures::StreamExt as _;
use ritma_console::server::config::Config as ConsoleConfig;
use ritma_tests::oidc::{AUDIENCE, OidcProvider};
use ritma_tests::*;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const CONSOLE_TOKEN: &str = "test-console-service-token-0123456789";

async fn ask_credential(stack: &TestStack, bearer: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = stack
        .http
        .post(format!("{}/api/console/bus-credential", stack.api_url()))
        .json(&body);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A state change committed for `node` of `org` (the controller's publisher
/// sends it from the outbox, in the org's account).
async fn commit_change(stack: &TestStack, org: &str, node: &str, to: &str) {
    commit_status(stack, org, node, "online", to).await;
}

/// A status change `from` → `to` committed for `node` of `org`.
async fn commit_status(stack: &TestStack, org: &str, node: &str, from: &str, to: &str) {
    let mut tx = stack.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO state_outbox (org_id, tenant_id, node_id, payload) VALUES ($1, 'prod', $2, $3)",
    )
    .bind(org)
    .bind(node)
    .bind(json!({ "kind": "status", "from": from, "to": to, "reason": "test" }))
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("SELECT pg_notify('ritma_outbox', '')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_bus_credential_is_for_the_console_only_and_reads_state_changes_only() {
    let stack = TestStack::start_with(|c| {
        c.console_service_token = Some(CONSOLE_TOKEN.into());
        c.console_bus_ttl_secs = 600;
        c.dev_header_auth = true;
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    let key = nkeys::KeyPair::new_user();
    let body = json!({ "public_key": key.public_key() });

    // Anonymous, the operator's admin token, a person, a node: refused.
    assert_eq!(ask_credential(&stack, None, body.clone()).await.0, 401);
    assert_eq!(
        ask_credential(&stack, Some(ADMIN_TOKEN), body.clone())
            .await
            .0,
        401,
        "the admin token is not the console's service principal"
    );
    let person = stack
        .http
        .post(format!("{}/api/console/bus-credential", stack.api_url()))
        .header("x-user-id", "alice")
        .header("x-org-id", "acme")
        .header("x-roles", "org_owner")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(person.status().as_u16(), 401, "a person is refused");
    let token = stack.create_token("acme", "prod", 1).await;
    let (status, reply, node_key) = stack.enroll_raw(&token, "n-1").await;
    assert_eq!(status, 200, "{reply}");
    let node_jwt = reply["jwt"].as_str().unwrap();
    assert_eq!(
        ask_credential(&stack, Some(node_jwt), body.clone()).await.0,
        401,
        "a node's bus JWT is refused"
    );
    assert_eq!(
        ask_credential(&stack, Some(&node_key.public_key()), body.clone())
            .await
            .0,
        401
    );
    // Only a user public key is signed.
    for bad in [
        json!({ "public_key": "nope" }),
        json!({ "public_key": nkeys::KeyPair::new_account().public_key() }),
        json!({ "public_key": key.seed().unwrap() }),
    ] {
        assert_eq!(
            ask_credential(&stack, Some(CONSOLE_TOKEN), bad).await.0,
            400
        );
    }

    // The console: a short-lived, subscribe-only user of the controller account.
    let (status, cred) = ask_credential(&stack, Some(CONSOLE_TOKEN), body).await;
    assert_eq!(status, 201, "{cred}");
    let claims = ritma_bus::jwt::decode_verified(cred["jwt"].as_str().unwrap()).unwrap();
    assert_eq!(claims.sub, key.public_key());
    assert_eq!(claims.iss, stack.keys.controller_account.public_key());
    let exp = claims.exp.expect("the credential expires");
    let now = chrono::Utc::now().timestamp();
    assert!(exp > now && exp <= now + 601, "exp {exp}");
    assert_eq!(claims.nats["pub"]["deny"], json!([">"]));
    assert_eq!(
        claims.nats["sub"]["allow"],
        json!([
            "ritma.*.*.state.node.*",
            "ritma.*.alerts",
            "ritma.*.jobs",
            "ritma.*.activity"
        ])
    );
    assert!(claims.nats.get("resp").is_none(), "no replies");
    assert!(claims.nats["subs"].as_i64().unwrap() > 0);
    assert!(claims.nats["subs"].as_i64().unwrap() <= 10);
    assert!(claims.nats["payload"].as_i64().unwrap() > 0);
    let audited = stack
        .count(
            "SELECT count(*) FROM audit_log WHERE action = 'console.bus_credential' AND actor = 'console-service'",
        )
        .await;
    assert_eq!(audited, 1, "the mint is audited");

    let mut console = BusUser::connect(&stack.nats.url, cred["jwt"].as_str().unwrap(), key, None)
        .await
        .unwrap();
    let mut states = console
        .client
        .subscribe("ritma.*.*.state.node.*")
        .await
        .unwrap();
    console.client.flush().await.unwrap();

    // An org created after the console connected is covered too: the
    // controller publishes in each org's account, and each org account's
    // service import delivers to the controller account.
    stack.create_org("globex").await;
    commit_change(&stack, "acme", "a-1", "offline").await;
    commit_change(&stack, "globex", "g-1", "offline").await;
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 2 {
        let msg = tokio::time::timeout(Duration::from_secs(15), states.next())
            .await
            .expect("state changes of both orgs reach the console")
            .unwrap();
        let v: Value = serde_json::from_slice(&msg.payload).unwrap();
        assert!(
            msg.subject.as_str().ends_with(".state.node.a-1")
                || msg.subject.as_str().ends_with(".state.node.g-1")
        );
        if v["kind"] == "status" {
            seen.insert(v["org_id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec!["acme".to_string(), "globex".to_string()]
    );

    // Publishing anything is refused, replies and state changes included.
    for subject in [
        "ritma.acme.prod.node.n-1.heartbeat",
        "ritma.acme.prod.state.node.a-1",
        "ritma.acme.prod.node.n-1.cmd.policy_changed",
        "_INBOX.x",
    ] {
        console
            .client
            .publish(subject.to_owned(), "x".into())
            .await
            .unwrap();
        console.client.flush().await.unwrap();
        console
            .expect_error("permissions violation", Duration::from_secs(5))
            .await;
    }
    // Telemetry, commands, audit, other wildcards and JetStream: refused.
    for subject in [
        "ritma.acme.prod.node.n-1.heartbeat",
        "ritma.*.*.node.*.*",
        "ritma.acme.prod.node.n-1.cmd.>",
        "ritma.acme.audit",
        "ritma.acme.>",
        ">",
        "$JS.API.>",
    ] {
        let _sub = console.client.subscribe(subject.to_owned()).await.unwrap();
        console.client.flush().await.unwrap();
        console
            .expect_error("permissions violation", Duration::from_secs(5))
            .await;
    }
}

/// One event of a server-sent event stream.
#[derive(Debug, Clone)]
struct Sse {
    event: String,
    data: Value,
}

/// Read `/live` as a browser would; events arrive on the channel.
async fn open_live(browser: &reqwest::Client, console: &str) -> mpsc::UnboundedReceiver<Sse> {
    let resp = browser.get(format!("{console}/live")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut resp = resp;
        let mut buf = String::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let mut ev = Sse {
                    event: "message".into(),
                    data: Value::Null,
                };
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event:") {
                        ev.event = e.trim().to_owned();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        ev.data = serde_json::from_str(d.trim()).unwrap_or(Value::Null);
                    }
                }
                if block.lines().any(|l| l.starts_with("event:")) && tx.send(ev).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// Everything received within `wait`.
async fn drain(rx: &mut mpsc::UnboundedReceiver<Sse>, wait: Duration) -> Vec<Sse> {
    let mut out = vec![];
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        out.push(ev);
    }
    out
}

fn nodes_of(events: &[Sse]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event == "state")
        .map(|e| e.data["node_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A browser with its own cookie jar that does not follow redirects.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn sign_in(browser: &reqwest::Client, console: &str, token: &str) {
    let resp = browser
        .post(format!("{console}/auth/login"))
        .header("origin", console)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let to = resp.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(to, "/", "signed in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_browser_gets_live_changes_of_the_org_it_shows_and_may_see_only() {
    let accounts = json!({ "bea": { "email": "bea@b.test", "ritma_roles": {} } });
    let provider = OidcProvider::start(accounts, "k1").await.unwrap();
    let issuer = provider.issuer.clone();
    let stack = TestStack::start_with(move |c| {
        c.console_service_token = Some(CONSOLE_TOKEN.into());
        c.oidc_issuer = Some(issuer.clone());
        c.oidc_audience = Some(AUDIENCE.into());
    })
    .await
    .unwrap();
    stack.create_org("orga").await;
    stack.create_org("orgb").await;
    // Bea has a role in org B only (a stored grant, so it can be taken back).
    let (status, body) = stack
        .api(
            reqwest::Method::POST,
            "/api/orgs/orgb/roles",
            Some(json!({ "subject": "bea", "role": "viewer" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let console = format!("http://{}", listener.local_addr().unwrap());
    let site = tempfile::tempdir().unwrap();
    let mut config = ConsoleConfig::empty();
    config.api_url = Some(stack.api_url());
    config.database_url = Some(stack.database_url.clone());
    config.org = Some("orga".into());
    config.public_url = Some(console.clone());
    config.service_token = Some(CONSOLE_TOKEN.into());
    config.role_recheck_secs = 1;
    config.site_root = Some(site.path().to_path_buf());
    let app = ritma_console::server::build(config.resolve().unwrap())
        .await
        .unwrap();
    let hub = app.state().hub.clone();
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    tokio::spawn(async move {
        app.run(listener, async move { shutdown.cancelled().await })
            .await
            .unwrap();
    });
    stack
        .eventually("the console's bus feed", Duration::from_secs(20), || {
            let connected = hub.bus_state().connected;
            async move { connected.then_some(()) }
        })
        .await;

    let bea = browser();
    sign_in(&bea, &console, &provider.sign_in("bea").await.unwrap()).await;
    let operator = browser();
    sign_in(&operator, &console, ADMIN_TOKEN).await;
    let mut bea_live = open_live(&bea, &console).await;
    let mut op_live = open_live(&operator, &console).await;
    let first = bea_live.recv().await.unwrap();
    assert_eq!(first.event, "bus");
    assert_eq!(
        first.data["connected"], true,
        "org B's feed is live: {first:?}"
    );

    // Both orgs change, interleaved.
    for i in 0..5 {
        commit_change(&stack, "orga", &format!("a-{i}"), "offline").await;
        commit_change(&stack, "orgb", &format!("b-{i}"), "offline").await;
    }
    let got = drain(&mut bea_live, Duration::from_secs(4)).await;
    let nodes = nodes_of(&got);
    assert_eq!(
        nodes,
        (0..5).map(|i| format!("b-{i}")).collect::<Vec<_>>(),
        "org B's changes, and never org A's: {got:?}"
    );
    // The operator shows org A (the default): A's changes only ...
    let got = drain(&mut op_live, Duration::from_secs(1)).await;
    let nodes = nodes_of(&got);
    assert_eq!(nodes.len(), 5, "{got:?}");
    assert!(nodes.iter().all(|n| n.starts_with("a-")), "{nodes:?}");

    // ... and after switching to org B, without reopening the stream, B's.
    let resp = operator
        .post(format!("{console}/auth/org"))
        .header("origin", &console)
        .form(&[("org", "orgb")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    // A stream reads its session from the shared store at most once a second
    // (the switch may have happened on another replica): it follows within that.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    commit_change(&stack, "orgb", "b-9", "offline").await;
    commit_change(&stack, "orga", "a-9", "offline").await;
    let got = drain(&mut op_live, Duration::from_secs(4)).await;
    assert!(
        got.iter().any(|e| e.event == "resync"),
        "the switch asks the page to re-fetch: {got:?}"
    );
    assert_eq!(nodes_of(&got), vec!["b-9".to_string()], "{got:?}");

    // Bea's role in org B goes: within the re-check interval her stream
    // says the feed is not live for her and carries no more of B's changes.
    let _ = drain(&mut bea_live, Duration::from_millis(200)).await;
    let (status, _) = stack
        .api(
            reqwest::Method::DELETE,
            "/api/orgs/orgb/roles/bea/viewer",
            None,
        )
        .await;
    assert_eq!(status, 204);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let ev = tokio::time::timeout_at(deadline, bea_live.recv())
            .await
            .expect("the removed role is noticed within the re-check interval")
            .unwrap();
        if ev.event == "bus" && ev.data["connected"] == false {
            break;
        }
        assert_ne!(ev.event, "state", "no change after the role went: {ev:?}");
    }
    for i in 10..13 {
        commit_change(&stack, "orgb", &format!("b-{i}"), "offline").await;
    }
    let got = drain(&mut bea_live, Duration::from_secs(3)).await;
    assert!(nodes_of(&got).is_empty(), "{got:?}");
    // The operator still gets them.
    let got = drain(&mut op_live, Duration::from_secs(1)).await;
    assert_eq!(nodes_of(&got).len(), 3, "{got:?}");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_renews_its_bus_credential_before_it_expires() {
    // Credentials valid 12 s: without renewal the broker would cut the
    // console off after 12 s and it could not come back.
    let stack = TestStack::start_with(|c| {
        c.console_service_token = Some(CONSOLE_TOKEN.into());
        c.console_bus_ttl_secs = 12;
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    let site = tempfile::tempdir().unwrap();
    let mut config = ConsoleConfig::empty();
    config.api_url = Some(stack.api_url());
    config.database_url = Some(stack.database_url.clone());
    config.service_token = Some(CONSOLE_TOKEN.into());
    config.site_root = Some(site.path().to_path_buf());
    let app = ritma_console::server::build(config.resolve().unwrap())
        .await
        .unwrap();
    let hub = app.state().hub.clone();
    let mut rx = hub.tx.subscribe();
    stack
        .eventually("the console's bus feed", Duration::from_secs(20), || {
            let connected = hub.bus_state().connected;
            async move { connected.then_some(()) }
        })
        .await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(hub.bus_state().connected, "{:?}", hub.bus_state());
    let mints = stack
        .count("SELECT count(*) FROM audit_log WHERE action = 'console.bus_credential'")
        .await;
    assert!(
        mints >= 3,
        "renewed at two thirds of the lifetime: {mints} credentials"
    );
    // Changes still arrive, once each, after the first credentials expired.
    while rx.try_recv().is_ok() {}
    commit_change(&stack, "acme", "r-1", "offline").await;
    let mut got = vec![];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Ok(m)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        if let ritma_console::server::live::HubMsg::State { org, event } = m.as_ref() {
            got.push((org.clone(), event.node_id.clone()));
        }
    }
    assert_eq!(got, vec![("acme".to_string(), "r-1".to_string())]);
    drop(app);
}

/// A node_offline rule of `org` notifying one webhook (its deliveries fail:
/// what matters here is the bus notification every alert also gets).
async fn offline_rule(stack: &TestStack, org: &str) {
    let (status, channel) = stack
        .api(
            reqwest::Method::POST,
            &format!("/api/orgs/{org}/notification-channels"),
            Some(json!({ "name": "hook", "kind": "webhook", "url": "https://alerts.example.com/hook" })),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    let (status, rule) = stack
        .api(
            reqwest::Method::POST,
            &format!("/api/orgs/{org}/alert-rules"),
            Some(json!({ "name": format!("{org} down"), "event": "node_offline", "channels": [channel["id"]] })),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
}

fn alert_nodes(events: &[Sse]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event == "alert")
        .map(|e| e.data["node_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_gets_the_alerts_of_the_org_it_shows_and_never_another_orgs() {
    let stack = TestStack::start_with(|c| {
        c.console_service_token = Some(CONSOLE_TOKEN.into());
    })
    .await
    .unwrap();
    stack.create_org("orga").await;
    stack.create_org("orgb").await;
    offline_rule(&stack, "orga").await;
    offline_rule(&stack, "orgb").await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let console = format!("http://{}", listener.local_addr().unwrap());
    let site = tempfile::tempdir().unwrap();
    let mut config = ConsoleConfig::empty();
    config.api_url = Some(stack.api_url());
    config.org = Some("orga".into());
    config.public_url = Some(console.clone());
    config.service_token = Some(CONSOLE_TOKEN.into());
    config.site_root = Some(site.path().to_path_buf());
    config.database_url = Some(stack.database_url.clone());
    let app = ritma_console::server::build(config.resolve().unwrap())
        .await
        .unwrap();
    let hub = app.state().hub.clone();
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    tokio::spawn(async move {
        app.run(listener, async move { shutdown.cancelled().await })
            .await
            .unwrap();
    });
    stack
        .eventually("the console's bus feed", Duration::from_secs(20), || {
            let connected = hub.bus_state().connected;
            async move { connected.then_some(()) }
        })
        .await;
    let operator = browser();
    sign_in(&operator, &console, ADMIN_TOKEN).await;
    let mut live = open_live(&operator, &console).await;
    assert_eq!(live.recv().await.unwrap().event, "bus");

    // Both orgs' nodes go offline, interleaved: the session shows org A.
    for i in 0..3 {
        commit_change(&stack, "orga", &format!("a-{i}"), "offline").await;
        commit_change(&stack, "orgb", &format!("b-{i}"), "offline").await;
    }
    let mut got = vec![];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while alert_nodes(&got).len() < 3 && tokio::time::Instant::now() < deadline {
        got.extend(drain(&mut live, Duration::from_millis(500)).await);
    }
    got.extend(drain(&mut live, Duration::from_secs(3)).await);
    let mut nodes = alert_nodes(&got);
    nodes.sort();
    assert_eq!(
        nodes,
        vec!["a-0", "a-1", "a-2"],
        "org A's alerts only: {got:?}"
    );
    let first = got.iter().find(|e| e.event == "alert").unwrap();
    assert_eq!(first.data["status"], "firing");
    assert_eq!(first.data["event"], "node_offline");
    assert!(
        first.data["headline"]
            .as_str()
            .unwrap()
            .starts_with("orga down: node a-"),
        "{first:?}"
    );

    // A node of org B comes back: its resolution is org B's too.
    commit_status(&stack, "orgb", "b-0", "offline", "online").await;
    commit_status(&stack, "orga", "a-0", "offline", "online").await;
    let mut got = vec![];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while alert_nodes(&got).is_empty() && tokio::time::Instant::now() < deadline {
        got.extend(drain(&mut live, Duration::from_millis(500)).await);
    }
    got.extend(drain(&mut live, Duration::from_secs(2)).await);
    let alerts: Vec<_> = got.iter().filter(|e| e.event == "alert").collect();
    assert_eq!(alerts.len(), 1, "{got:?}");
    assert_eq!(alerts[0].data["node_id"], "a-0");
    assert_eq!(alerts[0].data["status"], "resolved");

    // Switched to org B, the same stream carries B's alerts and no more of A's.
    let resp = operator
        .post(format!("{console}/auth/org"))
        .header("origin", &console)
        .form(&[("org", "orgb")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let _ = drain(&mut live, Duration::from_secs(2)).await;
    commit_change(&stack, "orga", "a-9", "offline").await;
    commit_change(&stack, "orgb", "b-9", "offline").await;
    let mut got = vec![];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while alert_nodes(&got).is_empty() && tokio::time::Instant::now() < deadline {
        got.extend(drain(&mut live, Duration::from_millis(500)).await);
    }
    got.extend(drain(&mut live, Duration::from_secs(3)).await);
    assert_eq!(alert_nodes(&got), vec!["b-9".to_string()], "{got:?}");
    stop.cancel();
}
