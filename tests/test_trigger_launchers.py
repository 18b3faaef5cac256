"""Launchers: real child processes (local), exact argv (Dataflow), Job manifest (Kubernetes).

No Dataflow project or Kubernetes cluster is reachable here: the Dataflow test stops at
the argv it would run, the Kubernetes tests inject a stub ``BatchV1Api``.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from services.trigger.launchers import (
    DataflowLauncher,
    DataflowOptions,
    KubernetesLauncher,
    KubernetesOptions,
    LocalLauncher,
    output_item_url,
)
from services.trigger.ledger import Job, SqliteLedger
from transforms.core.errors import ConfigError

# A stand-in for `tessera infer`: logs its start/end, writes the STAC Item, or fails.
FAKE_INFER = r"""
import json, os, sys, time
item, log, mode = sys.argv[1:4]
with open(log, "a") as f: f.write(f"start {time.monotonic()}\n")
time.sleep(0.3)
with open(log, "a") as f: f.write(f"end {time.monotonic()}\n")
if mode == "fail":
    sys.stderr.write("Traceback ...\nInvalidSceneError: scene.tif: boom\n"); sys.exit(3)
if mode == "ok":
    os.makedirs(os.path.dirname(item), exist_ok=True)
    json.dump({"type": "Feature"}, open(item, "w"))
