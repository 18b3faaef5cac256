"""Write inferenceservice-serving-v1beta1.json: a strict subset of KServe's CRD schema.

KServe's generated CRD (config/crd/full/serving.kserve.io_inferenceservices.yaml) is
over a megabyte because controller-gen inlines the whole core/v1 PodSpec into every
component. This keeps the same shape (v1beta1 PredictorSpec = framework specs +
inline PodSpec + ComponentExtensionSpec, from pkg/apis/serving/v1beta1) but points the
PodSpec and Container parts at the Kubernetes definitions kubernetes-validate already
bundles, so the vendored file stays small and the core types stay exact. Unknown keys
are rejected at every level we model; transformer/explainer are not modelled (the chart
renders neither) and are therefore rejected too.

Run with the .venv-infra python:  python tests/infra/schemas/generate_inferenceservice_schema.py
"""

from __future__ import annotations

import json
from pathlib import Path

import importlib_resources

K8S = "/api/_definitions.json#/$defs/"
POD_SPEC = "io.k8s.api.core.v1.PodSpec"
CONTAINER = "io.k8s.api.core.v1.Container"


def k8s_properties(definition: str, version_dir: str) -> list[str]:
    root = importlib_resources.files("kubernetes_validate") / "kubernetes-json-schema" / version_dir
    defs = json.loads((root / "_definitions.json").read_text())["$defs"]
    return sorted(defs[definition]["properties"])


def refs_to(definition: str, names: list[str]) -> dict:
    return {name: {"$ref": f"{K8S}{definition}/properties/{name}"} for name in names}


def strict(properties: dict, required: list[str] | None = None, **extra) -> dict:
    schema = {"type": "object", "additionalProperties": False, "properties": properties, **extra}
    if required:
        schema["required"] = required
    return schema


def build(version_dir: str = "v1.33.0-local-strict") -> dict:
    string_map = {"type": "object", "additionalProperties": {"type": "string"}}
    protocol = {"type": "string", "enum": ["v1", "v2", "grpc-v1", "grpc-v2"]}
    container_fields = refs_to(CONTAINER, k8s_properties(CONTAINER, version_dir))
    container_fields.pop("name")  # framework specs name their container kserve-container
    extension = {
        "storageUri": {"type": "string"},
        "runtimeVersion": {"type": "string"},
        "protocolVersion": protocol,
        **container_fields,
        "name": {"type": "string"},
        "storage": strict({"path": {"type": "string"}, "schemaPath": {"type": "string"},
                           "parameters": string_map, "key": {"type": "string"}}),
    }
    model = strict({
        "modelFormat": strict({"name": {"type": "string"}, "version": {"type": "string"}}, ["name"]),
        "runtime": {"type": "string"},
        **extension,
    }, ["modelFormat"])
    component_extension = {
        "minReplicas": {"type": "integer", "minimum": 0},
        "maxReplicas": {"type": "integer", "minimum": 0},
        "scaleTarget": {"type": "integer"},
        "scaleMetric": {"type": "string", "enum": ["cpu", "memory", "concurrency", "rps"]},
        "scaleMetricType": {"type": "string", "enum": ["Utilization", "Value", "AverageValue"]},
        "containerConcurrency": {"type": "integer", "minimum": 0},
        "timeout": {"type": "integer", "minimum": 0},
        "canaryTrafficPercent": {"type": "integer", "minimum": 0, "maximum": 100},
        "logger": strict({"url": {"type": "string"},
                          "mode": {"type": "string", "enum": ["all", "request", "response"]}}),
        "batcher": strict({"maxBatchSize": {"type": "integer"}, "maxLatency": {"type": "integer"},
                           "timeout": {"type": "integer"}}),
        "labels": string_map,
        "annotations": string_map,
        "deploymentStrategy": {"$ref": f"{K8S}io.k8s.api.apps.v1.DeploymentStrategy"},
    }
    frameworks = {name: strict(extension) for name in (
        "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "huggingface", "pmml",
        "lightgbm", "paddle")}
    predictor = strict({
        **frameworks,
        "model": model,
        "storageUris": {"type": "array", "minItems": 1, "items": strict(
            {"uri": {"type": "string", "minLength": 1},
             "mountPath": {"type": "string", "pattern": "^/.*", "maxLength": 255}}, ["uri"])},
        **refs_to(POD_SPEC, k8s_properties(POD_SPEC, version_dir)),
        **component_extension,
    })
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://kubernetes.io/api/inferenceservice/serving/v1beta1",
        "description": "KServe InferenceService (serving.kserve.io/v1beta1), strict subset; see generator docstring.",
        **strict({
            "apiVersion": {"type": "string", "enum": ["serving.kserve.io/v1beta1"]},
            "kind": {"type": "string", "enum": ["InferenceService"]},
            "metadata": {"$ref": f"{K8S}io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
            "spec": strict({"predictor": predictor}, ["predictor"]),
            "status": {"type": "object"},
        }, ["apiVersion", "kind", "metadata", "spec"]),
    }


if __name__ == "__main__":
    out = Path(__file__).with_name("inferenceservice-serving-v1beta1.json")
    out.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {out}")
