#!/usr/bin/env bash
# Browser tests of the console against the real stack: `ritma up` (NATS, PostgreSQL,
# controller, demo nodes, console) in a throw-away data dir, then app/e2e in apt's
# headless Chromium. Called by tests/run.sh (CI) and usable by hand.
#
#   app/scripts/e2e.sh            # dev-profile binaries (reuses what `cargo test` built)
#   RITMA_E2E_PROFILE=release app/scripts/e2e.sh
#   RITMA_E2E_FULL_HYDRATION=1 app/scripts/e2e.sh   # the console without islands (build.sh --full-hydration)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
APP="$(cd "$HERE/.." && pwd)"
ROOT="$(cd "$APP/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PROFILE="${RITMA_E2E_PROFILE:-debug}"
export RITMA_E2E_PROFILE="$PROFILE"
BIN="$CARGO_TARGET_DIR/$PROFILE"
log() { echo "[console-e2e] $*"; }

"$HERE/install-toolchain.sh"
MODE=()
[ "${RITMA_E2E_FULL_HYDRATION:-0}" = 1 ] && MODE=(--full-hydration)
if [ "$PROFILE" = release ]; then
  "$HERE/build.sh" "${MODE[@]}"
  (cd "$ROOT" && cargo build --release --bin ritma)
else
  "$HERE/build.sh" --dev "${MODE[@]}"
  (cd "$ROOT" && cargo build --bin ritma)
fi

DATA="$CARGO_TARGET_DIR/e2e-stack"
rm -rf "$DATA"
mkdir -p "$DATA"
log "starting the stack: $BIN/ritma up --data-dir $DATA"
"$BIN/ritma" up --data-dir "$DATA" > "$DATA/up.log" 2>&1 &
UP_PID=$!
stop_stack() {
  if kill -0 "$UP_PID" 2>/dev/null; then
    kill -TERM "$UP_PID" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$UP_PID" 2>/dev/null || break; sleep 1; done
    kill -KILL "$UP_PID" 2>/dev/null || true
  fi
}
trap stop_stack EXIT

for _ in $(seq 1 240); do
  [ -f "$DATA/stack.json" ] && break
  kill -0 "$UP_PID" 2>/dev/null || { cat "$DATA/up.log"; echo "ritma up exited" >&2; exit 1; }
  sleep 1
done
[ -f "$DATA/stack.json" ] || { cat "$DATA/up.log"; echo "ritma up did not become ready" >&2; exit 1; }
cat "$DATA/up.log"
# give the demo nodes a first heartbeat
sleep 3

status=0
if [ "${RITMA_E2E_BENCH:-0}" = 1 ]; then
  # the live-path benchmark instead of the tests (app/scripts/bench-live.sh)
  RITMA_STACK_FILE="$DATA/stack.json" RITMA_CLI_BIN="$BIN/ritma" node "$APP/e2e/bench-live.mjs" || status=$?
  [ "$status" = 0 ] && { RITMA_STACK_FILE="$DATA/stack.json" node "$APP/e2e/bench-load.mjs" || status=$?; }
else
  RITMA_STACK_FILE="$DATA/stack.json" npm --prefix "$APP/e2e" test || status=$?
fi
if [ "$status" != 0 ]; then
  log "failed; console log:"
  tail -n 50 "$DATA/logs/console.log" 2>/dev/null || true
fi
exit "$status"
