#!/usr/bin/env bash
# Idempotent installer for everything the console build and its browser tests need.
# Safe to run repeatedly (CI, `ritma up`, developers). Needs: rustup, cargo, npm; apt for chromium.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
APP="$(cd "$HERE/.." && pwd)"
WASM_BINDGEN_VERSION="0.2.130"   # must equal the `wasm-bindgen` pin in the root Cargo.toml
TOOLS="$APP/.tools"              # npm-installed build tools (binaryen's wasm-opt), gitignored

log() { echo "[install-toolchain] $*"; }

# 1. wasm target
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# 2. wasm-bindgen CLI matching the pinned crate
have_wb="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
if [ "$have_wb" != "$WASM_BINDGEN_VERSION" ]; then
  log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (had: ${have_wb:-none})"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

# 3. wasm-opt from npm's binaryen (Debian's binaryen 108 silently breaks hydration)
if [ ! -x "$TOOLS/node_modules/.bin/wasm-opt" ]; then
  log "installing npm binaryen into $TOOLS"
  mkdir -p "$TOOLS"
  (cd "$TOOLS" && { [ -f package.json ] || echo '{"name":"ritma-console-tools","private":true}' > package.json; } \
     && npm install --no-audit --no-fund --silent binaryen@132)
fi

# 4. brotli from apt: the bundle is served precompressed, brotli where the
#    browser takes it (about a fifth smaller than gzip), gzip otherwise
if ! command -v brotli >/dev/null 2>&1; then
  log "installing brotli from apt"
  if [ "$(id -u)" = "0" ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq brotli >/dev/null
fi

# 5. Chromium from apt for the e2e tests
if [ "${SKIP_BROWSER:-0}" != "1" ] && ! command -v chromium >/dev/null 2>&1; then
  log "installing chromium from apt"
  if [ "$(id -u)" = "0" ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
fi

# 6. e2e npm packages (playwright-core only; it never downloads a browser)
if [ "${SKIP_BROWSER:-0}" != "1" ] && [ -f "$APP/e2e/package-lock.json" ]; then
  if [ ! -d "$APP/e2e/node_modules/playwright-core" ]; then
    log "npm ci in app/e2e"
    (cd "$APP/e2e" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
  fi
fi
log "ok: $(wasm-bindgen --version), wasm-opt $("$TOOLS/node_modules/.bin/wasm-opt" --version | head -1)"
