//! Two consoles and two controllers behind round-robin balancers on
//! loopback (one backend per connection): no user state lives in one
//! process. Sessions and pending sign-ins are in PostgreSQL, a live stream
//! resumes on another replica from its `Last-Event-ID`, and the API's rate
//! limits hold for the deployment, not per replica.
#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::net::SocketAddr;
use std::time::Duration;

use ritma_tests::oidc::{AUDIENCE, OidcProvider, location};
use ritma_tests::replicas::{ConsoleProcess, ConsoleSpec, RoundRobinProxy};
use ritma_tests::*;
use serde_json::{Value, json};
use tokio::sync::mpsc;

const CONSOLE_TOKEN: &str = "test-console-service-token-0123456789";

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A browser that keeps no connection (each request may reach another
/// replica) and shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

struct Deployment {
    stack: TestStack,
    _controllers: Vec<ControllerProcess>,
    api: RoundRobinProxy,
    consoles: Vec<Option<ConsoleProcess>>,
    console_addrs: Vec<SocketAddr>,
    balancer: RoundRobinProxy,
    spec: ConsoleSpec,
    _site: tempfile::TempDir,
    /// The IdP, for a deployment with single sign-on.
    idp: Option<OidcProvider>,
}

async fn controllers(stack: &TestStack, env: &[(&str, String)]) -> Vec<ControllerProcess> {
    let mut out = vec![];
    for _ in 0..2 {
        out.push(stack.spawn_controller_process(env).await.unwrap());
    }
    out
}

async fn deployment(sso: bool) -> Deployment {
    let console_addrs = vec![free_addr(), free_addr()];
    let balancer = RoundRobinProxy::start(console_addrs.clone()).await.unwrap();
    let idp = match sso {
        true => Some(
            OidcProvider::start_for(
                json!({ "adam": { "email": "adam@acme.test", "ritma_roles": { "acme": ["org_admin"] } } }),
                "k1",
                &format!("{}/auth/callback", balancer.url),
            )
            .await
            .unwrap(),
        ),
        false => None,
    };
    let issuer = idp.as_ref().map(|p| p.issuer.clone());
    let mut stack = TestStack::start_with(|c| {
        c.console_service_token = Some(CONSOLE_TOKEN.into());
        c.oidc_issuer = issuer.clone();
        c.oidc_audience = issuer.as_ref().map(|_| AUDIENCE.to_string());
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    if let Some(c) = stack.controller.take() {
        c.stop().await;
    }
    let mut env = vec![
        ("RITMA_CONSOLE_SERVICE_TOKEN", CONSOLE_TOKEN.to_string()),
        ("RITMA_API_REPLICAS", "2".into()),
        // These tests call the API as fast as the machine allows (page loads
        // and direct calls with one token): its budget is not what they test
        // (the rate-share test below sets its own).
        ("RITMA_API_RATE_PER_CREDENTIAL", "100000".into()),
        ("RITMA_API_BURST_PER_CREDENTIAL", "100000".into()),
    ];
    if let Some(issuer) = &issuer {
        env.push(("RITMA_OIDC_ISSUER", issuer.clone()));
        env.push(("RITMA_OIDC_AUDIENCE", AUDIENCE.into()));
    }
    let ctl = controllers(&stack, &env).await;
    let api = RoundRobinProxy::start(ctl.iter().map(|c| addr_of(&c.api_url)).collect())
        .await
        .unwrap();
    let site = tempfile::tempdir().unwrap();
    let mut console_env = vec![];
    if let Some(issuer) = &issuer {
        console_env.push(("RITMA_CONSOLE_OIDC_ISSUER".to_string(), issuer.clone()));
        console_env.push(("RITMA_CONSOLE_OIDC_AUDIENCE".into(), AUDIENCE.into()));
        console_env.push((
            "RITMA_CONSOLE_OIDC_SCOPES".into(),
            "openid email ritma:api".into(),
        ));
    }
    let spec = ConsoleSpec {
        api_url: api.url.clone(),
        database_url: stack.database_url.clone(),
        nats_url: stack.nats.url.clone(),
        service_token: CONSOLE_TOKEN.into(),
        org: "acme".into(),
        public_url: balancer.url.clone(),
        site: site.path().to_path_buf(),
        log: stack.dir.path().join("console-process.log"),
        env: console_env,
    };
    let mut consoles = vec![];
    for a in &console_addrs {
        consoles.push(Some(ConsoleProcess::spawn_on(&spec, *a).await.unwrap()));
    }
    Deployment {
        stack,
        _controllers: ctl,
        api,
        consoles,
        console_addrs,
        balancer,
        spec,
        _site: site,
        idp,
    }
}

/// Sign in with the admin token through the balancer; returns the cookie.
async fn sign_in(http: &reqwest::Client, console: &str) -> String {
    let resp = http
        .post(format!("{console}/auth/login"))
        .header("origin", console)
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(resp.headers()["location"], "/", "signed in");
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("ritma_console_session="))
        .unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

#[derive(Debug)]
struct Sse {
    event: String,
    id: Option<i64>,
    data: Value,
}

/// Read `/live` as EventSource does (with `Last-Event-ID` on a reconnect).
async fn open_live(
    http: &reqwest::Client,
    console: &str,
    cookie: &str,
    last_event_id: Option<i64>,
) -> mpsc::UnboundedReceiver<Sse> {
    let mut req = http.get(format!("{console}/live")).header("cookie", cookie);
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id.to_string());
    }
    let resp = req.send().await.unwrap();
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
                    event: String::new(),
                    id: None,
                    data: Value::Null,
                };
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event:") {
                        ev.event = e.trim().to_owned();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        ev.data = serde_json::from_str(d.trim()).unwrap_or(Value::Null);
                    } else if let Some(i) = line.strip_prefix("id:") {
                        ev.id = i.trim().parse().ok();
                    }
                }
                if !ev.event.is_empty() && tx.send(ev).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// The next `state` event within `wait`.
