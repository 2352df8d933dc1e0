#!/usr/bin/env bash
# Builds the console: the hydrate WASM bundle (wasm-bindgen + npm binaryen's wasm-opt,
# content-hashed and pre-compressed) and the `ritma-console` server binary (ssr).
#
#   app/scripts/build.sh               # both, release
#   app/scripts/build.sh --wasm-only   # just the browser bundle
#   app/scripts/build.sh --server-only # just the server binary
#   app/scripts/build.sh --dev         # server in the dev profile (target/debug), e.g. next
#                                      # to the debug `ritma` that `cargo test` built
#   app/scripts/build.sh --full-hydration  # the whole page hydrates, client-side routing
#                                      # (default: islands mode, feature `islands`)
#   CONSOLE_WASM_RUSTFLAGS="--cfg leptos_debuginfo" app/scripts/build.sh --wasm-only
#                                      # hydration errors name the element (bigger bundle)
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

do_wasm=1; do_server=1; islands=1
for a in "$@"; do
  case "$a" in
    --wasm-only) do_server=0 ;;
    --server-only) do_wasm=0 ;;
    --dev) OUTDIR=debug ;;
    --full-hydration) islands=0 ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done
WASM_FEATURES=hydrate,islands; SERVER_FEATURES=()
if [ "$islands" = 0 ]; then
  WASM_FEATURES=hydrate; SERVER_FEATURES=(--no-default-features --features ssr)
fi
log() { echo "[console-build] $*"; }
SITE="$TARGET/$OUTDIR/site"

