#!/usr/bin/env bash
# Live-path benchmark: state change published → inventory row updated in a real
# browser. Starts the whole stack (`ritma up`, release build) and runs
# app/e2e/bench-live.mjs against it; prints the figures and writes
# target/bench/live.json. RITMA_BENCH_LIVE_CHANGES=N sets the number of changes.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export RITMA_E2E_PROFILE="${RITMA_E2E_PROFILE:-release}"
export RITMA_E2E_BENCH=1
exec "$HERE/e2e.sh"
