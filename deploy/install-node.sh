#!/bin/sh
# Install the Ritma node daemon on one machine (Debian, Ubuntu, RHEL and
# other systemd distributions): a system user, /etc/ritma/node.env, the
# binary, the hardened unit; then enable and start it.
#
#   sudo deploy/install-node.sh \
#       --binary ./target/release/ritma-node \
#       --controller-url https://controller.example.com \
#       --org ORG_ID --tenant TENANT_ID \
#       --enroll-token-file /root/enroll.token
#
# The enrollment token can also come from the environment
# (RITMA_ENROLL_TOKEN) so that it never shows in the process list.
# Run it again to upgrade the binary: the existing node.env and the node's
# identity in /var/lib/ritma-node are kept (--force-env rewrites node.env).
#
# --root DIR installs into DIR instead of / (a package staging folder, or a
# dry run): no user is created, nothing is started.
set -eu

prog=$(basename "$0")
here=$(cd "$(dirname "$0")" && pwd)

usage() {
    cat >&2 <<USAGE
usage: $prog --binary PATH --controller-url URL --org ORG --tenant TENANT
             [--enroll-token-file FILE] [--node-id ID] [--labels k=v,k=v]
             [--heartbeat-secs N] [--unit FILE] [--root DIR]
             [--force-env] [--no-start]
USAGE
    exit 2
}

die() { echo "$prog: $*" >&2; exit 1; }

binary=""
controller_url=""
org=""
tenant=""
token_file=""
node_id=""
labels=""
heartbeat=""
unit="$here/systemd/ritma-node.service"
root=""
force_env=0
start=1

while [ $# -gt 0 ]; do
    case "$1" in
        --binary) [ $# -ge 2 ] || usage; binary=$2; shift 2 ;;
        --controller-url) [ $# -ge 2 ] || usage; controller_url=$2; shift 2 ;;
        --org) [ $# -ge 2 ] || usage; org=$2; shift 2 ;;
        --tenant) [ $# -ge 2 ] || usage; tenant=$2; shift 2 ;;
        --enroll-token-file) [ $# -ge 2 ] || usage; token_file=$2; shift 2 ;;
        --node-id) [ $# -ge 2 ] || usage; node_id=$2; shift 2 ;;
        --labels) [ $# -ge 2 ] || usage; labels=$2; shift 2 ;;
        --heartbeat-secs) [ $# -ge 2 ] || usage; heartbeat=$2; shift 2 ;;
        --unit) [ $# -ge 2 ] || usage; unit=$2; shift 2 ;;
        --root) [ $# -ge 2 ] || usage; root=${2%/}; shift 2 ;;
        --force-env) force_env=1; shift ;;
        --no-start) start=0; shift ;;
        -h|--help) usage ;;
        *) echo "$prog: unknown argument: $1" >&2; usage ;;
    esac
done

[ -n "$binary" ] || usage
[ -f "$binary" ] || die "binary not found: $binary"
[ -f "$unit" ] || die "unit file not found: $unit"
if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (or use --root DIR to stage into a folder)"
fi

env_file="$root/etc/ritma/node.env"
state_dir="$root/var/lib/ritma-node"

# A value goes into an EnvironmentFile unquoted: allow no whitespace,
# quotes, backslashes, dollar signs or newlines.
check_value() {
    case "$2" in
        *[[:space:]\"\'\\\$]*) die "$1 contains whitespace, a quote, a backslash or a dollar sign" ;;
    esac
}

write_env=1
if [ -f "$env_file" ] && [ "$force_env" -eq 0 ]; then
    echo "$prog: keeping existing $env_file (--force-env to rewrite it)"
    write_env=0
fi

token=""
if [ "$write_env" -eq 1 ]; then
    [ -n "$controller_url" ] || die "--controller-url is required"
    [ -n "$org" ] || die "--org is required"
    [ -n "$tenant" ] || die "--tenant is required"
    if [ -n "$token_file" ]; then
        [ -r "$token_file" ] || die "cannot read $token_file"
        token=$(tr -d '\r\n' < "$token_file")
    else
        token=${RITMA_ENROLL_TOKEN:-}
    fi
    [ -n "$token" ] || die "no enrollment token: --enroll-token-file FILE or RITMA_ENROLL_TOKEN"
    case "$controller_url" in
        https://*) ;;
        http://*) echo "$prog: warning: $controller_url is not https; the enrollment token travels in clear" >&2 ;;
        *) die "--controller-url must be an http(s) URL" ;;
    esac
    check_value --controller-url "$controller_url"
    check_value --org "$org"
    check_value --tenant "$tenant"
    check_value "the enrollment token" "$token"
    check_value --node-id "$node_id"
    check_value --labels "$labels"
    case "$heartbeat" in
        ''|*[!0-9]*) [ -z "$heartbeat" ] || die "--heartbeat-secs must be a number" ;;
    esac
fi

# 1. The system user (the unit runs as ritma-node).
if [ -z "$root" ]; then
    if ! getent passwd ritma-node >/dev/null; then
        nologin=/usr/sbin/nologin
        [ -x "$nologin" ] || nologin=/sbin/nologin
        useradd --system --user-group --no-create-home \
            --home-dir /var/lib/ritma-node --shell "$nologin" \
            --comment "Ritma node daemon" ritma-node
        echo "$prog: created user ritma-node"
    fi
fi

# 2. Folders.
install -d -m 0755 "$root/etc/ritma" "$root/usr/bin" "$root/etc/systemd/system"
install -d -m 0700 "$state_dir"
if [ -z "$root" ]; then
    chown ritma-node:ritma-node "$state_dir"
fi

# 3. The binary (atomically: a running daemon keeps its old inode).
install -m 0755 "$binary" "$root/usr/bin/ritma-node.new"
mv -f "$root/usr/bin/ritma-node.new" "$root/usr/bin/ritma-node"

# 4. The unit.
install -m 0644 "$unit" "$root/etc/systemd/system/ritma-node.service"

# 5. The settings, readable by root only (systemd reads them before it
#    drops privileges).
if [ "$write_env" -eq 1 ]; then
    old_umask=$(umask)
    umask 077
    {
        echo "# Written by $prog on $(date -u +%Y-%m-%dT%H:%M:%SZ)."
        echo "RITMA_NODE_CONTROLLER_URL=$controller_url"
        echo "RITMA_NODE_ORG_ID=$org"
        echo "RITMA_NODE_TENANT_ID=$tenant"
        echo "# One-time token: remove this line once the node is enrolled."
        echo "RITMA_ENROLL_TOKEN=$token"
        echo "RITMA_STATE_DIR=/var/lib/ritma-node"
        [ -z "$node_id" ] || echo "RITMA_NODE_ID=$node_id"
        [ -z "$labels" ] || echo "RITMA_NODE_LABELS=$labels"
        [ -z "$heartbeat" ] || echo "RITMA_HEARTBEAT_SECS=$heartbeat"
    } > "$env_file.tmp"
    umask "$old_umask"
    chmod 0600 "$env_file.tmp"
    mv -f "$env_file.tmp" "$env_file"
    echo "$prog: wrote $env_file"
fi

# 6. Start.
if [ -n "$root" ]; then
    echo "$prog: staged into $root (no user created, nothing started)"
    exit 0
fi
systemctl daemon-reload
if [ "$start" -eq 1 ]; then
    systemctl enable ritma-node.service
    systemctl restart ritma-node.service
    echo "$prog: ritma-node started; follow it with: journalctl -u ritma-node -f"
else
    echo "$prog: installed; start with: systemctl enable --now ritma-node"
fi
