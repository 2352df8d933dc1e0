//! Ritma Node Console: the operators' web UI.
//!
//! One crate, two builds: with `ssr` it is the console server (axum, server-side
//! rendering, server functions calling the controller API, a NATS subscription fanned
//! out to browsers over SSE); with `hydrate` it is the WASM bundle that makes the
//! server-rendered pages interactive and live.

#![recursion_limit = "256"]

// Server and browser must agree on Leptos' view types, or hydration breaks.
#[cfg(not(erase_components))]
compile_error!(
    "build the console with `--cfg erase_components` (set by .cargo/config.toml; \
     a RUSTFLAGS variable in the environment replaces it: add the flag to it)"
);

pub mod app;
pub mod fns;
pub mod live;
pub mod model;

#[cfg(feature = "ssr")]
pub mod server;

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Islands mode: each island hydrates on its own; the shell and the pages
    // stay the server's HTML.
    #[cfg(feature = "islands")]
    leptos::mount::hydrate_islands();
    // The pages are lazy routes: hydration waits for the shown page's chunk.
    #[cfg(not(feature = "islands"))]
    leptos::mount::hydrate_lazy(app::App);
}
