"""Launchers: one interface, three ways to run ``tessera infer`` for a claimed job.

* ``LocalLauncher`` runs ``python -m tessera infer ... --runner=DirectRunner`` in child
  processes, at most ``max_workers`` at a time. Submissions wait in an unbounded queue, so
  nothing is lost while every worker is busy.
* ``DataflowLauncher`` runs the same command with Beam's Dataflow options (the child
  process submits with Beam's own DataflowRunner and waits for the job). Not runnable on a
  machine without GCP credentials; tests check the exact argv.
* ``KubernetesLauncher`` creates a ``batch/v1`` Job through ``BatchV1Api``. No cluster
  can run here: tests check the manifest and the API call against an injected stub.

A launcher reports every state change through ``record(job_id, **changes)``, which the
service binds to the ledger and the metrics.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import fsspec

from services.trigger.ledger import Job, now
from transforms.core.errors import ConfigError
from transforms.core.rasterio_io import scene_id_for

log = logging.getLogger(__name__)

Record = Callable[..., Job]
RunCommand = Callable[[list[str], float | None], tuple[int, str]]
STDERR_TAIL = 4000


def output_item_url(output: str, product: str, url: str) -> str:
    """Where ``tessera infer`` writes the STAC Item (docs/contracts.md)."""
    scene = scene_id_for(url)
    return f"{output.rstrip('/')}/{product}/{scene}/{scene}.json"


def infer_argv(job: Job, output: str, executable: Sequence[str] | None = None) -> list[str]:
    prefix = list(executable) if executable else [sys.executable, "-m", "tessera"]
    return [*prefix, "infer", "--scenes", job.url, "--output", output, "--product", job.product]


def run_subprocess(argv: list[str], timeout_s: float | None) -> tuple[int, str]:
    """Run to completion; the exit code and the tail of stderr (stdout is discarded)."""
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"")[-STDERR_TAIL:].decode(errors="replace")
        return -1, f"timed out after {timeout_s} s\n{tail}"
    except OSError as exc:
        return -1, f"could not start {argv[0]}: {exc}"
    return done.returncode, done.stderr[-STDERR_TAIL:].decode(errors="replace")


class Launcher:
    name = "base"

    def bind(self, record: Record) -> None:
        self._record = record

    def record(self, job_id: str, **changes: Any) -> Job:
        return self._record(job_id, **changes)

    def submit(self, job: Job) -> None:
        """Hand a claimed (``queued``) job over; must return quickly."""
        raise NotImplementedError

    def resumable(self, job: Job) -> bool:
        """Whether a job left ``queued``/``running`` by a previous process is ours to redo."""
        return False

    def close(self, timeout_s: float | None = 10.0) -> None:
        pass


class SubprocessLauncher(Launcher):
    """A queue and ``max_workers`` threads, each running one child process at a time."""

    def __init__(self, output: str, *, max_workers: int = 2, timeout_s: float | None = None,
                 run: RunCommand = run_subprocess, check_output: bool = True) -> None:
        if max_workers < 1:
            raise ConfigError(f"max_workers must be >= 1, got {max_workers}")
        self.output = output
        self.max_workers = max_workers
        self.timeout_s = timeout_s
        self.check_output = check_output
        self._run = run
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()

    def command(self, job: Job) -> list[str]:
        raise NotImplementedError

    def submit(self, job: Job) -> None:
        with self._start_lock:
            if not self._threads:
                self._threads = [threading.Thread(target=self._work, name=f"{self.name}-launcher-{i}",
                                                  daemon=True) for i in range(self.max_workers)]
                for thread in self._threads:
                    thread.start()
        self._queue.put(job)

    def resumable(self, job: Job) -> bool:
        # Only jobs whose claiming process died on this host: a live process sharing the
        # ledger (a watcher beside the server) still owns its queue. Reruns are safe
        # because `tessera infer` writes idempotently.
        return job.owner_gone()

    def pending(self) -> int:
        return self._queue.unfinished_tasks

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return self._queue.unfinished_tasks == 0

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                self._run_one(job)
            except Exception:  # a bug here must not kill the worker (and lose the queue)
                log.exception("launcher worker failed on job %s", getattr(job, "id", "?"))
            finally:
                self._queue.task_done()

    def _run_one(self, job: Job) -> None:
        argv = self.command(job)
        self.record(job.id, state="running", started=now(), launcher=self.name)
        log.info("job %s: %s", job.id, " ".join(argv))
        code, stderr = self._run(argv, self.timeout_s)
        item = output_item_url(self.output, job.product, job.url)
        if code != 0:
            self.record(job.id, state="failed", finished=now(),
                        error=f"exit code {code}; stderr tail:\n{stderr.strip()}")
        elif self.check_output and not _exists(item):
            self.record(job.id, state="failed", finished=now(),
                        error=f"exit code 0 but no STAC Item at {item}; stderr tail:\n{stderr.strip()}")
        else:
            self.record(job.id, state="succeeded", finished=now(), output=item, error=None)

    def close(self, timeout_s: float | None = 10.0) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads = []


def _exists(url: str) -> bool:
    try:
        fs, path = fsspec.core.url_to_fs(url)
        return bool(fs.exists(path))
    except OSError:
        return False


class LocalLauncher(SubprocessLauncher):
    """``tessera infer`` on the DirectRunner, in child processes on this machine."""

    name = "local"

    def __init__(self, output: str, *, max_workers: int = 2, beam_args: Sequence[str] = (),
                 command: Callable[[Job], list[str]] | None = None, **kw: Any) -> None:
        super().__init__(output, max_workers=max_workers, **kw)
        self.beam_args = list(beam_args)
        self._command = command

    def command(self, job: Job) -> list[str]:
        if self._command is not None:
            return self._command(job)
        return [*infer_argv(job, self.output), "--runner=DirectRunner", *self.beam_args]


@dataclass(frozen=True)
class DataflowOptions:
    project: str
    region: str
    temp_location: str
    staging_location: str | None = None
    sdk_container_image: str | None = None
    service_account_email: str | None = None
    subnetwork: str | None = None
    no_use_public_ips: bool = True
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        missing = [n for n in ("project", "region", "temp_location") if not getattr(self, n)]
        if missing:
            raise ConfigError(f"the dataflow launcher needs {', '.join(missing)} "
                              "(TESSERA_DATAFLOW_PROJECT, ..._REGION, ..._TEMP_LOCATION)")
        for name in ("temp_location", "staging_location"):
            value = getattr(self, name)
            if value and not value.startswith("gs://"):
                raise ConfigError(f"dataflow {name} must be a gs:// URL, got {value!r}")


class DataflowLauncher(SubprocessLauncher):
    """``tessera infer`` submitted with Beam's DataflowRunner (the child waits for the job)."""

    name = "dataflow"

    def __init__(self, output: str, options: DataflowOptions, **kw: Any) -> None:
        kw.setdefault("check_output", False)  # the Item lands in GCS; the job's own exit code rules
        super().__init__(output, **kw)
        self.options = options

    @staticmethod
    def job_name(job: Job) -> str:
        return f"tessera-{job.id}"  # [-a-z0-9], unique per (URL#generation, product)

    def beam_args(self, job: Job) -> list[str]:
        o = self.options
        args = ["--runner=DataflowRunner", f"--project={o.project}", f"--region={o.region}",
                f"--temp_location={o.temp_location}",
                f"--staging_location={o.staging_location or o.temp_location.rstrip('/') + '/staging'}",
                f"--job_name={self.job_name(job)}", f"--labels=tessera-job={job.id}"]
        if o.sdk_container_image:
            args.append(f"--sdk_container_image={o.sdk_container_image}")
        if o.service_account_email:
            args.append(f"--service_account_email={o.service_account_email}")
        if o.no_use_public_ips:
            args.append("--no_use_public_ips")
        if o.subnetwork:
            args.append(f"--subnetwork={o.subnetwork}")
        return [*args, *o.extra_args]

    def command(self, job: Job) -> list[str]:
        return [*infer_argv(job, self.output), *self.beam_args(job)]

    def _run_one(self, job: Job) -> None:
        self.record(job.id, external_id=self.job_name(job))
        super()._run_one(job)


