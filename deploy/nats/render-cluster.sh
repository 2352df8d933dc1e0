#!/bin/sh
# Render one server's config from the cluster template (cluster.conf) for
# hosts that run nats-server under systemd, e.g. three machines:
#
#   render-cluster.sh --operator-conf /etc/nats/operator.conf \
#       --name nats-a --cluster-host 10.0.0.1 \
#       --routes nats://10.0.0.1:6222,nats://10.0.0.2:6222,nats://10.0.0.3:6222 \
#       --data-dir /var/lib/nats-server > /etc/nats-server.conf
#
# Operator values come from an operator.conf (operator-conf.sh) or a
# server.conf rendered by `ritma bus render-config`; both have the same lines.
# Defaults: --host 0.0.0.0 --port 4222 --monitor-host 127.0.0.1
# --monitor-port 8222 --cluster-port 6222 --cluster-name ritma.
#
# --tls-dir DIR (server.crt, server.key, ca.crt in DIR) serves clients and
# monitoring over TLS only and makes routes mutual TLS (each server presents
# server.crt, so it needs clientAuth as well as serverAuth, and accepts
# peers signed by ca.crt). Without it the config is plaintext: keep that to
# loopback and development.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
template=""
for candidate in "$here/cluster.conf" "$here/../../nats/cluster.conf"; do
    if [ -z "$template" ] && [ -f "$candidate" ]; then
        template=$candidate
    fi
done

usage() {
    echo "usage: $0 --operator-conf FILE --name NAME --cluster-host ADDR --routes URL,URL,... --data-dir DIR" >&2
    echo "          [--host ADDR] [--port N] [--monitor-host ADDR] [--monitor-port N]" >&2
    echo "          [--cluster-port N] [--cluster-name NAME] [--template FILE] [--tls-dir DIR]" >&2
    exit 2
}

operator_conf=""
name=""
host=0.0.0.0
port=4222
monitor_host=127.0.0.1
monitor_port=8222
cluster_host=""
cluster_port=6222
cluster_name=ritma
routes=""
data_dir=""
tls_dir=""
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || usage
    case "$1" in
        --operator-conf) operator_conf=$2 ;;
        --name) name=$2 ;;
        --host) host=$2 ;;
        --port) port=$2 ;;
        --monitor-host) monitor_host=$2 ;;
        --monitor-port) monitor_port=$2 ;;
        --cluster-host) cluster_host=$2 ;;
        --cluster-port) cluster_port=$2 ;;
        --cluster-name) cluster_name=$2 ;;
        --routes) routes=$2 ;;
        --data-dir) data_dir=${2%/} ;;
        --template) template=$2 ;;
        --tls-dir) tls_dir=${2%/} ;;
        *) usage ;;
    esac
    shift 2
done
[ -n "$operator_conf" ] && [ -n "$name" ] && [ -n "$cluster_host" ] && [ -n "$routes" ] && [ -n "$data_dir" ] || usage
[ -f "$template" ] || { echo "$0: template not found: $template" >&2; exit 1; }

operator_jwt=$(sed -n 's/^operator: *"\([^"]*\)".*/\1/p' "$operator_conf" | head -n 1)
system_account=$(sed -n 's/^system_account: *"\([^"]*\)".*/\1/p' "$operator_conf" | head -n 1)
system_account_jwt=$(sed -n "s/^ *${system_account:-NONE}: *\"\\([^\"]*\\)\".*/\\1/p" "$operator_conf" | head -n 1)
if [ -z "$operator_jwt" ] || [ -z "$system_account" ] || [ -z "$system_account_jwt" ]; then
    echo "$0: no operator JWT, system account or its JWT in $operator_conf" >&2
    exit 1
fi

# Values go into a sed replacement: refuse the characters that would break it.
for value in "$name" "$host" "$port" "$monitor_host" "$monitor_port" "$cluster_host" \
    "$cluster_port" "$cluster_name" "$routes" "$data_dir" "$tls_dir"; do
    case "$value" in
        *[\|\&\\\"[:space:]]*) echo "$0: bad character in '$value'" >&2; exit 1 ;;
    esac
done

# nats://a:6222,nats://b:6222 -> "nats://a:6222", "nats://b:6222"
quoted_routes=$(printf '%s' "$routes" | sed 's/^/"/; s/,/", "/g; s/$/"/')

if [ -n "$tls_dir" ]; then
    for f in server.crt server.key ca.crt; do
        [ -f "$tls_dir/$f" ] || { echo "$0: $tls_dir/$f not found" >&2; exit 1; }
    done
fi

# With --tls-dir: monitoring on HTTPS, routes mutual TLS (inside `cluster`,
# after no_advertise), clients TLS only (a top-level `tls` at the end).
add_tls() {
    if [ -z "$tls_dir" ]; then
        cat
        return
    fi
    awk -v d="$tls_dir" '
        /^[[:space:]]*#/ { print; next }
        /^http: / { sub(/^http: /, "https: ") }
        { print }
        /^[[:space:]]*no_advertise: true/ {
            print "  tls {"
            print "    cert_file: \"" d "/server.crt\""
            print "    key_file: \"" d "/server.key\""
            print "    ca_file: \"" d "/ca.crt\""
            print "    verify: true"
            print "    timeout: 5"
            print "  }"
        }
        END {
            print ""
            print "tls {"
            print "  cert_file: \"" d "/server.crt\""
            print "  key_file: \"" d "/server.key\""
            print "  timeout: 5"
            print "}"
        }'
}

# Comment lines are copied as they are.
sed -e '/^[[:space:]]*#/b' \
    -e "s|{{SERVER_NAME}}|$name|g" \
    -e "s|{{HOST}}:{{MONITOR_PORT}}|$monitor_host:$monitor_port|g" \
    -e "s|{{HOST}}|$host|g" \
    -e "s|{{PORT}}|$port|g" \
    -e "s|{{OPERATOR_JWT}}|$operator_jwt|g" \
    -e "s|{{SYSTEM_ACCOUNT_JWT}}|$system_account_jwt|g" \
    -e "s|{{SYSTEM_ACCOUNT}}|$system_account|g" \
    -e "s|{{RESOLVER_DIR}}|$data_dir/resolver|g" \
    -e "s|{{STORE_DIR}}|$data_dir/jetstream|g" \
    -e "s|{{CLUSTER_NAME}}|$cluster_name|g" \
    -e "s|{{CLUSTER_HOST}}|$cluster_host|g" \
    -e "s|{{CLUSTER_PORT}}|$cluster_port|g" \
    -e "s|{{ROUTES}}|$quoted_routes|g" \
    "$template" | add_tls
