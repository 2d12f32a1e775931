#!/usr/bin/env python3
"""Structural check of deploy/kubernetes/keda-scaledobject.yaml.

kubernetes-validate knows Kubernetes' own kinds only, not KEDA's
ScaledObject (a custom resource). This is a STRUCTURAL CHECK OF A MINIMAL,
DOCUMENTED SUBSET of KEDA's ScaledObject (keda.sh/v1alpha1), as described in
KEDA's "ScaledObject specification" and "Prometheus scaler" pages, NOT
KEDA's full schema (its CRD's OpenAPI schema is the authority, and a cluster
with KEDA checks that on apply):

  - apiVersion keda.sh/v1alpha1, kind ScaledObject, metadata.name and
    metadata.namespace set;
  - spec holds only the fields named below (an unknown field is an error,
    as in strict validation), each of the type KEDA's spec gives it;
  - spec.scaleTargetRef.name names a Deployment defined in the other
    manifests of the directory (kind Deployment, apiVersion apps/v1 when
    given);
  - minReplicaCount <= maxReplicaCount (and idleReplicaCount, when given,
    below minReplicaCount); fallback has failureThreshold and replicas;
  - every trigger has a type and a metadata map of strings (KEDA reads
    trigger metadata as map[string]string: a bare number is refused by the
    API server); a `prometheus` trigger has serverAddress (http or https),
    query and threshold (a number written as a string), and only the
    metadata keys the Prometheus scaler documents. Other trigger types are
    reported: this check knows only the Prometheus scaler.

Usage: check_keda.py [FILE] [DIR]  (defaults: keda-scaledobject.yaml and the
directory of this file). Prints what it checked; exits 1 listing every
problem found.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

# Field -> expected type(s) of each object in the subset, from KEDA's
# ScaledObject specification.
SPEC_FIELDS = {
    "scaleTargetRef": dict,
    "pollingInterval": int,
    "cooldownPeriod": int,
    "initialCooldownPeriod": int,
    "idleReplicaCount": int,
    "minReplicaCount": int,
    "maxReplicaCount": int,
    "fallback": dict,
    "advanced": dict,
    "triggers": list,
}
TARGET_FIELDS = {"apiVersion": str, "kind": str, "name": str, "envSourceContainerName": str}
FALLBACK_FIELDS = {"failureThreshold": int, "replicas": int}
ADVANCED_FIELDS = {"restoreToOriginalReplicaCount": bool, "horizontalPodAutoscalerConfig": dict}
HPA_CONFIG_FIELDS = {"name": str, "behavior": dict}
TRIGGER_FIELDS = {
    "type": str,
    "name": str,
    "metadata": dict,
    "metricType": str,
    "useCachedMetrics": bool,
    "authenticationRef": dict,
}
METRIC_TYPES = {"AverageValue", "Value", "Utilization"}
# The Prometheus scaler's metadata (KEDA docs, scalers/prometheus).
PROMETHEUS_REQUIRED = {"serverAddress", "query", "threshold"}
PROMETHEUS_OPTIONAL = {
    "activationThreshold",
    "namespace",
    "customHeaders",
    "ignoreNullValues",
    "queryParameters",
    "unsafeSsl",
    "timeout",
    "authModes",
}


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class Check:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def fields(self, where: str, obj, allowed: dict, required: tuple = ()) -> None:
        """`obj` is a mapping holding only `allowed` fields of their types."""
        if not isinstance(obj, dict):
            self.problems.append(f"{where}: is a {type(obj).__name__}, not a mapping")
            return
        for key, value in obj.items():
            if key not in allowed:
                self.problems.append(f"{where}.{key}: unknown field (not in the checked subset of KEDA's spec)")
                continue
            want = allowed[key]
            # bool is an int in Python; an int field must not take true/false.
            if not isinstance(value, want) or (want is int and isinstance(value, bool)):
                self.problems.append(f"{where}.{key}: is a {type(value).__name__}, not a {want.__name__}")
        for key in required:
            if key not in obj:
                self.problems.append(f"{where}.{key}: required")

    def scaled_object(self, so: dict, deployments: dict[str, dict]) -> None:
        name = (so.get("metadata") or {}).get("name")
        where = f"ScaledObject/{name}"
        if so.get("apiVersion") != "keda.sh/v1alpha1":
            self.problems.append(f"{where}: apiVersion {so.get('apiVersion')!r}, not keda.sh/v1alpha1")
        if so.get("kind") != "ScaledObject":
            self.problems.append(f"{where}: kind {so.get('kind')!r}, not ScaledObject")
        for key in ("name", "namespace"):
            if not (so.get("metadata") or {}).get(key):
                self.problems.append(f"{where}: metadata.{key} missing")
        extra = set(so) - {"apiVersion", "kind", "metadata", "spec"}
        if extra:
            self.problems.append(f"{where}: unknown top-level fields {sorted(extra)}")
        spec = so.get("spec")
        self.fields(f"{where} spec", spec, SPEC_FIELDS, required=("scaleTargetRef", "triggers"))
        if not isinstance(spec, dict):
            return

        ref = spec.get("scaleTargetRef")
        self.fields(f"{where} spec.scaleTargetRef", ref, TARGET_FIELDS, required=("name",))
        if isinstance(ref, dict):
            if ref.get("kind", "Deployment") != "Deployment" or ref.get("apiVersion", "apps/v1") != "apps/v1":
                self.problems.append(f"{where}: scaleTargetRef is not an apps/v1 Deployment (the only kind checked here)")
            elif ref.get("name") not in deployments:
                self.problems.append(
                    f"{where}: scaleTargetRef.name {ref.get('name')!r} is not a Deployment of the manifests ({sorted(deployments)})"
                )
            else:
                target = deployments[ref["name"]]
                if target["metadata"].get("namespace") != so["metadata"].get("namespace"):
                    self.problems.append(f"{where}: its target is in another namespace")

        counts = {k: spec.get(k) for k in ("idleReplicaCount", "minReplicaCount", "maxReplicaCount")}
        low = counts["minReplicaCount"] if isinstance(counts["minReplicaCount"], int) else 0
        high = counts["maxReplicaCount"] if isinstance(counts["maxReplicaCount"], int) else 100
        if low < 0 or low > high:
            self.problems.append(f"{where}: minReplicaCount {low} is not within 0..maxReplicaCount {high}")
        if isinstance(counts["idleReplicaCount"], int) and counts["idleReplicaCount"] >= low:
            self.problems.append(f"{where}: idleReplicaCount must be less than minReplicaCount")
        if "fallback" in spec:
            self.fields(f"{where} spec.fallback", spec["fallback"], FALLBACK_FIELDS, required=tuple(FALLBACK_FIELDS))
        if "advanced" in spec:
            self.fields(f"{where} spec.advanced", spec["advanced"], ADVANCED_FIELDS)
            hpa = (spec["advanced"] or {}).get("horizontalPodAutoscalerConfig") if isinstance(spec["advanced"], dict) else None
            if hpa is not None:
                self.fields(f"{where} spec.advanced.horizontalPodAutoscalerConfig", hpa, HPA_CONFIG_FIELDS)

        triggers = spec.get("triggers")
        if not isinstance(triggers, list) or not triggers:
            self.problems.append(f"{where}: spec.triggers must be a non-empty list")
            return
        for i, trigger in enumerate(triggers):
            self.trigger(f"{where} spec.triggers[{i}]", trigger)

    def trigger(self, where: str, trigger) -> None:
        self.fields(where, trigger, TRIGGER_FIELDS, required=("type", "metadata"))
        if not isinstance(trigger, dict):
            return
        if "metricType" in trigger and trigger["metricType"] not in METRIC_TYPES:
            self.problems.append(f"{where}.metricType: {trigger['metricType']!r} is not one of {sorted(METRIC_TYPES)}")
        metadata = trigger.get("metadata")
        if not isinstance(metadata, dict):
            return
        for key, value in metadata.items():
            if not isinstance(value, str):
                self.problems.append(f"{where}.metadata.{key}: is a {type(value).__name__}, not a string (quote it)")
        if trigger.get("type") != "prometheus":
            self.problems.append(f"{where}.type: {trigger.get('type')!r}; this check knows only the prometheus scaler")
            return
        for key in sorted(PROMETHEUS_REQUIRED - set(metadata)):
            self.problems.append(f"{where}.metadata.{key}: required by the prometheus scaler")
        for key in sorted(set(metadata) - PROMETHEUS_REQUIRED - PROMETHEUS_OPTIONAL):
            self.problems.append(f"{where}.metadata.{key}: not a prometheus scaler parameter")
        address = metadata.get("serverAddress")
        if isinstance(address, str) and not address.startswith(("http://", "https://")):
            self.problems.append(f"{where}.metadata.serverAddress: {address!r} is not an http(s) URL")
        for key in ("query",):
            if isinstance(metadata.get(key), str) and not metadata[key].strip():
                self.problems.append(f"{where}.metadata.{key}: empty")
        for key in ("threshold", "activationThreshold"):
            value = metadata.get(key)
            if isinstance(value, str) and not is_number(value):
                self.problems.append(f"{where}.metadata.{key}: {value!r} is not a number")


def deployments_of(directory: Path, skip: Path) -> dict[str, dict]:
    """Every Deployment in the directory's other manifests, by name."""
    out = {}
    for path in sorted(directory.glob("*.yaml")):
        if path.resolve() == skip.resolve():
            continue
        with path.open() as f:
            for doc in yaml.safe_load_all(f):
                if doc and doc.get("kind") == "Deployment":
                    out[doc["metadata"]["name"]] = doc
    return out


def main() -> int:
    here = Path(__file__).resolve().parent
    file = Path(sys.argv[1]) if len(sys.argv) > 1 else here / "keda-scaledobject.yaml"
    directory = Path(sys.argv[2]) if len(sys.argv) > 2 else file.resolve().parent
    with file.open() as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    deployments = deployments_of(directory, file)
    check = Check()
    if not docs:
        check.problems.append(f"{file}: no document")
    for doc in docs:
        check.scaled_object(doc, deployments)
    for doc in docs:
        spec = doc.get("spec") or {}
        triggers = [t.get("type") for t in spec.get("triggers") or [] if isinstance(t, dict)]
        print(
            f"  {'FAIL' if check.problems else 'ok  '} {file.name}: ScaledObject/{doc.get('metadata', {}).get('name')} "
            f"-> Deployment/{(spec.get('scaleTargetRef') or {}).get('name')}, "
            f"replicas {spec.get('minReplicaCount')}..{spec.get('maxReplicaCount')}, triggers {triggers} "
            f"(structural check of a KEDA v1alpha1 subset, not KEDA's full schema)"
        )
    for problem in check.problems:
        print(f"       ERROR {problem}")
    return 1 if check.problems else 0


if __name__ == "__main__":
    sys.exit(main())
