#!/usr/bin/env python3
"""Checks on deploy/ that no schema covers: pod security in the Kubernetes
manifests, references between objects, compose cross-references, the
hardening of the systemd units. (The RITMA_* names in deploy/ are checked
against the binaries by tests/tests/deploy_env.rs.)

Run by deploy/validate.sh; prints one line per problem, exits 1 if any.
"""
import pathlib
import re
import sys

import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent.parent
problems: list[str] = []


def problem(where: str, what: str) -> None:
    problems.append(f"{where}: {what}")


# Whether every RITMA_* name in deploy/ and the READMEs is one the binaries
# read is checked by tests/tests/deploy_env.rs, against the binaries' own clap
# definitions (a list kept here went stale and accepted names no binary reads).


# --- Kubernetes -----------------------------------------------------------

def load_k8s() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


def check_kubernetes() -> None:
    docs = load_k8s()
    by_kind: dict[str, dict[str, dict]] = {}
    for _, doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc

    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    for res in kustomization["resources"]:
        if not (DEPLOY / "k8s" / res).is_file():
            problem("k8s/kustomization.yaml", f"missing resource file {res}")

    ns = by_kind.get("Namespace", {}).get("ritma")
    if not ns or ns["metadata"]["labels"].get("pod-security.kubernetes.io/enforce") != "restricted":
        problem("k8s/namespace.yaml", "namespace ritma must enforce the restricted Pod Security Standard")

    policies = by_kind.get("NetworkPolicy", {})
    deny = policies.get("default-deny")
    if not deny or deny["spec"].get("podSelector") != {} or set(deny["spec"].get("policyTypes", [])) != {"Ingress", "Egress"}:
        problem("k8s/networkpolicies.yaml", "a default-deny policy for Ingress and Egress is required")

    for kind in ("Deployment", "StatefulSet"):
        for name, doc in by_kind.get(kind, {}).items():
            where = f"k8s {kind}/{name}"
            pod = doc["spec"]["template"]["spec"]
            labels = doc["spec"]["template"]["metadata"]["labels"]
            if doc["spec"]["selector"]["matchLabels"].items() - labels.items():
                problem(where, "selector does not match the pod labels")
            psc = pod.get("securityContext", {})
            if psc.get("runAsNonRoot") is not True:
                problem(where, "pod securityContext.runAsNonRoot must be true")
            if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
                problem(where, "pod seccompProfile must be RuntimeDefault")
            if pod.get("automountServiceAccountToken") is not False:
                problem(where, "automountServiceAccountToken must be false")
            for c in pod["containers"] + pod.get("initContainers", []):
                cw = f"{where} container {c['name']}"
                sc = c.get("securityContext", {})
                if sc.get("allowPrivilegeEscalation") is not False:
                    problem(cw, "allowPrivilegeEscalation must be false")
                if sc.get("readOnlyRootFilesystem") is not True:
                    problem(cw, "readOnlyRootFilesystem must be true")
                if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                    problem(cw, "capabilities must drop ALL")
                if not c.get("resources", {}).get("limits", {}).get("memory"):
                    problem(cw, "a memory limit is required")
                if c["image"].endswith(":latest") or ":" not in c["image"].rsplit("/", 1)[-1]:
                    problem(cw, f"image {c['image']} must carry a version tag")
                if not c.get("livenessProbe") or not c.get("readinessProbe"):
                    problem(cw, "liveness and readiness probes are required")
                for ref in c.get("envFrom", []):
                    cm = ref.get("configMapRef", {}).get("name")
                    if cm and cm not in by_kind.get("ConfigMap", {}):
                        problem(cw, f"ConfigMap {cm} is not defined")
                for env in c.get("env", []):
                    sk = env.get("valueFrom", {}).get("secretKeyRef")
                    if sk:
                        secret = by_kind.get("Secret", {}).get(sk["name"])
                        if not secret or sk["key"] not in secret.get("stringData", {}):
                            problem(cw, f"secret key {sk['name']}/{sk['key']} is not in secrets.example.yaml")
            for vol in pod.get("volumes", []):
                if "secret" in vol:
                    secret = by_kind.get("Secret", {}).get(vol["secret"]["secretName"])
                    if not secret:
                        problem(where, f"Secret {vol['secret']['secretName']} is not in secrets.example.yaml")
                    else:
                        for item in vol["secret"].get("items", []):
                            if item["key"] not in secret.get("stringData", {}):
                                problem(where, f"secret key {item['key']} missing from {vol['secret']['secretName']}")
                if "configMap" in vol and vol["configMap"]["name"] not in by_kind.get("ConfigMap", {}):
                    problem(where, f"ConfigMap {vol['configMap']['name']} is not defined")

    controller = by_kind.get("Deployment", {}).get("ritma-controller")
    if controller:
        c = controller["spec"]["template"]["spec"]["containers"][0]
        if controller["spec"]["replicas"] < 2:
            problem("k8s ritma-controller", "at least 2 replicas")
        if c["readinessProbe"].get("httpGet", {}).get("path") != "/readyz":
            problem("k8s ritma-controller", "readiness probe must be GET /readyz")
        if c["livenessProbe"].get("httpGet", {}).get("path") != "/healthz":
            problem("k8s ritma-controller", "liveness probe must be GET /healthz")
    else:
        problem("k8s", "no ritma-controller Deployment")

    nats = by_kind.get("StatefulSet", {}).get("ritma-nats")
    conf = by_kind.get("ConfigMap", {}).get("ritma-nats-config", {}).get("data", {}).get("nats.conf", "")
    if not nats or nats["spec"]["replicas"] != 3:
        problem("k8s ritma-nats", "a 3-replica StatefulSet is required")
    else:
        routes = re.findall(r"(?:nats|tls)://(ritma-nats-\d)\.ritma-nats-headless:6222", conf)
        if sorted(routes) != [f"ritma-nats-{i}" for i in range(3)]:
            problem("k8s ritma-nats-config", f"routes must name the 3 pods, found {routes}")
        for needle in ("jetstream", "type: full", "include \"operator/operator.conf\""):
            if needle not in conf:
                problem("k8s ritma-nats-config", f"missing `{needle}`")

    # Services select existing pods.
    pod_labels = [d["spec"]["template"]["metadata"]["labels"]
                  for k in ("Deployment", "StatefulSet") for d in by_kind.get(k, {}).values()]
    for name, svc in by_kind.get("Service", {}).items():
        sel = svc["spec"].get("selector", {})
        if not any(sel.items() <= labels.items() for labels in pod_labels):
            problem(f"k8s Service/{name}", f"selector {sel} matches no workload")


