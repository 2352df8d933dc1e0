//! `/login`: the sign-in page (single sign-on and the admin-token form).

use crate::fns::login_options;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let options = Resource::new(|| (), |_| login_options());
    let error = move || {
        query.with(|q| q.get("error")).map(|e| match e.as_str() {
            "invalid" => "The controller rejected this token.",
            "unavailable" => {
                "The controller API cannot be reached right now; try again in a moment."
            }
            "missing" => "Enter a token.",
            "no-org" => {
                "Your account gives access to no organisation yet; ask an org admin for a role."
            }
            "origin" => "The sign-in request came from another site and was refused.",
            "sso-state" => "The sign-in expired or was started in another browser; start again.",
            "sso-denied" => "The identity provider did not sign you in.",
            "sso-failed" | "sso-unavailable" => {
                "Single sign-on failed at the identity provider; try again in a moment."
            }
            "sso-rejected" => "The controller did not accept the identity provider's token.",
            "sso-off" => "Single sign-on is not configured on this console.",
            "token-login-off" => "Admin-token sign-in is turned off on this console.",
            _ => "Sign-in failed.",
        })
    };
    let next = move || {
        query
            .with(|q| q.get("next"))
            .filter(|n| n.starts_with('/') && !n.starts_with("//"))
            .unwrap_or_else(|| "/".to_string())
    };
    let sso_href = move || format!("/auth/oidc?next={}", crate::model::url_encode(&next()));
    view! {
        <Title text="Sign in · Ritma"/>
        <main class="center" id="main">
            <div class="card narrow login">
                <h1>"Ritma Node Console"</h1>
                {move || error().map(|e| view! { <p class="error" role="alert">{e}</p> })}
                <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || options.get().map(|o| {
                        let o = o.unwrap_or(crate::model::SignInOptions { sso: false, token_login: true });
                        view! {
                            {o.sso.then(|| view! {
                                <a class="button primary block" href=sso_href data-testid="sso">"Sign in with single sign-on"</a>
                            })}
                            {(o.sso && o.token_login).then(|| view! { <p class="muted small divider">"or, break-glass:"</p> })}
                            {o.token_login.then(|| view! {
                                <form class="stack" method="post" action="/auth/login">
                                    <p class="muted">
                                        "Sign in with an admin token of the controller. For a dev stack, "
                                        <code>"ritma up"</code> " prints it and writes it to "
                                        <code>".ritma/dev/stack.json"</code> "."
                                    </p>
                                    <label for="token">"Admin token"</label>
                                    <input
                                        id="token"
                                        name="token"
                                        type="password"
                                        autocomplete="current-password"
                                        required
                                        autofocus=!o.sso
                                    />
                                    <input type="hidden" name="next" value=next/>
                                    <button type="submit" class=if o.sso { "" } else { "primary" }>"Sign in"</button>
                                </form>
                            })}
                        }
                    })}
                </Suspense>
            </div>
        </main>
    }
}
