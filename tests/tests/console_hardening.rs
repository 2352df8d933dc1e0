//! The console's own defences: security headers on every response, no
//! cross-site writes (forms and Leptos server functions), the browser's
//! address forwarded to the API so per-address limits separate people, and
//! single sign-on starts bounded per address.
#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::net::IpAddr;

use ritma_console::server::config::Config as ConsoleConfig;
use ritma_tests::*;
use tokio_util::sync::CancellationToken;

struct Console {
    url: String,
    stop: CancellationToken,
    _site: tempfile::TempDir,
}

impl Drop for Console {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start_console(tune: impl FnOnce(&mut ConsoleConfig)) -> Console {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let site = tempfile::tempdir().unwrap();
    let mut config = ConsoleConfig::empty();
    config.api_url = Some("http://127.0.0.1:9".into());
    config.database_url = Some(migrated_database().await.unwrap());
    config.public_url = Some(url.clone());
    config.site_root = Some(site.path().to_path_buf());
    tune(&mut config);
    let app = ritma_console::server::build(config.resolve().unwrap())
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    tokio::spawn(async move {
        app.run(listener, async move { shutdown.cancelled().await })
            .await
            .unwrap();
    });
    Console {
        url,
        stop,
        _site: site,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let c = start_console(|_| {}).await;
    let http = client();
    for (method, path) in [
        ("GET", "/login"),
        ("GET", "/nodes"),
        ("GET", "/healthz"),
        ("GET", "/live"),
        ("GET", "/pkg/missing.js"),
        ("GET", "/no-such-page"),
        ("POST", "/auth/login"),
    ] {
        let resp = http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", c.url),
            )
            .send()
            .await
            .unwrap();
        let h = resp.headers();
        let csp = h
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{method} {path}: no CSP"))
            .to_str()
            .unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("object-src 'none'"), "{path}: {csp}");
        let script = csp
            .split(';')
            .find(|d| d.trim_start().starts_with("script-src"))
            .unwrap();
        assert!(!script.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert!(h.contains_key("referrer-policy"), "{path}");
    }
    // A rendered page's policy carries a fresh nonce for its inline scripts.
    let page = |http: reqwest::Client, url: String| async move {
        http.get(format!("{url}/login"))
            .send()
            .await
            .unwrap()
            .headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let (a, b) = (
        page(http.clone(), c.url.clone()).await,
        page(http, c.url.clone()).await,
    );
    assert!(a.contains("'nonce-"), "{a}");
    assert_ne!(a, b, "one nonce per response");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hydration_scripts_carry_the_policys_nonce() {
    // A (dummy) WASM bundle, so pages include the hydration scripts.
    let site = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(site.path().join("pkg/abc123")).unwrap();
    std::fs::write(site.path().join("pkg/BUILD"), "abc123").unwrap();
    std::fs::write(site.path().join("pkg/abc123/ritma_console_bg.wasm"), b"").unwrap();
    let root = site.path().to_path_buf();
    let c = start_console(move |cfg| cfg.site_root = Some(root)).await;
    let resp = client()
        .get(format!("{}/login", c.url))
        .send()
        .await
        .unwrap();
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = resp.text().await.unwrap();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .unwrap()
        .to_owned();
    assert!(html.contains("<script"), "{html}");
    let scripts: Vec<&str> = html.split("<script").skip(1).collect();
    for tag in &scripts {
        let open = tag.split('>').next().unwrap();
        if !open.contains(" src=") {
            assert!(
                open.contains(&format!("nonce=\"{nonce}\"")),
                "an inline script without the policy's nonce: <script{open}>"
            );
        }
    }
    assert!(csp.contains("'wasm-unsafe-eval'"), "{csp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_writes_are_refused() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let api = stack.api_url();
    let c = start_console(move |cfg| {
        cfg.api_url = Some(api);
        cfg.org = Some("acme".into());
    })
    .await;
    let http = client();
    let login = |origin: Option<&str>, fetch_site: Option<&str>| {
        let mut req = http
            .post(format!("{}/auth/login", c.url))
            .form(&[("token", ADMIN_TOKEN)]);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(s) = fetch_site {
            req = req.header("sec-fetch-site", s);
        }
        req.send()
    };
    // Another site's form, a missing Origin, `Origin: null`: refused.
    for (origin, site) in [
        (Some("https://evil.example"), None),
        (Some("null"), None),
        (None, None),
        (None, Some("cross-site")),
        (Some("https://evil.example"), Some("same-origin")),
    ] {
        let resp = login(origin, site).await.unwrap();
        assert_eq!(resp.status().as_u16(), 403, "{origin:?} {site:?}");
        assert!(resp.headers().get("set-cookie").is_none());
    }
    // The console's own page: Origin, or a browser's Sec-Fetch-Site.
    let resp = login(Some(&c.url), None).await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(location(&resp), "/");
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let resp = login(None, Some("same-origin")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);

    // Signed in: other writes and Leptos server functions (POST /api/...)
    // from another site are refused before any handler runs.
    for path in [
        "/auth/org",
        "/auth/logout",
        "/api/create_token",
        "/api/anything",
    ] {
        let resp = http
            .post(format!("{}{path}", c.url))
            .header("cookie", &cookie)
            .header("origin", "https://evil.example")
            .form(&[("org", "acme")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 403, "{path}");
    }
    // The same request from the console's own page passes the check.
    let resp = http
        .post(format!("{}/auth/org", c.url))
        .header("cookie", &cookie)
        .header("origin", &c.url)
        .form(&[("org", "acme")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    // The session survived the refused logout above.
    let resp = http
        .get(format!("{}/nodes", c.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_next_is_a_path_of_this_site() {
    let c = start_console(|_| {}).await;
    let http = client();
    // The console's redirect after a failed sign-in keeps `next` only when
    // it is a path of this site (the API is down here: `unavailable`).
    for (next, kept) in [
        ("/nodes?status=offline", true),
        ("/\t/evil.example/x", false),
        ("//evil.example", false),
        ("/\\evil.example", false),
        ("/%2f%2fevil.example", false),
        ("https://evil.example", false),
    ] {
        let resp = http
            .post(format!("{}/auth/login", c.url))
            .header("origin", &c.url)
            .form(&[("token", "x"), ("next", next)])
            .send()
            .await
            .unwrap();
        let to = location(&resp);
        assert!(to.starts_with("/login?error="), "{next:?}: {to}");
        assert_eq!(to.contains("&next="), kept, "{next:?}: {to}");
        assert!(!to.contains("evil"), "{next:?}: {to}");
    }
}

/// A stand-in identity provider: only its discovery document.
async fn discovery_stub() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let doc = serde_json::json!({
        "issuer": url,
        "authorization_endpoint": format!("{url}/authorize"),
        "token_endpoint": format!("{url}/token"),
    });
    let app = axum::Router::new().route(
        "/.well-known/openid-configuration",
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { axum::Json(doc) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_sign_on_starts_from_one_address_locks_out_only_that_address() {
    let idp = discovery_stub().await;
    let issuer = idp.clone();
    let c = start_console(move |cfg| {
        cfg.oidc_issuer = Some(issuer);
        // The console sits behind a proxy on loopback that names the browser.
        cfg.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        cfg.sso_pending_per_address = 5;
        cfg.sso_pending_total = 50;
    })
    .await;
    let http = client();
    let start = |ip: String| {
        http.get(format!("{}/auth/oidc?next=%2Fnodes", c.url))
            .header("x-forwarded-for", ip)
            .send()
    };
    let mut to_idp = 0;
    for _ in 0..200 {
        let resp = start("10.0.0.1".into()).await.unwrap();
        assert_eq!(resp.status().as_u16(), 303);
        let to = location(&resp);
        if to.starts_with(&idp) {
            to_idp += 1;
        } else {
            assert!(to.starts_with("/login?error=sso-busy"), "{to}");
        }
    }
    assert_eq!(to_idp, 5, "one address gets its share of pending sign-ins");
    // Someone else is not locked out.
    let resp = start("10.0.0.2".into()).await.unwrap();
    assert!(location(&resp).starts_with(&idp), "{}", location(&resp));
    // An IPv6 host rotating through its /64 counts as one address.
    let mut v6 = 0;
    for i in 1..20 {
        let resp = start(format!("2001:db8::{i:x}")).await.unwrap();
        if location(&resp).starts_with(&idp) {
            v6 += 1;
        }
    }
    assert_eq!(v6, 5);
    // Many addresses together still stop at the total.
    let mut total_ok = 0;
    for i in 0..100 {
        let ip: IpAddr = format!("10.1.{}.{}", i / 250, i % 250 + 1).parse().unwrap();
        if location(&start(ip.to_string()).await.unwrap()).starts_with(&idp) {
            total_ok += 1;
        }
    }
    assert_eq!(total_ok, 50 - 5 - 1 - 5, "bounded in total");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_flood_from_one_address_does_not_lock_out_another() {
    // The controller limits API requests per client address and trusts the
    // console's X-Forwarded-For (the console is on loopback here).
    let stack = TestStack::start_with(|c| {
        c.api_rate_per_address = 1;
        c.api_burst_per_address = 5;
        c.api_trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    let api = stack.api_url();
    let c = start_console(move |cfg| {
        cfg.api_url = Some(api);
        cfg.org = Some("acme".into());
        cfg.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let http = client();
    let login = |ip: &'static str, token: &'static str| {
        http.post(format!("{}/auth/login", c.url))
            .header("origin", &c.url)
            .header("x-forwarded-for", ip)
            .form(&[("token", token)])
            .send()
    };
    // An anonymous flood of bad tokens from one address ...
    let mut errors = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let resp = login("10.0.0.1", "not-a-token-of-anyone").await.unwrap();
        errors.insert(location(&resp));
    }
    assert!(
        errors.iter().any(|e| e.contains("error=unavailable")),
        "the controller rate-limited the flooding address: {errors:?}"
    );
    // ... spends that address's budget only: someone else signs in.
    let resp = login("10.0.0.2", ADMIN_TOKEN).await.unwrap();
    assert_eq!(location(&resp), "/", "another address is not locked out");
    assert!(resp.headers().get("set-cookie").is_some());
}
