//! The console's single sign-on against a real OpenID provider process
//! (oidc-provider): authorization code with PKCE, the session in an HTTP-only
//! cookie, the flow bound to the browser that started it, renewal with a
//! refresh token, and sign-out.
#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::time::Duration;

use ritma_console::server::config::Config as ConsoleConfig;
use ritma_tests::oidc::{AUDIENCE, OidcProvider, location};
use ritma_tests::*;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn accounts() -> Value {
    json!({
        "adam":   { "email": "adam@acme.test", "ritma_roles": { "acme": ["org_admin"] } },
        "nobody": { "email": "nobody@else.test", "ritma_roles": {} },
    })
}

/// A browser: keeps cookies, shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        // Node closes some connections right after a redirect; never reuse one.
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

struct Setup {
    provider: OidcProvider,
    stack: TestStack,
    console: String,
    callback: String,
    sessions: ritma_console::server::session::Sessions,
    stop: CancellationToken,
}

async fn setup(access_ttl: Option<u32>) -> Setup {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let console = format!("http://{}", listener.local_addr().unwrap());
    let callback = format!("{console}/auth/callback");
    let provider = match access_ttl {
        Some(ttl) => OidcProvider::start_short_lived(accounts(), &callback, ttl).await,
        None => OidcProvider::start_for(accounts(), "k1", &callback).await,
    }
    .unwrap();
    let issuer = provider.issuer.clone();
    let stack = TestStack::start_with(move |c| {
        c.oidc_issuer = Some(issuer.clone());
        c.oidc_audience = Some(AUDIENCE.into());
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    let site = tempfile::tempdir().unwrap();
    let mut config = ConsoleConfig::empty();
    config.api_url = Some(stack.api_url());
    config.database_url = Some(stack.database_url.clone());
    config.org = Some("acme".into());
    config.public_url = Some(console.clone());
    config.oidc_issuer = Some(provider.issuer.clone());
    config.oidc_audience = Some(AUDIENCE.into());
    config.oidc_scopes = "openid email ritma:api".into();
    config.site_root = Some(site.path().to_path_buf());
    let app = ritma_console::server::build(config.resolve().unwrap())
        .await
        .unwrap();
    let sessions = app.state().sessions.clone();
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    tokio::spawn(async move {
        let _site = site;
        app.run(listener, async move { shutdown.cancelled().await })
            .await
            .unwrap();
    });
    Setup {
        provider,
        stack,
        console,
        callback,
        sessions,
        stop,
    }
}

fn set_cookies(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect()
}

/// Start a sign-in in `browser` and play `account` at the provider; returns
/// the callback URL the provider sends the browser back to.
async fn sign_in_at_provider(s: &Setup, browser: &reqwest::Client, account: &str) -> String {
    let resp = browser
        .get(format!("{}/auth/oidc?next=%2Fnodes", s.console))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303, "redirect to the IdP");
    let cookies = set_cookies(&resp);
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("ritma_oidc_state=") && c.contains("HttpOnly")),
        "the flow is bound to this browser: {cookies:?}"
    );
    let to_idp = location(&resp).unwrap();
    assert!(to_idp.starts_with(&s.provider.issuer), "{to_idp}");
    assert!(
        to_idp.contains("code_challenge_method=S256"),
        "PKCE: {to_idp}"
    );
    assert!(
        !to_idp.contains("code_verifier"),
        "the verifier stays on the server"
    );
    s.provider
        .authorize(browser, &to_idp, &s.callback, account)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_sign_in_to_the_console_with_the_idp() {
    let s = setup(None).await;
    let b = browser();

    // Signed out: pages send the browser to the sign-in page, which offers SSO.
    let resp = b.get(format!("{}/nodes", s.console)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(location(&resp).unwrap(), "/login?next=%2Fnodes");
    let login = b
        .get(format!("{}/login", s.console))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(login.contains("Sign in with single sign-on"), "{login}");

    // The IdP sends the browser back with a code; the console exchanges it.
    let back = sign_in_at_provider(&s, &b, "adam").await;
    assert!(back.contains("code=") && back.contains("state="), "{back}");
    let resp = b.get(&back).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(
        location(&resp).unwrap(),
        "/nodes",
        "back where they started"
    );
    let cookies = set_cookies(&resp);
    let session = cookies
        .iter()
        .find(|c| c.starts_with("ritma_console_session="))
        .expect("a session cookie");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax"));
    assert!(
        !session.contains("eyJ"),
        "the cookie is an id, not the token"
    );

    // Signed in as adam, in acme, with the controller's data.
    let page = b.get(format!("{}/nodes", s.console)).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("adam@acme.test"), "shows who signed in");
    assert!(!html.contains("eyJ"), "no token reaches the page");

    // The same callback again (a replayed or leaked URL) is refused.
    let replay = browser().get(&back).send().await.unwrap();
    assert_eq!(location(&replay).unwrap(), "/login?error=sso-state");
    assert!(
        !set_cookies(&replay)
            .iter()
            .any(|c| c.starts_with("ritma_console_session=") && !c.contains("Max-Age=0")),
        "no session from a replay"
    );

    // Sign out ends the session.
    let out = b
        .post(format!("{}/auth/logout", s.console))
        .header("origin", &s.console)
        .send()
        .await
        .unwrap();
    assert_eq!(location(&out).unwrap(), "/login");
    let resp = b.get(format!("{}/nodes", s.console)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303, "signed out");
    s.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_finishes_only_in_the_browser_that_started_it() {
    let s = setup(None).await;
    // Login CSRF: an attacker starts a sign-in with their own account and
    // gets the victim's browser to open the callback. The victim's browser
    // lacks the state cookie: refused, no session.
    let attacker = browser();
    let back = sign_in_at_provider(&s, &attacker, "adam").await;
    let victim = browser();
    let resp = victim.get(&back).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert!(
        location(&resp)
            .unwrap()
            .starts_with("/login?error=sso-state"),
        "{:?}",
        location(&resp)
    );
    let page = victim
        .get(format!("{}/nodes", s.console))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 303, "the victim is not signed in");

    // A forged state: refused.
    let resp = victim
        .get(format!("{}?code=abc&state=forged", s.callback))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&resp).unwrap(), "/login?error=sso-state");

    // A person without any org role is told so, and gets no session.
    let b = browser();
    let back = sign_in_at_provider(&s, &b, "nobody").await;
    let resp = b.get(&back).send().await.unwrap();
    assert!(
        location(&resp).unwrap().starts_with("/login?error=no-org"),
        "{:?}",
        location(&resp)
    );
    let page = b.get(format!("{}/nodes", s.console)).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 303);
    s.stop.cancel();
    drop(s.stack);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_outlive_short_access_tokens_by_renewing_them() {
    // Access tokens valid 3 s: without renewal the session would end, and the
    // controller would refuse the expired token.
    let s = setup(Some(3)).await;
    let b = browser();
    let back = sign_in_at_provider(&s, &b, "adam").await;
    let resp = b.get(&back).send().await.unwrap();
    assert_eq!(location(&resp).unwrap(), "/nodes");
    let id = set_cookies(&resp)
        .iter()
        .find_map(|c| c.strip_prefix("ritma_console_session="))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    let first = s.sessions.get(&id).await.unwrap().unwrap();
    assert!(
        first.refresh_token.is_some(),
        "the IdP gave a refresh token"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let page = b.get(format!("{}/nodes", s.console)).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200, "still signed in");
    let renewed = s.sessions.get(&id).await.unwrap().unwrap();
    assert_ne!(renewed.token, first.token, "a new access token");
    assert!(renewed.token_expires > first.token_expires);
    let html = page.text().await.unwrap();
    assert!(html.contains("adam@acme.test"));
    assert!(
        !html.contains("session has ended"),
        "the API accepted the renewed token"
    );
    s.stop.cancel();
}
