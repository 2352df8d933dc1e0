#!/usr/bin/env bash
# Fuzz the controller's REST API from its OpenAPI document with schemathesis
# (PyPI) against a real dev stack, and fail on any 500 (or any other check
# failure: responses must match the document).
#
#   tests/api-fuzz.sh                     # starts `ritma up` in a scratch folder
#   RITMA_FUZZ_MAX_TIME=600 tests/api-fuzz.sh
#   RITMA_API_URL=http://... RITMA_API_TOKEN=... tests/api-fuzz.sh   # a running stack
#
# Settings: RITMA_FUZZ_MAX_EXAMPLES (default 200 per operation),
# RITMA_FUZZ_MAX_TIME (seconds, default 300), RITMA_FUZZ_CHECKS (default
# not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance),
# RITMA_PROFILE (debug or release, default debug).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

VENV="$CARGO_TARGET_DIR/schemathesis-env"
if ! "$VENV/bin/schemathesis" --version >/dev/null 2>&1; then
  echo "== installing schemathesis into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis>=4,<5"
fi

UP_PID=""
cleanup() {
  if [ -n "$UP_PID" ] && kill -0 "$UP_PID" 2>/dev/null; then
    kill -INT "$UP_PID" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$UP_PID" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$UP_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

if [ -z "${RITMA_API_URL:-}" ]; then
  PROFILE="${RITMA_PROFILE:-debug}"
  FLAG=""; [ "$PROFILE" = release ] && FLAG="--release"
  echo "== building ritma ($PROFILE)"
  cargo build $FLAG -p ritma-cli --bin ritma
  DATA="$CARGO_TARGET_DIR/api-fuzz-stack"
  rm -rf "$DATA"
  echo "== starting a dev stack in $DATA"
  # The controller inherits this: let the fuzzer reach the enrollment
  # handlers instead of the brute-force limiter (tested on its own).
  export RITMA_ENROLL_FAILURES_BURST=100000000
  "$CARGO_TARGET_DIR/$PROFILE/ritma" up --data-dir "$DATA" --no-console >"$CARGO_TARGET_DIR/api-fuzz-up.log" 2>&1 &
  UP_PID=$!
  for _ in $(seq 1 240); do
    [ -f "$DATA/stack.json" ] && break
    kill -0 "$UP_PID" 2>/dev/null || { cat "$CARGO_TARGET_DIR/api-fuzz-up.log"; exit 1; }
    sleep 0.5
  done
  [ -f "$DATA/stack.json" ] || { echo "the stack did not come up" >&2; cat "$CARGO_TARGET_DIR/api-fuzz-up.log"; exit 1; }
  read -r RITMA_API_URL RITMA_API_TOKEN < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["api_url"], s["admin_token"])' "$DATA/stack.json")
fi

echo "== schemathesis against $RITMA_API_URL"
set +e
"$VENV/bin/schemathesis" run crates/controller/openapi.yaml \
  --url "$RITMA_API_URL" \
  --header "Authorization: Bearer $RITMA_API_TOKEN" \
  --checks "${RITMA_FUZZ_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance}" \
  --max-examples "${RITMA_FUZZ_MAX_EXAMPLES:-200}" \
  --max-time "${RITMA_FUZZ_MAX_TIME:-300}" \
  --workers 1 \
  --report junit --report-dir "$CARGO_TARGET_DIR/api-fuzz-report" \
  "$@"
rc=$?
set -e
if [ -n "$UP_PID" ]; then
  # Any panic in the controller shows up in its log even when the client saw a reset.
  if grep -q "panicked" "$CARGO_TARGET_DIR/api-fuzz-stack/logs/controller.log" 2>/dev/null; then
    echo "the controller panicked:" >&2
    grep -n -A3 "panicked" "$CARGO_TARGET_DIR/api-fuzz-stack/logs/controller.log" | head -40 >&2
    rc=1
  fi
fi
exit $rc
