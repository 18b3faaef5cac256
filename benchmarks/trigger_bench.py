"""Trigger load benchmark: a real uvicorn server on loopback, concurrent events, exactly-once.

``measure(n_events=1000)`` writes one small real GeoTIFF per unique object, starts the
service (SQLite ledger, header admission against those files, a launcher that records
submissions and runs nothing, since Beam is not what is measured), sends ``n_events``
events from a thread pool (a ``dup_fraction`` of them repeats of other events, shuffled
so that duplicates race their originals; a ``malformed_fraction`` of them broken), and
returns latency percentiles, throughput, and what exactly-once needs to be checked.

    python -m benchmarks.trigger_bench [N]
"""

from __future__ import annotations

import base64
import json
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import requests
from rasterio.transform import from_origin

from services.trigger.admission import Admitter, crc32c_of_file
from services.trigger.app import create_app
from services.trigger.config import TriggerSettings
from services.trigger.launchers import Launcher
from services.trigger.ledger import Job, SqliteLedger, now
from tessera.ports import free_port

FINALIZED = "google.cloud.storage.object.v1.finalized"


class CountingLauncher(Launcher):
    """Records each submission and marks it succeeded; runs nothing."""

    name = "counting"

    def __init__(self) -> None:
        self.submitted: list[Job] = []
        self._lock = threading.Lock()

    def submit(self, job: Job) -> None:
        with self._lock:
            self.submitted.append(job)
        self.record(job.id, state="succeeded", started=now(), finished=now(), launcher=self.name)


def _scene(path: Path, seed: int, size: int = 16) -> None:
    data = np.random.default_rng(seed).integers(1, 4000, (4, size, size), dtype=np.uint16)
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=4, dtype="uint16",
                       crs="EPSG:32631", transform=from_origin(600000, 5400000, 1.5, 1.5)) as ds:
        ds.write(data)


def _event(kind: str, bucket: str, name: str, path: Path) -> tuple[dict[str, str], bytes]:
    data = {"bucket": bucket, "name": name, "generation": "1", "metageneration": "1",
            "size": str(path.stat().st_size), "crc32c": crc32c_of_file(path)}
    source = f"//storage.googleapis.com/projects/_/buckets/{bucket}"
    if kind == "binary":
        headers = {"ce-specversion": "1.0", "ce-id": uuid.uuid4().hex, "ce-source": source,
                   "ce-type": FINALIZED, "ce-subject": f"objects/{name}", "content-type": "application/json"}
        return headers, json.dumps(data).encode()
    if kind == "structured":
        event = {"specversion": "1.0", "id": uuid.uuid4().hex, "source": source, "type": FINALIZED,
                 "subject": f"objects/{name}", "datacontenttype": "application/json", "data": data}
        return {"content-type": "application/cloudevents+json"}, json.dumps(event).encode()
    message = {"attributes": {"eventType": "OBJECT_FINALIZE", "bucketId": bucket, "objectId": name,
                              "objectGeneration": "1", "payloadFormat": "JSON_API_V1"},
               "data": base64.b64encode(json.dumps(data).encode()).decode(), "messageId": uuid.uuid4().hex}
    return {"content-type": "application/json"}, json.dumps({"message": message, "subscription": "s"}).encode()


