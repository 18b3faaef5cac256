"""House rules for the rendered tessera chart that generic scanners do not express.

Checked on every pod the chart can start (Deployments, the Job template the trigger
submits, helm test pods, the KServe predictor):
- restricted security: runAsNonRoot, uid >= 10000, seccomp RuntimeDefault, no privilege
  escalation, read-only root filesystem with an emptyDir at /tmp, all capabilities dropped;
- a service-account token only for the trigger (it creates Jobs);
- CPU and memory requests and limits on every container; pinned images, never `latest`;
- liveness and readiness probes on long-running pods, on the real health endpoints;
- a PodDisruptionBudget and a NetworkPolicy (beyond default deny) for each workload;
- Workload Identity annotations on every ServiceAccount;
- the predictor: GPU limit, accelerator node selector, GPU toleration, V2 protocol,
  minReplicas >= 1.
And on values.schema.json: every object level rejects unknown keys.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterator

import yaml

FREE_FORM_MAPS = {"ingress.annotations"}  # keys are annotation names, values strings


class Report:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.checks = 0

    def check(self, ok: bool, where: str, message: str) -> None:
        self.checks += 1
        if not ok:
            self.failures.append(f"{where}: {message}")


def load(paths: list[Path]) -> list[dict[str, Any]]:
    docs = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            docs.append(doc)
            if doc["kind"] == "ConfigMap":
                for key, text in (doc.get("data") or {}).items():
                    if key.endswith((".yaml", ".yml")) and "job" in key:
                        docs.append(yaml.safe_load(text))
    return docs


def name_of(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata", {})
    return f"{doc['kind']}/{meta.get('name') or meta.get('generateName')}"


def pods(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any], dict[str, str], bool]]:
    """(where, pod spec, pod labels, long_running) for every pod the chart can create."""
    for doc in docs:
        kind, where = doc["kind"], name_of(doc)
        if kind in ("Deployment", "Job"):
            template = doc["spec"]["template"]
            yield where, template["spec"], template["metadata"].get("labels", {}), kind == "Deployment"
        elif kind == "Pod":
            yield where, doc["spec"], doc["metadata"].get("labels", {}), False
        elif kind == "InferenceService":
            predictor = doc["spec"]["predictor"]
            labels = {"serving.kserve.io/inferenceservice": doc["metadata"]["name"], **predictor.get("labels", {})}
            yield where, predictor, labels, True


def check_pod(report: Report, where: str, spec: dict[str, Any], labels: dict[str, str], long_running: bool) -> None:
    psc = spec.get("securityContext", {})
    report.check(psc.get("runAsNonRoot") is True, where, "pod securityContext.runAsNonRoot must be true")
    report.check(psc.get("runAsUser", 0) >= 10000, where, "pod runAsUser must be >= 10000")
    report.check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where, "pod seccomp must be RuntimeDefault")
    component = labels.get("app.kubernetes.io/component")
    wants_token = component == "trigger"
    report.check("automountServiceAccountToken" in spec, where, "automountServiceAccountToken must be explicit")
    if not wants_token:
        report.check(spec.get("automountServiceAccountToken") is False, where, "only the trigger may mount a token")
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for container in spec.get("initContainers", []) + spec["containers"]:
        cwhere = f"{where} container {container['name']}"
        sc = container.get("securityContext", {})
        report.check(sc.get("allowPrivilegeEscalation") is False, cwhere, "allowPrivilegeEscalation must be false")
        report.check(sc.get("readOnlyRootFilesystem") is True, cwhere, "readOnlyRootFilesystem must be true")
        report.check("ALL" in sc.get("capabilities", {}).get("drop", []), cwhere, "capabilities must drop ALL")
        report.check(sc.get("privileged") in (None, False), cwhere, "must not be privileged")
        tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        report.check(bool(tmp) and "emptyDir" in volumes.get(tmp[0]["name"], {}), cwhere,
                     "/tmp must be an emptyDir (GDAL/TF scratch on a read-only root)")
        resources = container.get("resources", {})
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                report.check(resource in resources.get(section, {}), cwhere, f"resources.{section}.{resource} missing")
        image = container["image"]
        pinned = "@sha256:" in image or (":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"))
        report.check(pinned, cwhere, f"image {image} must be pinned by tag or digest, never latest")
        report.check(container.get("imagePullPolicy") == "IfNotPresent", cwhere, "imagePullPolicy must be IfNotPresent")
        if long_running:
            for probe in ("livenessProbe", "readinessProbe"):
                report.check(probe in container, cwhere, f"{probe} missing")


def check_predictor(report: Report, docs: list[dict[str, Any]]) -> None:
    for doc in (d for d in docs if d["kind"] == "InferenceService"):
        where, predictor = name_of(doc), doc["spec"]["predictor"]
        container = next(c for c in predictor["containers"] if c["name"] == "kserve-container")
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        report.check(predictor.get("minReplicas", 0) >= 1, where, "minReplicas must be >= 1 (GPU scale-from-zero times out)")
        report.check(env.get("PROTOCOL") == "v2", where, "custom predictor must declare PROTOCOL=v2")
        report.check(str(env.get("STORAGE_URI", "")).startswith("gs://"), where, "STORAGE_URI must be a gs:// URL")
        report.check("/mnt/models" in container.get("args", []), where, "the model must load from /mnt/models")
        report.check("nvidia.com/gpu" in container["resources"].get("limits", {}), where, "nvidia.com/gpu limit missing")
        report.check("cloud.google.com/gke-accelerator" in predictor.get("nodeSelector", {}), where, "accelerator nodeSelector missing")
        report.check(any(t.get("key") == "nvidia.com/gpu" for t in predictor.get("tolerations", [])), where, "GPU toleration missing")
        paths = {p: container.get(p, {}).get("httpGet", {}).get("path") for p in ("livenessProbe", "readinessProbe")}
        report.check(paths == {"livenessProbe": "/v2/health/live", "readinessProbe": "/v2/health/ready"}, where,
                     f"predictor probes must use the V2 health endpoints, got {paths}")


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    wanted = selector.get("matchLabels", {})
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def check_coverage(report: Report, docs: list[dict[str, Any]]) -> None:
    pdbs = [d["spec"]["selector"] for d in docs if d["kind"] == "PodDisruptionBudget"]
    policies = [d["spec"]["podSelector"] for d in docs if d["kind"] == "NetworkPolicy"]
    report.check(any(p == {} for p in policies), "NetworkPolicy", "a default-deny policy (podSelector: {}) is required")
    for where, _spec, labels, long_running in pods(docs):
        report.check(any(selects(p, labels) for p in policies), where, "no NetworkPolicy selects these pods")
        if long_running:
            report.check(any(selects(p, labels) for p in pdbs), where, "no PodDisruptionBudget selects these pods")
    for doc in docs:
        if doc["kind"] == "ServiceAccount":
            annotations = doc["metadata"].get("annotations", {})
            report.check(annotations.get("iam.gke.io/gcp-service-account", "").endswith(".iam.gserviceaccount.com"),
                         name_of(doc), "Workload Identity annotation iam.gke.io/gcp-service-account missing")
        if doc["kind"] == "Deployment":
            report.check(any(d["kind"] == "HorizontalPodAutoscaler" and d["spec"]["scaleTargetRef"]["name"] == doc["metadata"]["name"]
                             for d in docs), name_of(doc), "no HorizontalPodAutoscaler")


def check_schema_strict(report: Report, node: Any, path: str = "") -> None:
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            extra = node.get("additionalProperties")
            if path.lstrip(".") in FREE_FORM_MAPS:
                report.check(isinstance(extra, dict) and extra.get("type") == "string", path, "free-form map must type its values")
            else:
                report.check(extra is False, path or "<root>", "object must set additionalProperties: false")
        for key, value in node.get("properties", {}).items():
            check_schema_strict(report, value, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            check_schema_strict(report, node["items"], f"{path}[]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--schema", type=Path, required=True, help="values.schema.json")
    args = parser.parse_args(argv)

    report = Report()
    check_schema_strict(report, json.loads(args.schema.read_text()))
    for path in args.files:
        docs = load([path])
        for where, spec, labels, long_running in pods(docs):
            check_pod(report, f"{path.name}:{where}", spec, labels, long_running)
        check_predictor(report, docs)
        check_coverage(report, docs)
    for failure in report.failures:
        print(f"FAIL {failure}")
    print(f"check_chart_policy: {report.checks} checks, {len(report.failures)} failed")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