"""


def _bound(launcher: Any, ledger: SqliteLedger) -> Any:
    launcher.bind(lambda job_id, **changes: ledger.update(job_id, **changes))
    return launcher


def _job(ledger: SqliteLedger, name: str, product: str = "landcover") -> Job:
    job = Job.new(f"file:///in/{name}#1", f"file:///in/{name}", product)
    assert ledger.claim(job)
    return job


def test_local_launcher_bounded_and_nothing_lost(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.db")
    out, log = tmp_path / "out", tmp_path / "runs.log"

    def command(job: Job) -> list[str]:
        mode = "fail" if "bad" in job.url else "silent" if "silent" in job.url else "ok"
        return [sys.executable, "-c", FAKE_INFER, output_item_url(str(out), job.product, job.url), str(log), mode]

    launcher = _bound(LocalLauncher(str(out), max_workers=2, command=command), ledger)
    names = [f"s{i}.tif" for i in range(5)] + ["bad.tif", "silent.tif"]
    jobs = [_job(ledger, n) for n in names]
    for job in jobs:  # all submitted at once: 7 jobs, 2 workers
        launcher.submit(job)
    assert launcher.wait_idle(60)
    launcher.close()
    states = {ledger.get(j.id).url.rsplit("/", 1)[1]: ledger.get(j.id) for j in jobs}
    for n in names[:5]:
        done = states[n]
        assert done.state == "succeeded" and done.started and done.finished and done.launcher == "local"
        assert done.output == f"{out}/landcover/{n[:-4]}/{n[:-4]}.json" and Path(done.output).exists()
    assert states["bad.tif"].state == "failed"
    assert "exit code 3" in states["bad.tif"].error and "boom" in states["bad.tif"].error
    assert states["silent.tif"].state == "failed" and "no STAC Item" in states["silent.tif"].error
    # never more than two at once: replay the start/end log
    running = peak = 0
    events = sorted((float(t), kind) for kind, t in (line.split() for line in log.read_text().splitlines()))
    for _, kind in events:
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert peak == 2 and len(events) == 2 * len(names)


def test_local_launcher_default_command(tmp_path: Path) -> None:
    job = Job.new("file:///in/A B.tif#1", "file:///in/A B.tif", "landsat-rgb")
    argv = LocalLauncher(str(tmp_path), beam_args=["--direct_num_workers=1"]).command(job)
    assert argv == [sys.executable, "-m", "tessera", "infer", "--scenes", "file:///in/A B.tif",
                    "--output", str(tmp_path), "--product", "landsat-rgb", "--runner=DirectRunner",
                    "--direct_num_workers=1"]


def test_local_launcher_timeout_and_missing_binary(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.db")
    slow = _bound(LocalLauncher(str(tmp_path), timeout_s=0.2,
                                command=lambda j: [sys.executable, "-c", "import time; time.sleep(5)"]), ledger)
    job = _job(ledger, "slow.tif")
    slow.submit(job)
    missing = _bound(LocalLauncher(str(tmp_path), command=lambda j: ["/nonexistent/tessera"]), ledger)
    other = _job(ledger, "other.tif")
    missing.submit(other)
    assert slow.wait_idle(10) and missing.wait_idle(10)
    assert "timed out" in ledger.get(job.id).error
    assert "could not start" in ledger.get(other.id).error


def test_dataflow_argv_is_exact(tmp_path: Path) -> None:
    options = DataflowOptions(
        project="eo-prod", region="europe-west1", temp_location="gs://eo-tmp/beam",
        sdk_container_image="europe-docker.pkg.dev/eo-prod/tessera/worker:1.2.3",
        service_account_email="tessera-worker@eo-prod.iam.gserviceaccount.com",
        subnetwork="regions/europe-west1/subnetworks/dataflow",
        extra_args=("--max_num_workers=50", "--experiments=use_runner_v2"),
    )
    ran: list[list[str]] = []
    ledger = SqliteLedger(tmp_path / "l.db")
    launcher = _bound(DataflowLauncher("gs://eo-out/maps", options,
                                       run=lambda argv, timeout: (ran.append(argv), (0, ""))[1]), ledger)
    job = Job.new("gs://landing/spot/x.tif#1712", "gs://landing/spot/x.tif", "landcover")
    assert ledger.claim(job)
    assert launcher.command(job) == [
        sys.executable, "-m", "tessera", "infer", "--scenes", "gs://landing/spot/x.tif",
        "--output", "gs://eo-out/maps", "--product", "landcover",
        "--runner=DataflowRunner", "--project=eo-prod", "--region=europe-west1",
        "--temp_location=gs://eo-tmp/beam", "--staging_location=gs://eo-tmp/beam/staging",
        f"--job_name=tessera-{job.id}", f"--labels=tessera-job={job.id}",
        "--sdk_container_image=europe-docker.pkg.dev/eo-prod/tessera/worker:1.2.3",
        "--service_account_email=tessera-worker@eo-prod.iam.gserviceaccount.com",
        "--no_use_public_ips", "--subnetwork=regions/europe-west1/subnetworks/dataflow",
        "--max_num_workers=50", "--experiments=use_runner_v2",
    ]
    launcher.submit(job)
    assert launcher.wait_idle(10)
    assert ran == [launcher.command(job)]
    done = ledger.get(job.id)
    assert (done.state, done.external_id, done.launcher) == ("succeeded", f"tessera-{job.id}", "dataflow")
    assert done.output == "gs://eo-out/maps/landcover/x/x.json"


def test_dataflow_options_validated() -> None:
    with pytest.raises(ConfigError, match="project"):
        DataflowOptions(project="", region="r", temp_location="gs://t")
    with pytest.raises(ConfigError, match="gs://"):
        DataflowOptions(project="p", region="r", temp_location="/tmp/t")


class StubBatchApi:
    """Stands in for kubernetes.client.BatchV1Api at the boundary."""

    def __init__(self, fail_with: int | None = None) -> None:
        self.created: list[tuple[str, k8s.V1Job]] = []
        self.fail_with = fail_with
        self.lock = threading.Lock()

    def create_namespaced_job(self, namespace: str, body: k8s.V1Job) -> k8s.V1Job:
        with self.lock:
            if self.fail_with:
                raise ApiException(status=self.fail_with, reason="Conflict" if self.fail_with == 409 else "Forbidden")
            self.created.append((namespace, body))
        return body


K8S = KubernetesOptions(image="europe-docker.pkg.dev/p/tessera/infer:1.0", namespace="eo",
                        service_account="tessera-infer", cpu="4", memory="8Gi", gpus=1,
                        node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"},
                        backoff_limit=1, ttl_seconds_after_finished=600,
                        beam_args=("--runner=DirectRunner", "--direct_num_workers=4"))


def test_kubernetes_job_manifest(tmp_path: Path) -> None:
    job = Job.new("gs://landing/a.tif#42", "gs://landing/a.tif", "landcover")
    manifest = k8s.ApiClient().sanitize_for_serialization(
        KubernetesLauncher("gs://out", K8S, api=StubBatchApi()).build_job(job))
    assert manifest["apiVersion"] == "batch/v1" and manifest["kind"] == "Job"
    meta, spec = manifest["metadata"], manifest["spec"]
    assert meta["name"] == f"tessera-{job.id}" and meta["namespace"] == "eo"
    assert meta["labels"]["tessera.dev/key-hash"] == __import__("hashlib").sha256(job.key.encode()).hexdigest()[:40]
    assert meta["labels"]["tessera.dev/job-id"] == job.id and meta["annotations"]["tessera.dev/key"] == job.key
    assert all(len(v) <= 63 for v in meta["labels"].values())
    assert spec["backoffLimit"] == 1 and spec["ttlSecondsAfterFinished"] == 600
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "tessera-infer"
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["image"] == K8S.image
    assert [container["command"][0], *container["args"]] == [
        "tessera", "infer", "--scenes", "gs://landing/a.tif", "--output", "gs://out", "--product", "landcover",
        "--runner=DirectRunner", "--direct_num_workers=4"]
    assert container["resources"] == {"requests": {"cpu": "4", "memory": "8Gi"},
                                      "limits": {"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "1"}}
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True and sc["runAsNonRoot"] is True
    kubernetes_validate = pytest.importorskip("kubernetes_validate")  # offline batch/v1 schema
    assert kubernetes_validate.validate(manifest, "1.31", strict=True) == "1.31"


def test_kubernetes_submit_records_and_is_idempotent(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.db")
    api = StubBatchApi()
    launcher = _bound(KubernetesLauncher("gs://out", K8S, api=api), ledger)
    job = _job(ledger, "a.tif")
    launcher.submit(job)
    (namespace, body), = api.created
    assert namespace == "eo" and body.metadata.name == f"tessera-{job.id}"
    done = ledger.get(job.id)
    assert (done.state, done.external_id) == ("running", f"tessera-{job.id}")
    # a resubmission after a crash meets 409 AlreadyExists: still submitted, not failed
    again = _bound(KubernetesLauncher("gs://out", K8S, api=StubBatchApi(fail_with=409)), ledger)
    again.submit(job)
    assert ledger.get(job.id).state == "running"
    denied = _bound(KubernetesLauncher("gs://out", K8S, api=StubBatchApi(fail_with=403)), ledger)
    other = _job(ledger, "b.tif")
    denied.submit(other)
    assert ledger.get(other.id).state == "failed" and "403" in ledger.get(other.id).error


def test_kubernetes_options_need_image() -> None:
    with pytest.raises(ConfigError, match="image"):
        KubernetesOptions(image="")