@dataclass(frozen=True)
class KubernetesOptions:
    image: str
    namespace: str = "tessera"
    service_account: str = "tessera-infer"
    cpu: str = "2"
    memory: str = "4Gi"
    gpus: int = 0
    node_selector: Mapping[str, str] = field(default_factory=dict)
    backoff_limit: int = 2
    ttl_seconds_after_finished: int = 86400
    active_deadline_seconds: int | None = None
    beam_args: tuple[str, ...] = ("--runner=DirectRunner",)
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.image:
            raise ConfigError("the kubernetes launcher needs an image (TESSERA_K8S_IMAGE)")


class KubernetesLauncher(Launcher):
    """One ``batch/v1`` Job per claimed job, named after the job id.

    The name makes the create idempotent: a resubmission gets 409 AlreadyExists, which
    counts as submitted. Completion is the cluster's business (``ttlSecondsAfterFinished``
    cleans up); this records ``running`` with the Job name. Needs a cluster: the tests
    inject a stub ``BatchV1Api``; none can run here.
    """

    name = "kubernetes"
    LABEL_PREFIX = "tessera.dev"

    def __init__(self, output: str, options: KubernetesOptions, api: Any = None) -> None:
        self.output = output
        self.options = options
        self._api = api

    def api(self) -> Any:
        if self._api is None:  # connect on first use, never at import or construction
            from kubernetes import client, config

            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            self._api = client.BatchV1Api()
        return self._api

    @staticmethod
    def job_name(job: Job) -> str:
        return f"tessera-{job.id}"

    def build_job(self, job: Job) -> Any:
        from kubernetes import client

        o = self.options
        key_hash = hashlib.sha256(job.key.encode()).hexdigest()[:40]
        labels = {
            "app.kubernetes.io/name": "tessera",
            "app.kubernetes.io/component": "infer",
            "app.kubernetes.io/managed-by": "tessera-trigger",
            f"{self.LABEL_PREFIX}/job-id": job.id,
            f"{self.LABEL_PREFIX}/key-hash": key_hash,
            f"{self.LABEL_PREFIX}/product": job.product,
        }
        resources = {"cpu": o.cpu, "memory": o.memory}
        limits = dict(resources)
        if o.gpus:
            limits["nvidia.com/gpu"] = str(o.gpus)
        env = [client.V1EnvVar(name="HOME", value="/tmp")]
        env += [client.V1EnvVar(name=k, value=v) for k, v in sorted(o.env.items())]
        container = client.V1Container(
            name="infer",
            image=o.image,
            command=["tessera"],
            args=[*infer_argv(job, self.output, executable=["tessera"])[1:], *o.beam_args],
            env=env,
            resources=client.V1ResourceRequirements(requests=resources, limits=limits),
            security_context=client.V1SecurityContext(
                allow_privilege_escalation=False,
                read_only_root_filesystem=True,
                run_as_non_root=True,
                capabilities=client.V1Capabilities(drop=["ALL"]),
                seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
            ),
            volume_mounts=[client.V1VolumeMount(name="tmp", mount_path="/tmp")],
        )
        pod = client.V1PodSpec(
            restart_policy="Never",
            service_account_name=o.service_account,
            automount_service_account_token=False,
            node_selector=dict(o.node_selector) or None,
            containers=[container],
            volumes=[client.V1Volume(name="tmp", empty_dir=client.V1EmptyDirVolumeSource())],
            security_context=client.V1PodSecurityContext(
                run_as_non_root=True, run_as_user=10001, run_as_group=10001, fs_group=10001,
                seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
            ),
        )
        return client.V1Job(
            api_version="batch/v1",
            kind="Job",
            metadata=client.V1ObjectMeta(
                name=self.job_name(job), namespace=o.namespace, labels=labels,
                annotations={f"{self.LABEL_PREFIX}/key": job.key, f"{self.LABEL_PREFIX}/source": job.url},
            ),
            spec=client.V1JobSpec(
                backoff_limit=o.backoff_limit,
                ttl_seconds_after_finished=o.ttl_seconds_after_finished,
                active_deadline_seconds=o.active_deadline_seconds,
                template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=labels), spec=pod),
            ),
        )

    def submit(self, job: Job) -> None:
        from kubernetes.client.exceptions import ApiException

        body = self.build_job(job)
        name = body.metadata.name
        try:
            self.api().create_namespaced_job(namespace=self.options.namespace, body=body)
        except ApiException as exc:
            if exc.status != 409:  # 409: created by an earlier attempt -> already submitted
                self.record(job.id, state="failed", finished=now(), launcher=self.name,
                            error=f"Kubernetes API refused Job {name}: {exc.status} {exc.reason}")
                return
        except Exception as exc:  # no cluster config, network: keep the claim, say why
            self.record(job.id, state="failed", finished=now(), launcher=self.name,
                        error=f"could not create Job {name}: {exc}")
            return
        self.record(job.id, state="running", started=now(), launcher=self.name, external_id=name,
                    output=output_item_url(self.output, job.product, job.url))

    def resumable(self, job: Job) -> bool:
        return job.state == "queued"  # the create is idempotent by name