if [ "$do_wasm" = 1 ]; then
  command -v wasm-bindgen >/dev/null || { echo "wasm-bindgen missing: run app/scripts/install-toolchain.sh" >&2; exit 1; }
  command -v wasm-opt >/dev/null || { echo "wasm-opt (npm binaryen) missing: run app/scripts/install-toolchain.sh" >&2; exit 1; }
  case "$(command -v wasm-opt)" in
    /usr/bin/*) echo "refusing Debian's wasm-opt (breaks hydration); run app/scripts/install-toolchain.sh" >&2; exit 1 ;;
  esac
  log "wasm: cargo build (features $WASM_FEATURES, profile wasm-release, relocations kept for splitting)"
  # --emit-relocs: the splitter needs the linker's relocations to cut the
  # module at the lazy islands' (or lazy routes') split points. These target
  # flags replace the workspace's (.cargo/config.toml), so its
  # erase_components is repeated.
  (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" \
      CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-Clink-args=--emit-relocs --cfg erase_components ${CONSOLE_WASM_RUSTFLAGS:-}" \
      cargo build -p ritma-console --lib \
      --target wasm32-unknown-unknown --profile wasm-release --no-default-features --features "$WASM_FEATURES")
  log "wasm: cargo build -p ritma-wasm-split (the splitter)"
  (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build -q -p ritma-wasm-split)
  SPLITTER="$TARGET/debug/ritma-wasm-split"
  RAW="$TARGET/wasm32-unknown-unknown/wasm-release/ritma_console.wasm"
  SRC_HASH="$( (sha256sum "$RAW" "$SPLITTER"; wasm-bindgen --version; wasm-opt --version) | sha256sum | cut -c1-32)"
  if [ -f "$SITE/pkg/SOURCE" ] && [ "$(cat "$SITE/pkg/SOURCE")" = "$SRC_HASH" ] \
     && [ -f "$SITE/pkg/BUILD" ] && [ -f "$SITE/pkg/$(cat "$SITE/pkg/BUILD")/ritma_console_bg.wasm" ]; then
    log "wasm: unchanged, keeping $SITE/pkg/$(cat "$SITE/pkg/BUILD")"
  else
  OUT="$(mktemp -d)"
  trap 'rm -rf "$OUT"' EXIT
  # Each lazy island (each lazy route without islands) becomes a chunk of its
  # own; the main module keeps the eager islands and the live feed.
  log "wasm: split at the lazy islands (the lazy routes without islands)"
  "$SPLITTER" "$RAW" "$OUT/split" --out-name ritma_console >/dev/null
  log "wasm: wasm-bindgen"
  wasm-bindgen --target web --no-typescript --keep-lld-exports --no-demangle \
    --out-name ritma_console --out-dir "$OUT" "$OUT/split/ritma_console.wasm"
  rm "$OUT/split/ritma_console.wasm"
  mv "$OUT/split"/* "$OUT"/ && rmdir "$OUT/split"
  log "wasm: wasm-opt -Oz ($(wasm-opt --version)) on the main module and $(($(ls "$OUT"/*.wasm | wc -l) - 1)) chunks"
  # One process per file, as many at once as there are cores.
  find "$OUT" -maxdepth 1 -name '*.wasm' -print0 | xargs -0 -P "$(nproc)" -I{} sh -c '
    wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
      --enable-reference-types --enable-multivalue --enable-mutable-globals \
      "$1" -o "$1.opt" 2>"$1.err" || { cat "$1.err" >&2; exit 1; }
    rm -f "$1.err" && mv "$1.opt" "$1"' sh {}
  HASH="$(cat "$OUT"/*.js "$OUT"/*.wasm | sha256sum | cut -c1-16)"
  mkdir -p "$SITE/pkg"
  DEST="$SITE/pkg/$HASH"
  rm -rf "$DEST.tmp" && mkdir -p "$DEST.tmp"
  cp -r "$OUT"/. "$DEST.tmp"/
  find "$DEST.tmp" -type f \( -name '*.js' -o -name '*.wasm' \) -print0 | xargs -0 -P "$(nproc)" -n 16 gzip -9 -k -f
  if command -v brotli >/dev/null; then
    find "$DEST.tmp" -type f \( -name '*.js' -o -name '*.wasm' \) -print0 | xargs -0 -P "$(nproc)" -n 16 brotli -q 11 -k -f
  else
    log "wasm: brotli missing (run app/scripts/install-toolchain.sh): serving gzip only"
  fi
  rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
  echo "$HASH" > "$SITE/pkg/BUILD.tmp" && mv "$SITE/pkg/BUILD.tmp" "$SITE/pkg/BUILD"
  echo "$SRC_HASH" > "$SITE/pkg/SOURCE"
  # keep only the current bundle and the previous one (pages still open may reference it)
  ls -1t "$SITE/pkg" | grep -v -e '^BUILD$' -e '^SOURCE$' | tail -n +3 | while read -r old; do rm -rf "${SITE:?}/pkg/$old"; done
  raw=$(stat -c %s "$DEST/ritma_console_bg.wasm"); gz=$(stat -c %s "$DEST/ritma_console_bg.wasm.gz")
  all_gz=$(cat "$DEST"/*.wasm.gz | wc -c)
  br=$(stat -c %s "$DEST/ritma_console_bg.wasm.br" 2>/dev/null || echo 0)
  log "wasm: $DEST (main module $((raw / 1024)) KiB raw, $((gz / 1024)) KiB gzip, $((br / 1024)) KiB brotli; all chunks together $((all_gz / 1024)) KiB gzip)"
  # What a first load of each page fetches: the main module, the page's chunk
  # and the chunks the manifest preloads with it.
  node -e '
    const fs = require("fs"), path = require("path"), dir = process.argv[1];
    const size = (f) => { try { return fs.statSync(path.join(dir, f)).size; } catch { return 0; } };
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, "__wasm_split_manifest.json"), "utf8"));
    const kib = (n) => String(Math.round(n / 1024)).padStart(5);
    for (const [route, chunks] of Object.entries(manifest).sort()) {
      const files = ["ritma_console_bg.wasm", `split_${route}.wasm`, ...chunks.map((c) => `${c}.wasm`)];
      const sum = (ext) => files.reduce((s, f) => s + size(f + ext), 0);
      const page = route.replace(/^__/, "").replace(/_route_view_\d+$/, "");
      console.log(`[console-build] first load ${page.padEnd(15)} WASM ${kib(sum(".gz"))} KiB gzip ${kib(sum(".br"))} KiB brotli`);
    }' "$DEST"
  fi
fi

if [ "$do_server" = 1 ]; then
  if [ "$OUTDIR" = release ]; then prof=(--release); else prof=(); fi
  log "server: cargo build ${prof[*]} --bin ritma-console ${SERVER_FEATURES[*]}"
  (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build -p ritma-console --bin ritma-console "${prof[@]}" "${SERVER_FEATURES[@]}")
  log "server: $TARGET/$OUTDIR/ritma-console (assets: $SITE)"
fi