# --- Compose --------------------------------------------------------------

def check_compose() -> None:
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    services = compose["services"]
    secrets = compose.get("secrets", {})
    volumes = compose.get("volumes", {})
    for name, svc in services.items():
        where = f"compose service {name}"
        for dep in (svc.get("depends_on") or {}):
            if dep not in services:
                problem(where, f"depends on unknown service {dep}")
        for s in svc.get("secrets", []):
            s = s if isinstance(s, str) else s["source"]
            if s not in secrets:
                problem(where, f"secret {s} is not declared")
        for v in svc.get("volumes", []):
            src = v.split(":", 1)[0] if isinstance(v, str) else v.get("source", "")
            if src.startswith((".", "/")):
                if not (DEPLOY / "compose" / src).resolve().exists():
                    problem(where, f"bind mount source {src} does not exist")
            elif src and src not in volumes:
                problem(where, f"volume {src} is not declared")
        build = svc.get("build")
        if build:
            dockerfile = (DEPLOY / "compose" / build["context"] / build["dockerfile"]).resolve()
            if not dockerfile.is_file():
                problem(where, f"Dockerfile {build['dockerfile']} not found")
            elif build.get("target") and not re.search(
                    rf"^FROM .* AS {re.escape(build['target'])}$", dockerfile.read_text(), re.M):
                problem(where, f"target {build['target']} not in {build['dockerfile']}")
        for port in svc.get("ports", []):
            if str(port).split(":")[-1] in ("8080", "3000", "8222", "9090", "9464") and not str(port).startswith("127.0.0.1:"):
                problem(where, f"port {port} must be published on loopback only")


# --- systemd --------------------------------------------------------------

REQUIRED_UNIT_SETTINGS = [
    r"^User=ritma-\w+$", r"^StateDirectory=ritma-\w+$", r"^NoNewPrivileges=yes$",
    r"^ProtectSystem=strict$", r"^ProtectHome=yes$", r"^PrivateTmp=yes$",
    r"^RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX$", r"^CapabilityBoundingSet=$",
    r"^Restart=on-failure$", r"^StartLimitBurst=\d+$", r"^StartLimitIntervalSec=\d+$",
    r"^EnvironmentFile=/etc/ritma/[a-z]+\.env$",
]


def check_units() -> None:
    for name in ("ritma-node", "ritma-controller", "ritma-console"):
        path = DEPLOY / "systemd" / f"{name}.service"
        text = path.read_text()
        for pattern in REQUIRED_UNIT_SETTINGS:
            if not re.search(pattern, text, re.M):
                problem(f"systemd/{name}.service", f"missing {pattern.strip('^$')}")
        if f"User={name}\n" not in text:
            problem(f"systemd/{name}.service", f"must run as User={name}")
        env = re.search(r"^EnvironmentFile=/etc/ritma/([a-z]+)\.env$", text, re.M)
        if env and not (DEPLOY / "env" / f"{env.group(1)}.env.example").is_file():
            problem(f"systemd/{name}.service", f"no env/{env.group(1)}.env.example")


def check_bus_key_files() -> None:
    """The five key files the bus crate loads must reach the controller
    everywhere: systemd credentials and the Kubernetes Secret."""
    keys_rs = DEPLOY.parent / "crates" / "bus" / "src" / "keys.rs"
    if not keys_rs.is_file():
        return
    m = re.search(r"const FILES: \[&str; \d+\] = \[(.*?)\];", keys_rs.read_text(), re.S)
    if not m:
        problem("crates/bus/src/keys.rs", "FILES list not found")
        return
    files = re.findall(r'"([^"]+)"', m.group(1))
    unit = (DEPLOY / "systemd" / "ritma-controller.service").read_text()
    for f in files:
        if f"LoadCredential={f}:/etc/ritma/nats-keys/{f}\n" not in unit:
            problem("systemd/ritma-controller.service", f"no LoadCredential= for {f}")
    for _, doc in load_k8s():
        if doc["kind"] == "Secret" and doc["metadata"]["name"] == "ritma-nats-keys":
            missing = set(files) - set(doc.get("stringData", {}))
            if missing:
                problem("k8s/secrets.example.yaml", f"ritma-nats-keys lacks {sorted(missing)}")


def main() -> int:
    check_bus_key_files()
    check_kubernetes()
    check_compose()
    check_units()
    for p in problems:
        print(p)
    print(f"check_deploy: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
