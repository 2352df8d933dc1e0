#!/usr/bin/env bash
# Measures what the console's shell would cost in Leptos islands mode: a
# throwaway crate with the console's Leptos and wasm-bindgen versions (its
# Cargo.lock) and the shell's interactive parts as islands (live indicator on
# an EventSource with serde_json events, a ticking clock for relative times,
# a copy button, a server action form), built and optimised as build.sh
# builds the console (opt-level z, LTO, wasm-bindgen, wasm-opt -Oz), then
# compressed as the console serves it. Prints the first-load WASM of that
# floor: what every page would load before its own islands.
#
#   app/scripts/islands-floor.sh     # needs what install-toolchain.sh installs
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
APP="$(cd "$HERE/.." && pwd)"
ROOT="$(cd "$APP/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
export PATH="$APP/.tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
command -v wasm-bindgen >/dev/null && command -v wasm-opt >/dev/null && command -v brotli >/dev/null \
  || { echo "wasm-bindgen, wasm-opt or brotli missing: run app/scripts/install-toolchain.sh" >&2; exit 1; }

DIR="$TARGET/islands-floor"
mkdir -p "$DIR/src"
cp "$ROOT/Cargo.lock" "$DIR/Cargo.lock"
pin() { sed -n "s/^$1 = { version = \"\\([^\"]*\\)\".*/\\1/p" "$ROOT/Cargo.toml"; }
cat > "$DIR/Cargo.toml" <<EOF
[package]
name = "islands-floor"
version = "0.0.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
leptos = { version = "$(pin leptos)", features = ["islands", "islands-router", "hydrate"] }
serde = { version = "1", features = ["derive"] }
serde_json = "1"
wasm-bindgen = { version = "$(pin wasm-bindgen)" }
js-sys = "0.3"
web-sys = { version = "0.3", features = ["EventSource", "MessageEvent", "Window", "Navigator", "Clipboard"] }
console_error_panic_hook = "0.1"

[profile.release]
opt-level = "z"
lto = true
codegen-units = 1
panic = "abort"
debug = false

[workspace]
EOF
cat > "$DIR/src/lib.rs" <<'EOF'
use leptos::prelude::*;
use serde::Deserialize;
use std::collections::HashMap;
use wasm_bindgen::JsCast;

#[derive(Deserialize, Clone)]
struct StateChange {
    node_id: String,
    to: String,
    at_ms: i64,
}

#[server]
async fn acknowledge(id: String) -> Result<String, ServerFnError> {
    Ok(id)
}

/// Live indicator and node status overrides from one EventSource.
#[island]
fn LiveStatus(id: String, status: String) -> impl IntoView {
    let open = RwSignal::new(false);
    let nodes: RwSignal<HashMap<String, StateChange>> = RwSignal::new(HashMap::new());
    Effect::new(move |_| {
        let Ok(es) = web_sys::EventSource::new("/live") else { return };
        let on_state = wasm_bindgen::closure::Closure::<dyn FnMut(web_sys::MessageEvent)>::new(
            move |m: web_sys::MessageEvent| {
                if let Some(ev) = m.data().as_string().and_then(|t| serde_json::from_str::<StateChange>(&t).ok()) {
                    nodes.update(|n| {
                        if n.get(&ev.node_id).is_none_or(|old| ev.at_ms >= old.at_ms) {
                            n.insert(ev.node_id.clone(), ev);
                        }
                    });
                }
            },
        );
        let _ = es.add_event_listener_with_callback("state", on_state.as_ref().unchecked_ref());
        on_state.forget();
        open.set(true);
    });
    let shown = move || nodes.with(|n| n.get(&id).map(|e| e.to.clone())).unwrap_or_else(|| status.clone());
    view! {
        <span class=move || if open.get() { "live live-open" } else { "live" }>"Live"</span>
        <span data-status=shown.clone()>{shown.clone()}</span>
    }
}

/// A relative time that ticks.
#[island]
fn Ago(at_ms: i64) -> impl IntoView {
    let now = RwSignal::new(None::<i64>);
    Effect::new(move |_| {
        now.set(Some(js_sys::Date::now() as i64));
        set_interval(move || now.set(Some(js_sys::Date::now() as i64)), std::time::Duration::from_secs(5));
    });
    view! { <time>{move || now.get().map(|n| format!("{} s ago", (n - at_ms) / 1000))}</time> }
}

#[island]
fn CopyButton(text: String) -> impl IntoView {
    let copied = RwSignal::new(false);
    let on_click = move |_| {
        if let Some(w) = web_sys::window() {
            let _ = w.navigator().clipboard().write_text(&text);
            copied.set(true);
        }
    };
    view! { <button on:click=on_click>{move || if copied.get() { "Copied" } else { "Copy" }}</button> }
}

#[island]
fn AcknowledgeForm(id: String) -> impl IntoView {
    let act = ServerAction::<Acknowledge>::new();
    let result = act.value();
    view! {
        <ActionForm action=act><input type="hidden" name="id" value=id/><button>"Acknowledge"</button></ActionForm>
        <span>{move || result.get().map(|r| r.unwrap_or_default())}</span>
    }
}

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
EOF
echo "[islands-floor] cargo build (wasm32, opt-level z, LTO) in $DIR"
# RUSTFLAGS="": the workspace's .cargo/config.toml (erase_components) would
# reach this crate too (it sits under target/); the floor is Leptos' default.
(cd "$DIR" && RUSTFLAGS="" CARGO_TARGET_DIR="$DIR/target" cargo build -q --release --target wasm32-unknown-unknown --lib)
OUT="$DIR/out"
rm -rf "$OUT"
wasm-bindgen --target web --no-typescript --out-dir "$OUT" "$DIR/target/wasm32-unknown-unknown/release/islands_floor.wasm"
wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-reference-types --enable-multivalue --enable-mutable-globals \
  "$OUT/islands_floor_bg.wasm" -o "$OUT/floor.wasm"
raw=$(stat -c %s "$OUT/floor.wasm")
gz=$(gzip -9 -c "$OUT/floor.wasm" | wc -c)
br=$(brotli -q 11 -c "$OUT/floor.wasm" | wc -c)
echo "[islands-floor] leptos $(pin leptos), four islands: WASM $((raw / 1024)) KiB raw, $((gz / 1024)) KiB gzip, $((br / 1024)) KiB brotli"