async fn next_state(rx: &mut mpsc::UnboundedReceiver<Sse>, wait: Duration) -> Sse {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) if ev.event == "state" => return ev,
            Ok(Some(_)) => {}
            _ => panic!("no state change within {wait:?}"),
        }
    }
}

/// The next `state` event about `node` within `wait`.
async fn state_of(rx: &mut mpsc::UnboundedReceiver<Sse>, node: &str, wait: Duration) -> Sse {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) if ev.event == "state" && ev.data["node_id"] == node => return ev,
            Ok(Some(_)) => {}
            _ => panic!("no state change of {node} within {wait:?}"),
        }
    }
}

/// A state change committed for `node` (a controller's publisher sends it).
async fn commit_change(stack: &TestStack, node: &str, to: &str) {
    let mut tx = stack.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO state_outbox (org_id, tenant_id, node_id, payload) VALUES ('acme', 'prod', $1, $2)",
    )
    .bind(node)
    .bind(json!({ "kind": "status", "from": "online", "to": to, "reason": "test" }))
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("SELECT pg_notify('ritma_outbox', '')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// Both consoles have their bus feed.
async fn feeds_connected(d: &Deployment) {
    let http = reqwest::Client::new();
    for a in &d.console_addrs {
        d.stack
            .eventually("the console's bus feed", Duration::from_secs(30), || {
                let http = http.clone();
                async move {
                    let r = http.get(format!("http://{a}/readyz")).send().await.ok()?;
                    let v: Value = r.json().await.ok()?;
                    (v["bus"] == true).then_some(())
                }
            })
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_live_streams_outlive_the_replica_that_served_them() {
    let mut d = deployment(false).await;
    let http = browser();
    let console = d.balancer.url.clone();
    let cookie = sign_in(&http, &console).await;

    // 50 page loads and API calls in a row, a console restarted half way.
    for i in 0..50 {
        if i == 20 {
            d.consoles[0].take().unwrap().kill();
            d.consoles[0] = Some(
                ConsoleProcess::spawn_on(&d.spec, d.console_addrs[0])
                    .await
                    .unwrap(),
            );
        }
        let page = http
            .get(format!("{console}/nodes"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(
            page.status().as_u16(),
            200,
            "page load {i}: still signed in"
        );
        let html = page.text().await.unwrap();
        assert!(
            html.contains("operator"),
            "page load {i} shows who is signed in"
        );
        let api = http
            .get(format!("{}/api/orgs", d.api.url))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(api.status().as_u16(), 200, "API call {i}");
    }
    let picked = d.balancer.picked.lock().unwrap().clone();
    for a in &d.console_addrs {
        assert!(
            picked.iter().filter(|p| *p == a).count() >= 20,
            "round robin reached {a}"
        );
    }
    assert!(d.api.connections() >= 50);

    // A live stream resumes on the other replica when its own one dies.
    feeds_connected(&d).await;
    let mut live = open_live(&http, &console, &cookie, None).await;
    let first_on = d.balancer.last_picked().unwrap();
    commit_change(&d.stack, "n1", "offline").await;
    let seen = state_of(&mut live, "n1", Duration::from_secs(15)).await;
    let last = seen.id.expect("state events carry their event id");
    let dead = d.console_addrs.iter().position(|a| *a == first_on).unwrap();
    d.consoles[dead].take().unwrap().kill();
    // Changed while the browser has no stream at all.
    commit_change(&d.stack, "n2", "offline").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut resumed = open_live(&http, &console, &cookie, Some(last)).await;
    assert_ne!(d.balancer.last_picked(), Some(first_on), "another replica");
    let missed = state_of(&mut resumed, "n2", Duration::from_secs(5)).await;
    assert!(missed.id.unwrap() > last, "{missed:?}");
    // Live changes keep coming on the new stream.
    commit_change(&d.stack, "n3", "online").await;
    state_of(&mut resumed, "n3", Duration::from_secs(15)).await;
    // Resuming from n2's event replays what came after it (n3), not n2
    // itself, then goes on live (n4).
    let mut fresh = open_live(&http, &console, &cookie, missed.id).await;
    commit_change(&d.stack, "n4", "online").await;
    let mut order = vec![];
    while order.last().map(String::as_str) != Some("n4") {
        let ev = next_state(&mut fresh, Duration::from_secs(15)).await;
        order.push(ev.data["node_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(order, ["n3", "n4"]);

    // Bring the dead replica back; sign out through the balancer: every
    // replica refuses the cookie at once.
    d.consoles[dead] = Some(
        ConsoleProcess::spawn_on(&d.spec, d.console_addrs[dead])
            .await
            .unwrap(),
    );
    let out = http
        .post(format!("{console}/auth/logout"))
        .header("origin", &console)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 303);
    for a in &d.console_addrs {
        let page = http
            .get(format!("http://{a}/nodes"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(
            page.status().as_u16(),
            303,
            "{a} refuses a signed-out session"
        );
        let live = http
            .get(format!("http://{a}/live"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(live.status().as_u16(), 401, "{a}: no live stream either");
    }
    let rows = d.stack.count("SELECT count(*) FROM console_sessions").await;
    assert_eq!(rows, 0, "the session row is gone");
    // The stored session holds the id's hash, and no id or token in clear.
    let cookie2 = sign_in(&http, &console).await;
    let id = cookie2.trim_start_matches("ritma_console_session=");
    let (hashed, leaked): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE id_hash = sha256(convert_to($1, 'UTF8'))),
                count(*) FILTER (WHERE position(convert_to($1, 'UTF8') in sealed) > 0
                                    OR position(convert_to($2, 'UTF8') in sealed) > 0)
         FROM console_sessions",
    )
    .bind(id)
    .bind(ADMIN_TOKEN)
    .fetch_one(&d.stack.pool)
    .await
    .unwrap();
    assert_eq!((hashed, leaked), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_documented_rate_instead_of_multiplying_it() {
    let mut stack = TestStack::start().await.unwrap();
    if let Some(c) = stack.controller.take() {
        c.stop().await;
    }
    const BURST: usize = 20;
    let limits = |replicas: &str| {
        vec![
            ("RITMA_API_RATE_PER_CREDENTIAL", "1".to_string()),
            ("RITMA_API_BURST_PER_CREDENTIAL", BURST.to_string()),
            ("RITMA_API_REPLICAS", replicas.to_string()),
        ]
    };
    let http = browser();
    // Requests of one credential, spread round robin over two replicas.
    let spend = |url: String| {
        let http = http.clone();
        async move {
            let start = std::time::Instant::now();
            let mut ok = 0;
            for _ in 0..(4 * BURST) {
                let r = http
                    .get(format!("{url}/api/orgs"))
                    .bearer_auth(ADMIN_TOKEN)
                    .send()
                    .await
                    .unwrap();
                match r.status().as_u16() {
                    200 => ok += 1,
                    429 => assert!(r.headers().contains_key("retry-after")),
                    s => panic!("unexpected {s}"),
                }
            }
            (ok, start.elapsed().as_secs() as usize)
        }
    };
    let shared = controllers(&stack, &limits("2")).await;
    let proxy = RoundRobinProxy::start(shared.iter().map(|c| addr_of(&c.api_url)).collect())
        .await
        .unwrap();
    let (ok, secs) = spend(proxy.url.clone()).await;
    assert!(
        ok >= BURST && ok <= BURST + secs + 2,
        "two replicas together allowed {ok} (burst {BURST}, {secs} s)"
    );
    drop(proxy);
    drop(shared);
    // The failure this guards against: each replica with the whole budget.
    let unshared = controllers(&stack, &limits("1")).await;
    let proxy = RoundRobinProxy::start(unshared.iter().map(|c| addr_of(&c.api_url)).collect())
        .await
        .unwrap();
    let (ok, _) = spend(proxy.url.clone()).await;
    assert!(ok >= 2 * BURST, "unshared budgets allow {ok}");
}

/// Two replicas' session stores on one database.
async fn two_stores() -> (
    ritma_console::server::session::Sessions,
    ritma_console::server::session::Sessions,
    sqlx::PgPool,
) {
    use ritma_console::server::session::Sessions;
    let url = migrated_database().await.unwrap();
    let a = ritma_db::pool_lazy(&url, 4).unwrap();
    let b = ritma_db::pool_lazy(&url, 4).unwrap();
    (Sessions::new(a.clone()), Sessions::new(b), a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_renew_a_session_token_once() {
    use ritma_console::server::session::{Credential, Renewal, RenewedToken};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (a, b, _) = two_stores().await;
    let id = a
        .create(
            Credential {
                token: "old".into(),
                refresh_token: Some("r1".into()),
                token_expires: Some(std::time::Instant::now() + Duration::from_secs(5)),
                user: "adam".into(),
            },
            "acme".into(),
            vec![],
        )
        .await
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let renew = |store: ritma_console::server::session::Sessions| {
        let calls = calls.clone();
        let id = id.clone();
        async move {
            store
                .renew_once(&id, Duration::from_secs(30), |refresh| async move {
                    assert_eq!(refresh, "r1", "a refresh token is spent once");
                    calls.fetch_add(1, Ordering::SeqCst);
                    // The IdP takes a while: the other replica waits on the lock.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok::<_, String>(Some(RenewedToken {
                        token: "new".into(),
                        refresh_token: Some("r2".into()),
                        token_expires: Some(std::time::Instant::now() + Duration::from_secs(600)),
                    }))
                })
                .await
                .unwrap()
        }
    };
    let (ra, rb) = tokio::join!(renew(a.clone()), renew(b.clone()));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "renewed once, not per replica"
    );
    for r in [ra, rb] {
        match r {
            Renewal::Current(s) => assert_eq!(s.token, "new"),
            _ => panic!("both replicas go on with the renewed token"),
        }
    }
    let s = b.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (s.token.as_str(), s.refresh_token.as_deref()),
        ("new", Some("r2"))
    );
    // A refused renewal ends the session everywhere.
    let id2 = a
        .create(
            Credential {
                token: "t".into(),
                refresh_token: Some("dead".into()),
                token_expires: Some(std::time::Instant::now()),
                user: "adam".into(),
            },
            "acme".into(),
            vec![],
        )
        .await
        .unwrap();
    let r = a
        .renew_once(&id2, Duration::from_secs(30), |_| async {
            Ok::<_, String>(None)
        })
        .await
        .unwrap();
    assert!(matches!(r, Renewal::Ended));
    assert!(b.get(&id2).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_shared_hashed_and_end_everywhere() {
    use ritma_console::model::OrgInfo;
    use ritma_console::server::session::Credential;
    let (a, b, pool) = two_stores().await;
    let orgs = vec![OrgInfo {
        id: "acme".into(),
        name: "Acme".into(),
    }];
    let id = a
        .create(
            Credential {
                token: "secret-admin-token".into(),
                refresh_token: None,
                token_expires: None,
                user: "operator".into(),
            },
            "acme".into(),
            orgs,
        )
        .await
        .unwrap();
    let on_b = b
        .get(&id)
        .await
        .unwrap()
        .expect("the other replica knows it");
    assert_eq!(on_b.token, "secret-admin-token");
    assert!(
        !b.set_org(&id, "globex").await.unwrap(),
        "not one of its orgs"
    );
    assert!(b.set_org(&id, "acme").await.unwrap());
    // Guessed or forged ids find nothing.
    assert!(b.get(&"0".repeat(64)).await.unwrap().is_none());
    assert!(b.get("not-hex").await.unwrap().is_none());
    let in_clear: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM console_sessions
         WHERE position(convert_to('secret-admin-token', 'UTF8') in sealed) > 0
            OR encode(id_hash, 'hex') = $1",
    )
    .bind(&id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(in_clear, 0, "no id or token in clear");
    a.remove(&id).await.unwrap();
    assert!(
        b.get(&id).await.unwrap().is_none(),
        "signed out on every replica"
    );
    // Expired rows are pruned.
    sqlx::query(
        "INSERT INTO console_sessions (id_hash, sealed, renewable, user_name, org, orgs, expires_at)
         VALUES ('\\x00', '\\x00', false, 'x', 'acme', '[]', now() - interval '1 second')",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(ritma_db::console::console_prune(&pool).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_sign_in_is_taken_once_by_any_replica() {
    use ritma_db::console::*;
    let (_, _, pool) = two_stores().await;
    let later = chrono::Utc::now() + chrono::Duration::minutes(10);
    let pending = |state: &'static [u8], client: &'static str| NewSsoPending {
        state_hash: state,
        verifier: "v",
        next: "/nodes",
        client_key: client,
        expires_at: later,
    };
    assert!(
        console_sso_pending_insert(&pool, &pending(b"s1", "10.0.0.1"), 2, 3)
            .await
            .unwrap()
    );
    assert!(
        console_sso_pending_insert(&pool, &pending(b"s2", "10.0.0.1"), 2, 3)
            .await
            .unwrap()
    );
    assert!(
        !console_sso_pending_insert(&pool, &pending(b"s3", "10.0.0.1"), 2, 3)
            .await
            .unwrap(),
        "one address's share is used up"
    );
    assert!(
        console_sso_pending_insert(&pool, &pending(b"s4", "10.0.0.2"), 2, 3)
            .await
            .unwrap(),
        "another address is not locked out"
    );
    assert!(
        !console_sso_pending_insert(&pool, &pending(b"s5", "10.0.0.3"), 2, 3)
            .await
            .unwrap(),
        "the total holds"
    );
    // Two replicas taking the same state at once: one wins.
    let other = ritma_db::pool_lazy(&migrated_url(&pool).await, 2).unwrap();
    let (x, y) = tokio::join!(
        console_sso_pending_take(&pool, b"s1"),
        console_sso_pending_take(&other, b"s1")
    );
    assert_eq!(
        [x.unwrap().is_some(), y.unwrap().is_some()]
            .iter()
            .filter(|t| **t)
            .count(),
        1
    );
    assert_eq!(
        console_sso_pending_take(&pool, b"s2").await.unwrap(),
        Some(("v".into(), "/nodes".into()))
    );
    assert_eq!(
        console_sso_pending_take(&pool, b"forged").await.unwrap(),
        None
    );
    // An expired start is not honoured.
    sqlx::query("UPDATE console_sso_pending SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(console_sso_pending_take(&pool, b"s4").await.unwrap(), None);
}

/// The URL of the database `pool` is connected to.
async fn migrated_url(pool: &sqlx::PgPool) -> String {
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    let admin = postgres_admin_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{name}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sign_on_started_on_one_replica_finishes_on_the_other() {
    let d = deployment(true).await;
    let idp = d.idp.as_ref().unwrap();
    let console = d.balancer.url.clone();
    let b = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let start = b
        .get(format!("{console}/auth/oidc?next=%2Fnodes"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status().as_u16(), 303, "redirect to the IdP");
    let started_on = d.balancer.last_picked().unwrap();
    let to_idp = location(&start).unwrap();
    let back = idp
        .authorize(&b, &to_idp, &format!("{console}/auth/callback"), "adam")
        .await
        .unwrap();
    let done = b.get(&back).send().await.unwrap();
    assert_ne!(
        d.balancer.last_picked(),
        Some(started_on),
        "the callback reached the other replica"
    );
    assert_eq!(done.status().as_u16(), 303);
    assert_eq!(location(&done).unwrap(), "/nodes", "signed in");
    // The same callback again (a replay, on either replica) is refused.
    let again = b.get(&back).send().await.unwrap();
    assert!(
        location(&again).unwrap().starts_with("/login?error="),
        "a state is used once"
    );
    for _ in 0..6 {
        let page = b.get(format!("{console}/nodes")).send().await.unwrap();
        assert_eq!(page.status().as_u16(), 200);
        assert!(page.text().await.unwrap().contains("adam@acme.test"));
    }
    assert_eq!(
        d.stack
            .count("SELECT count(*) FROM console_sso_pending")
            .await,
        0,
        "the pending start was taken"
    );
}