MALFORMED: list[tuple[dict[str, str], bytes]] = [
    ({"content-type": "application/json"}, b"{not json"),
    ({"content-type": "application/json"}, b'{"no": "message"}'),
    ({"ce-specversion": "1.0", "ce-type": FINALIZED}, b"{}"),  # no id/source
    ({"content-type": "application/cloudevents+json"}, b'{"specversion": "1.0"}'),
    ({"content-type": "application/json"},
     json.dumps({"message": {"attributes": {"eventType": "OBJECT_FINALIZE", "bucketId": "landing",
                                            "objectId": "../escape.tif", "objectGeneration": "1"}}}).encode()),
    ({"content-type": "application/json"},
     json.dumps({"message": {"attributes": {"eventType": "OBJECT_FINALIZE", "bucketId": "landing",
                                            "objectId": "x.tif", "objectGeneration": "one"}}}).encode()),
]


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def measure(n_events: int = 1000, *, dup_fraction: float = 0.3, malformed_fraction: float = 0.05,
            concurrency: int = 16, seed: int = 0, workdir: str | None = None) -> dict[str, Any]:
    import uvicorn

    rng = random.Random(seed)
    tmp = tempfile.TemporaryDirectory(prefix="trigger-bench-") if workdir is None else None
    root = Path(workdir or tmp.name)  # type: ignore[union-attr]
    landing = root / "buckets" / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    n_malformed = round(n_events * malformed_fraction)
    n_dup = round(n_events * dup_fraction)
    n_unique = n_events - n_malformed - n_dup
    kinds = ("binary", "structured", "pubsub")
    unique = []
    for i in range(n_unique):
        name = f"spot/s{i:05d}.tif"
        (landing / "spot").mkdir(exist_ok=True)
        _scene(landing / name, seed=i)
        unique.append(_event(kinds[i % 3], "landing", name, landing / name) + (name,))
    requests_plan: list[tuple[str, dict[str, str], bytes, str | None]] = [("valid", h, b, n) for h, b, n in unique]
    for _ in range(n_dup):  # a re-delivery, possibly through another channel
        i = rng.randrange(n_unique)
        headers, body = _event(rng.choice(kinds), "landing", unique[i][2], landing / unique[i][2])
        requests_plan.append(("duplicate", headers, body, unique[i][2]))
    for i in range(n_malformed):
        headers, body = MALFORMED[i % len(MALFORMED)]
        requests_plan.append(("malformed", headers, body, None))
    rng.shuffle(requests_plan)

    settings = TriggerSettings(auth="none", storage_root=f"file://{root / 'buckets'}",
                               output=str(root / "out"), ledger=f"sqlite:///{root}/ledger.db")
    ledger = SqliteLedger(root / "ledger.db")
    launcher = CountingLauncher()
    app = create_app(settings, ledger=ledger, launcher=launcher,
                     admitter=Admitter.for_products(["landcover"]))
    service = app.state.service
    server_latency: list[float] = []
    handle = service.handle

    def timed_handle(arrival: Any) -> Any:
        started = time.perf_counter()
        try:
            return handle(arrival)
        finally:
            server_latency.append(time.perf_counter() - started)

    service.handle = timed_handle
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                           access_log=False, limit_concurrency=1000))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}/"
    local = threading.local()

    def send(item: tuple[str, dict[str, str], bytes, str | None]) -> tuple[str, int, float, str | None]:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        kind, headers, body, name = item
        started = time.perf_counter()
        response = session.post(url, headers=headers, data=body, timeout=30)
        return kind, response.status_code, time.perf_counter() - started, name

    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(send, requests_plan))
        elapsed = time.perf_counter() - started
        jobs = ledger.list(limit=100_000)
    finally:
        server.should_exit = True
        thread.join(10)
        ledger.close()
        if tmp is not None:
            tmp.cleanup()

    per_key = Counter(j.key for j in jobs)
    submissions = Counter(j.key for j in launcher.submitted)
    expected_keys = {f"file://{landing}/{name}#1" for _, _, name in unique}
    request_latency = [r[2] for r in results]
    return {
        "n_events": len(results),
        "unique_objects": n_unique,
        "duplicates_sent": n_dup,
        "malformed_sent": n_malformed,
        "status_by_kind": {k: dict(Counter(s for kind, s, _, _ in results if kind == k))
                           for k in ("valid", "duplicate", "malformed")},
        "server_errors": sum(1 for _, s, _, _ in results if s >= 500),
        "malformed_4xx": sum(1 for kind, s, _, _ in results if kind == "malformed" and 400 <= s < 500),
        "jobs": len(jobs),
        "submissions": sum(submissions.values()),
        "keys_with_one_job": sum(1 for k in expected_keys if per_key[k] == 1 and submissions[k] == 1),
        "keys_without_job": sorted(expected_keys - set(per_key))[:5],
        "keys_with_extra_jobs": sorted(k for k, c in per_key.items() if c > 1)[:5],
        "elapsed_s": round(elapsed, 3),
        "events_per_s": round(len(results) / elapsed, 1),
        "admission_p50_ms": round(1000 * _percentile(server_latency, 50), 2),
        "admission_p99_ms": round(1000 * _percentile(server_latency, 99), 2),
        "request_p50_ms": round(1000 * _percentile(request_latency, 50), 2),
        "request_p99_ms": round(1000 * _percentile(request_latency, 99), 2),
        "concurrency": concurrency,
    }


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 1000), indent=2))
