#!/usr/bin/env python3
"""Cross-checks of the manifests in deploy/kubernetes/ that the Kubernetes
schemas cannot express: each resource is valid on its own (kubernetes-validate
checks that), but these are about how the resources and Hangar's own
configuration fit together.

  - kustomization.yaml lists every manifest but keda-scaledobject.yaml, and
    every file it lists exists;
  - every resource is in the namespace `hangar` and carries the
    app.kubernetes.io labels; every image is the pinned `hangar:0.1.0`;
  - every Deployment's selector matches its pod template's labels, and no
    two Deployments' selectors overlap; the Service, the
    PodDisruptionBudgets, the HorizontalPodAutoscaler and the ScaledObject
    target something that exists, and no Deployment is targeted by both an
    HPA and a ScaledObject;
  - every httpGet probe asks /health/live or /health/ready, and every probe
    port is a port the container declares; the API's readiness timeout
    covers HANGAR_READY_TIMEOUT_MS for PostgreSQL and for Redis;
  - the worker's terminationGracePeriodSeconds is strictly greater than
    HANGAR_DRAIN_TIMEOUT_SECS in the ConfigMap;
  - the listen addresses in the ConfigMap match the containerPorts, the
    Service and the prometheus.io/port annotations;
  - every HANGAR_* key of the ConfigMap and the Secret is a variable Hangar
    reads (.env.example lists them all; a test keeps it in step with the
    code), and a JWT secret comes with an issuer and an audience, as Hangar's
    configuration requires;
  - every pod and container meets the restricted Pod Security profile
    (non-root numeric uid, seccomp RuntimeDefault, no privilege escalation,
    ALL capabilities dropped) plus a read-only root filesystem and
    requests and limits for CPU and memory;
  - every envFrom and serviceAccountName names a ConfigMap, Secret or
    ServiceAccount defined here.

Usage: check_manifests.py [DIR]   (default: this file's directory)
Prints what it checked; exits 1 listing every problem found.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

NAMESPACE = "hangar"
IMAGE = "hangar:0.1.0"
PROBE_PATHS = {"/health/live", "/health/ready"}
KEDA_FILE = "keda-scaledobject.yaml"
KUSTOMIZATION = "kustomization.yaml"
# The repository this file is in (for .env.example), wherever DIR is.
REPO = Path(__file__).resolve().parents[2]
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
# Which listen address each Deployment's port must match.
BIND_OF = {
    "hangar-api": "HANGAR_BIND",
    "hangar-worker": "HANGAR_WORKER_METRICS_BIND",
    "hangar-scheduler": "HANGAR_SCHEDULER_METRICS_BIND",
}


def load(directory: Path) -> dict[str, list[dict]]:
    """Every YAML file of `directory`: file name -> its non-empty documents."""
    out = {}
    for path in sorted(directory.glob("*.yaml")):
        with path.open() as f:
            out[path.name] = [d for d in yaml.safe_load_all(f) if d]
    return out


def name_of(res: dict) -> str:
    return f"{res.get('kind')}/{res.get('metadata', {}).get('name')}"


def pod_spec(res: dict) -> dict | None:
    if res.get("kind") in ("Deployment", "Job"):
        return res.get("spec", {}).get("template", {}).get("spec", {})
    return None


def known_variables(repo: Path) -> set[str]:
    """The HANGAR_* names .env.example documents (`NAME=` or `# NAME=`)."""
    text = (repo / ".env.example").read_text()
    return set(re.findall(r"^(?:#\s*)?(HANGAR_[A-Z0-9_]+)=", text, re.M))


def port_of(bind: str) -> int:
    return int(bind.rsplit(":", 1)[1])


class Checker:
    def __init__(self, directory: Path):
        self.dir = directory
        self.files = load(directory)
        self.problems: list[str] = []
        self.checked: list[str] = []
        # The resources kustomization.yaml applies, and the KEDA file's.
        self.resources = [
            r
            for f, docs in self.files.items()
            if f not in (KUSTOMIZATION, KEDA_FILE)
            for r in docs
        ]
        self.scaled_objects = self.files.get(KEDA_FILE, [])
        self.by_kind: dict[str, dict[str, dict]] = {}
        for r in self.resources + self.scaled_objects:
            self.by_kind.setdefault(r.get("kind"), {})[r["metadata"]["name"]] = r

    def problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def ok(self, text: str) -> None:
        self.checked.append(text)

    # ---- the checks ------------------------------------------------------

    def kustomization(self) -> None:
        k = (self.files.get(KUSTOMIZATION) or [{}])[0]
        listed = k.get("resources") or []
        if k.get("namespace") != NAMESPACE:
            self.problem(f"{KUSTOMIZATION}: namespace is {k.get('namespace')!r}, not {NAMESPACE!r}")
        for f in listed:
            if not (self.dir / f).is_file():
                self.problem(f"{KUSTOMIZATION}: lists {f}, which does not exist")
        expected = sorted(f for f in self.files if f not in (KUSTOMIZATION, KEDA_FILE))
        missing = [f for f in expected if f not in listed]
        if missing:
            self.problem(f"{KUSTOMIZATION}: does not list {', '.join(missing)}")
        if KEDA_FILE in listed:
            self.problem(f"{KUSTOMIZATION}: lists {KEDA_FILE}; it must stay outside (KEDA's CRD may be missing)")
        self.ok(f"kustomization.yaml lists all {len(expected)} manifests, not {KEDA_FILE}")

    def metadata(self) -> None:
        for r in self.resources + self.scaled_objects:
            meta = r.get("metadata", {})
            labels = meta.get("labels") or {}
            if r.get("kind") != "Namespace" and meta.get("namespace") != NAMESPACE:
                self.problem(f"{name_of(r)}: namespace {meta.get('namespace')!r}, not {NAMESPACE!r}")
            wanted = ["app.kubernetes.io/name", "app.kubernetes.io/part-of"]
            if r.get("kind") not in ("Namespace", "ServiceAccount"):
                wanted.append("app.kubernetes.io/component")
            for label in wanted:
                if not labels.get(label):
                    self.problem(f"{name_of(r)}: no {label} label")
        self.ok("every resource: namespace hangar, app.kubernetes.io labels")

    def containers(self):
        """(resource, pod spec, container) for every container."""
        for r in self.resources:
            spec = pod_spec(r)
            if spec is None:
                continue
            for c in spec.get("containers", []) + spec.get("initContainers", []):
                yield r, spec, c

    def images_and_security(self) -> None:
        for r, spec, c in self.containers():
            where = f"{name_of(r)} container {c.get('name')}"
            if c.get("image") != IMAGE:
                self.problem(f"{where}: image {c.get('image')!r}, not {IMAGE!r}")
            psc = spec.get("securityContext") or {}
            csc = c.get("securityContext") or {}
            if not (psc.get("runAsNonRoot") or csc.get("runAsNonRoot")):
                self.problem(f"{where}: runAsNonRoot is not true")
            uid = csc.get("runAsUser", psc.get("runAsUser"))
            if not isinstance(uid, int) or uid == 0:
                self.problem(f"{where}: needs a numeric non-root runAsUser (the image's USER is a name)")
            seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
            if seccomp != "RuntimeDefault":
                self.problem(f"{where}: seccompProfile is {seccomp!r}, not RuntimeDefault")
            if csc.get("readOnlyRootFilesystem") is not True:
                self.problem(f"{where}: readOnlyRootFilesystem is not true")
            if csc.get("allowPrivilegeEscalation") is not False:
                self.problem(f"{where}: allowPrivilegeEscalation is not false")
            if (csc.get("capabilities") or {}).get("drop") != ["ALL"]:
                self.problem(f"{where}: capabilities.drop is not [ALL]")
            res = c.get("resources") or {}
            for kind in ("requests", "limits"):
                for what in ("cpu", "memory"):
                    if what not in (res.get(kind) or {}):
                        self.problem(f"{where}: no resources.{kind}.{what}")
            if spec.get("automountServiceAccountToken") is not False:
                self.problem(f"{name_of(r)}: automountServiceAccountToken is not false (Hangar never calls the Kubernetes API)")
        n = sum(1 for _ in self.containers())
        self.ok(f"{n} containers: image {IMAGE}, restricted security context, read-only root, requests and limits")

    def selectors(self) -> None:
        deployments = self.by_kind.get("Deployment", {})
        for name, d in deployments.items():
            selector = d["spec"]["selector"].get("matchLabels") or {}
            labels = d["spec"]["template"]["metadata"].get("labels") or {}
            if not selector:
                self.problem(f"Deployment/{name}: selector has no matchLabels")
            for k, v in selector.items():
                if labels.get(k) != v:
                    self.problem(f"Deployment/{name}: selector {k}={v} does not match the template's labels")
            for other, o in deployments.items():
                if other != name and self.matches(selector, o):
                    self.problem(f"Deployment/{name}: its selector also matches Deployment/{other}'s pods")
        self.ok(f"{len(deployments)} Deployments: selector matches the template labels, no overlap")

    @staticmethod
    def matches(selector: dict, workload: dict) -> bool:
        labels = workload["spec"]["template"]["metadata"].get("labels") or {}
        return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

    def targets(self) -> None:
        deployments = self.by_kind.get("Deployment", {})
        for kind in ("Service", "PodDisruptionBudget"):
            for name, r in self.by_kind.get(kind, {}).items():
                selector = r["spec"]["selector"]
                if kind == "PodDisruptionBudget":
                    selector = selector.get("matchLabels") or {}
                hits = [d for d, dep in deployments.items() if self.matches(selector, dep)]
                if len(hits) != 1:
                    self.problem(f"{kind}/{name}: selects {len(hits)} Deployments' pods ({hits}), not one")
        autoscaled: dict[str, list[str]] = {}
        for kind in ("HorizontalPodAutoscaler", "ScaledObject"):
            for name, r in self.by_kind.get(kind, {}).items():
                ref = r["spec"]["scaleTargetRef"]
                if ref.get("kind", "Deployment") != "Deployment" or ref.get("name") not in deployments:
                    self.problem(f"{kind}/{name}: scaleTargetRef {ref} is not a Deployment defined here")
                autoscaled.setdefault(ref.get("name"), []).append(f"{kind}/{name}")
        for target, by in autoscaled.items():
            if len(by) > 1:
                self.problem(f"Deployment/{target}: scaled by {' and '.join(by)}; never both on one Deployment")
        for r, spec, c in self.containers():
            for source in c.get("envFrom", []):
                for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    ref = source.get(key)
                    if ref and ref["name"] not in self.by_kind.get(kind, {}):
                        self.problem(f"{name_of(r)}: envFrom {kind} {ref['name']} is not defined here")
            sa = spec.get("serviceAccountName")
            if sa and sa not in self.by_kind.get("ServiceAccount", {}):
                self.problem(f"{name_of(r)}: serviceAccountName {sa} is not defined here")
        self.ok("Service, PDBs, HPA and ScaledObject each target one Deployment defined here; no Deployment has two autoscalers; envFrom and serviceAccountName exist")

    def probes(self) -> None:
        count = 0
        for r, spec, c in self.containers():
            ports = c.get("ports") or []
            names = {p.get("name") for p in ports}
            numbers = {p.get("containerPort") for p in ports}
            for probe in PROBES:
                p = c.get(probe)
                if not p:
                    continue
                count += 1
                where = f"{name_of(r)} {probe}"
                handler = p.get("httpGet") or p.get("tcpSocket")
                if handler is None:
                    self.problem(f"{where}: neither httpGet nor tcpSocket")
                    continue
                if "httpGet" in p and p["httpGet"].get("path") not in PROBE_PATHS:
                    self.problem(f"{where}: path {p['httpGet'].get('path')!r} is not one of {sorted(PROBE_PATHS)}")
                port = handler.get("port")
                if port not in names and port not in numbers:
                    self.problem(f"{where}: port {port!r} is not a port of the container")
            if r.get("kind") == "Deployment" and not c.get("livenessProbe"):
                self.problem(f"{name_of(r)}: no livenessProbe")
        api = self.deployment_container("hangar-api")
        cm = self.configmap()
        if api is not None:
            for probe in PROBES:
                if probe not in api:
                    self.problem(f"Deployment/hangar-api: no {probe}")
            ready = api.get("readinessProbe", {})
            if ready.get("httpGet", {}).get("path") != "/health/ready":
                self.problem("Deployment/hangar-api: readinessProbe is not /health/ready")
            live = api.get("livenessProbe")
            if live and live.get("httpGet", {}).get("path") != "/health/live":
                self.problem("Deployment/hangar-api: livenessProbe is not /health/live")
            wait_ms = int(cm.get("HANGAR_READY_TIMEOUT_MS", "1000"))
            if ready.get("timeoutSeconds", 1) * 1000 <= 2 * wait_ms:
                self.problem(
                    f"Deployment/hangar-api: readinessProbe timeoutSeconds {ready.get('timeoutSeconds', 1)} "
                    f"does not cover HANGAR_READY_TIMEOUT_MS {wait_ms} for PostgreSQL and Redis"
                )
        self.ok(f"{count} probes: httpGet paths in {sorted(PROBE_PATHS)}, ports declared; API readiness timeout > 2 x HANGAR_READY_TIMEOUT_MS")

    def deployment_container(self, name: str) -> dict | None:
        d = self.by_kind.get("Deployment", {}).get(name)
        if d is None:
            self.problem(f"Deployment/{name} is missing")
            return None
        return d["spec"]["template"]["spec"]["containers"][0]

    def configmap(self) -> dict:
        cms = self.by_kind.get("ConfigMap", {})
        if "hangar-config" not in cms:
            self.problem("ConfigMap/hangar-config is missing")
            return {}
        return cms["hangar-config"].get("data") or {}

    def drain(self) -> None:
        cm = self.configmap()
        worker = self.by_kind.get("Deployment", {}).get("hangar-worker")
        drain = cm.get("HANGAR_DRAIN_TIMEOUT_SECS")
        if worker is None or drain is None:
            self.problem("drain: needs Deployment/hangar-worker and HANGAR_DRAIN_TIMEOUT_SECS in the ConfigMap")
            self.ok("worker terminationGracePeriodSeconds > HANGAR_DRAIN_TIMEOUT_SECS")
            return
        grace = worker["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
        if not grace > int(drain):
            self.problem(
                f"Deployment/hangar-worker: terminationGracePeriodSeconds {grace} is not greater than "
                f"HANGAR_DRAIN_TIMEOUT_SECS {drain}: the kubelet would kill workers mid-drain"
            )
        self.ok(f"worker terminationGracePeriodSeconds ({grace}) > HANGAR_DRAIN_TIMEOUT_SECS ({drain})")

    def ports(self) -> None:
        cm = self.configmap()
        for name, var in BIND_OF.items():
            d = self.by_kind.get("Deployment", {}).get(name)
            if d is None:
                self.problem(f"Deployment/{name} is missing")
                continue
            if var not in cm:
                self.problem(f"ConfigMap/hangar-config: no {var} (its default does not listen on the pod's address)")
                continue
            host, port = cm[var].rsplit(":", 1)
            if host not in ("0.0.0.0", "[::]"):
                self.problem(f"ConfigMap/hangar-config: {var}={cm[var]} does not listen on every interface")
            port = int(port)
            c = d["spec"]["template"]["spec"]["containers"][0]
            if port not in {p.get("containerPort") for p in c.get("ports") or []}:
                self.problem(f"Deployment/{name}: {var} port {port} is not a containerPort")
            annotations = d["spec"]["template"]["metadata"].get("annotations") or {}
            if annotations.get("prometheus.io/scrape") != "true" or annotations.get("prometheus.io/port") != str(port):
                self.problem(f"Deployment/{name}: prometheus.io annotations do not scrape port {port}")
        service = self.by_kind.get("Service", {}).get("hangar-api")
        api = self.deployment_container("hangar-api")
        if service and api and "HANGAR_BIND" in cm:
            named = {p.get("name"): p.get("containerPort") for p in api.get("ports") or []}
            for p in service["spec"]["ports"]:
                target = p.get("targetPort", p.get("port"))
                target = named.get(target, target)
                if target != port_of(cm["HANGAR_BIND"]):
                    self.problem(f"Service/hangar-api: port {p.get('port')} reaches {target}, not HANGAR_BIND's port")
        self.ok("listen addresses: HANGAR_BIND, HANGAR_WORKER_METRICS_BIND, HANGAR_SCHEDULER_METRICS_BIND match containerPorts, the Service and prometheus.io/port")

    def variables(self) -> None:
        known = known_variables(REPO)
        count = 0
        settings: dict[str, str] = {}
        for kind, field in (("ConfigMap", "data"), ("Secret", "stringData")):
            for name, r in self.by_kind.get(kind, {}).items():
                for key, value in (r.get(field) or {}).items():
                    count += 1
                    if not isinstance(value, str):
                        self.problem(f"{kind}/{name}: {key} is a {type(value).__name__}, not a string")
                    if key.startswith("HANGAR_") and key not in known:
                        self.problem(f"{kind}/{name}: {key} is not a variable Hangar reads (.env.example)")
                    elif not key.startswith(("HANGAR_", "AWS_")):
                        self.problem(f"{kind}/{name}: {key} is neither HANGAR_* nor AWS_*")
                    settings[key] = value if isinstance(value, str) else str(value)
        secret = settings.get("HANGAR_JWT_HS256_SECRET", "").strip()
        if secret:
            if len(secret.encode()) < 32:
                self.problem("HANGAR_JWT_HS256_SECRET: shorter than 32 bytes; Hangar refuses it")
            for var in ("HANGAR_JWT_ISSUER", "HANGAR_JWT_AUDIENCE"):
                if not settings.get(var, "").strip():
                    self.problem(f"{var}: required when HANGAR_JWT_HS256_SECRET is set; every process would refuse to start")
        for var in ("HANGAR_DATABASE_URL", "HANGAR_REDIS_URL"):
            if var not in settings:
                self.problem(f"{var}: not set in the ConfigMap or the Secret")
        self.ok(f"{count} settings: every HANGAR_* key is a known variable ({len(known)} in .env.example); JWT secret with issuer and audience")

    def run(self) -> int:
        for check in (
            self.kustomization,
            self.metadata,
            self.images_and_security,
            self.selectors,
            self.targets,
            self.probes,
            self.drain,
            self.ports,
            self.variables,
        ):
            before = len(self.problems)
            check()
            status = "ok  " if len(self.problems) == before else "FAIL"
            print(f"  {status} {self.checked[-1]}")
            for line in self.problems[before:]:
                print(f"       ERROR {line}")
        return 1 if self.problems else 0


def main() -> int:
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    return Checker(directory).run()


if __name__ == "__main__":
    sys.exit(main())
