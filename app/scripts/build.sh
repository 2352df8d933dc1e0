#!/usr/bin/env bash
# Builds the console: the hydrate WASM bundle (wasm-bindgen + npm binaryen's wasm-opt,
# content-hashed and pre-compressed) and the `ritma-console` server binary (ssr).
#
#   app/scripts/build.sh               # both, release
#   app/scripts/build.sh --wasm-only   # just the browser bundle
#   app/scripts/build.sh --server-only # just the server binary
#   app/scripts/build.sh --dev         # server in the dev profile (target/debug), e.g. next
#                                      # to the debug `ritma` that `cargo test` built
#
# Output: $CARGO_TARGET_DIR/<release|debug>/ritma-console and, next to it, site/pkg/<hash>/
# (the server finds it there, or via RITMA_CONSOLE_SITE; `ritma up` starts it from there).
# The WASM bundle is always size-optimised (profile wasm-release).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
APP="$(cd "$HERE/.." && pwd)"
ROOT="$(cd "$APP/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUTDIR=release
export PATH="$APP/.tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"

do_wasm=1; do_server=1
for a in "$@"; do
  case "$a" in
    --wasm-only) do_server=0 ;;
    --server-only) do_wasm=0 ;;
    --dev) OUTDIR=debug ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done
log() { echo "[console-build] $*"; }
SITE="$TARGET/$OUTDIR/site"

if [ "$do_wasm" = 1 ]; then
  command -v wasm-bindgen >/dev/null || { echo "wasm-bindgen missing: run app/scripts/install-toolchain.sh" >&2; exit 1; }
  command -v wasm-opt >/dev/null || { echo "wasm-opt (npm binaryen) missing: run app/scripts/install-toolchain.sh" >&2; exit 1; }
  case "$(command -v wasm-opt)" in
    /usr/bin/*) echo "refusing Debian's wasm-opt (breaks hydration); run app/scripts/install-toolchain.sh" >&2; exit 1 ;;
  esac
  log "wasm: cargo build (hydrate, profile wasm-release)"
  (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build -p ritma-console --lib \
      --target wasm32-unknown-unknown --profile wasm-release --no-default-features --features hydrate)
  RAW="$TARGET/wasm32-unknown-unknown/wasm-release/ritma_console.wasm"
  SRC_HASH="$( (sha256sum "$RAW"; wasm-bindgen --version; wasm-opt --version) | sha256sum | cut -c1-32)"
  if [ -f "$SITE/pkg/SOURCE" ] && [ "$(cat "$SITE/pkg/SOURCE")" = "$SRC_HASH" ] \
     && [ -f "$SITE/pkg/BUILD" ] && [ -f "$SITE/pkg/$(cat "$SITE/pkg/BUILD")/ritma_console_bg.wasm" ]; then
    log "wasm: unchanged, keeping $SITE/pkg/$(cat "$SITE/pkg/BUILD")"
  else
  OUT="$(mktemp -d)"
  trap 'rm -rf "$OUT"' EXIT
  log "wasm: wasm-bindgen"
  wasm-bindgen --target web --no-typescript --out-name ritma_console --out-dir "$OUT" \
    "$TARGET/wasm32-unknown-unknown/wasm-release/ritma_console.wasm"
  log "wasm: wasm-opt -Oz ($(wasm-opt --version))"
  wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-reference-types --enable-multivalue --enable-mutable-globals \
    "$OUT/ritma_console_bg.wasm" -o "$OUT/ritma_console_bg.opt.wasm"
  mv "$OUT/ritma_console_bg.opt.wasm" "$OUT/ritma_console_bg.wasm"
  HASH="$(cat "$OUT/ritma_console.js" "$OUT/ritma_console_bg.wasm" | sha256sum | cut -c1-16)"
  mkdir -p "$SITE/pkg"
  DEST="$SITE/pkg/$HASH"
  rm -rf "$DEST.tmp" && mkdir -p "$DEST.tmp"
  cp -r "$OUT"/. "$DEST.tmp"/
  find "$DEST.tmp" -type f \( -name '*.js' -o -name '*.wasm' \) -exec gzip -9 -k -f {} \;
  if command -v brotli >/dev/null; then
    find "$DEST.tmp" -type f \( -name '*.js' -o -name '*.wasm' \) -exec brotli -q 11 -k -f {} \;
  fi
  rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
  echo "$HASH" > "$SITE/pkg/BUILD.tmp" && mv "$SITE/pkg/BUILD.tmp" "$SITE/pkg/BUILD"
  echo "$SRC_HASH" > "$SITE/pkg/SOURCE"
  # keep only the current bundle and the previous one (pages still open may reference it)
  ls -1t "$SITE/pkg" | grep -v -e '^BUILD$' -e '^SOURCE$' | tail -n +3 | while read -r old; do rm -rf "${SITE:?}/pkg/$old"; done
  raw=$(stat -c %s "$DEST/ritma_console_bg.wasm"); gz=$(stat -c %s "$DEST/ritma_console_bg.wasm.gz")
  log "wasm: $DEST ($((raw / 1024)) KiB raw, $((gz / 1024)) KiB gzip)"
  fi
fi

if [ "$do_server" = 1 ]; then
  if [ "$OUTDIR" = release ]; then prof=(--release); else prof=(); fi
  log "server: cargo build ${prof[*]} --bin ritma-console"
  (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build -p ritma-console --bin ritma-console "${prof[@]}")
  log "server: $TARGET/$OUTDIR/ritma-console (assets: $SITE)"
fi
