#!/usr/bin/env bash
# Console benchmarks in a real browser against the whole stack (`ritma up`,
# release build): the live path (state change published → inventory row
# updated; app/e2e/bench-live.mjs, target/bench/live.json,
# RITMA_BENCH_LIVE_CHANGES=N) and the first load (bytes transferred and time
# to interactive per page, empty cache; app/e2e/bench-load.mjs,
# target/bench/load.json, RITMA_BENCH_LOAD_ROUNDS=N).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export RITMA_E2E_PROFILE="${RITMA_E2E_PROFILE:-release}"
export RITMA_E2E_BENCH=1
exec "$HERE/e2e.sh"
