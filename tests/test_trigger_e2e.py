"""End to end: Eventarc events -> the trigger -> a real `tessera infer` child -> a STAC Item.

The slowest trigger test (two real DirectRunner jobs with TensorFlow, about a minute each
on 2 busy cores); marked ``e2e``.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from trigger_util import eventarc_binary, object_resource, write_scene

from services.trigger.app import create_app
from services.trigger.config import TriggerSettings

pytestmark = pytest.mark.e2e


def _wait(client: TestClient, job_id: str, timeout_s: float = 400) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout_s} s")


def test_duplicates_restart_and_new_generation(tmp_path: Path) -> None:
    landing = tmp_path / "buckets" / "landing"
    scene = write_scene(landing / "Scene_01.tif", size=48, seed=1)
    settings = TriggerSettings(auth="none", launcher="local", max_workers=2, products=["landcover"],
                               storage_root=f"file://{tmp_path / 'buckets'}", output=str(tmp_path / "out"),
                               ledger=f"sqlite:///{tmp_path}/ledger.db")
    gen1 = eventarc_binary(object_resource("landing", "Scene_01.tif", 1, path=scene))

    with TestClient(create_app(settings)) as client, ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda _: client.post("/", headers=gen1[0], content=gen1[1]), range(6)))
        assert sorted(r.status_code for r in responses) == [200] * 5 + [202]
        (job_id,) = {j for r in responses for j in r.json()["jobs"]}
        job = _wait(client, job_id)
        assert job["state"] == "succeeded", job["error"]
    item_path = tmp_path / "out" / "landcover" / "scene_01" / "scene_01.json"
    assert job["output"] == str(item_path)
    item = json.loads(item_path.read_text())
    assert item["type"] == "Feature" and item["properties"]["tessera:source"]["size"] == scene.stat().st_size

    with TestClient(create_app(settings)) as client:  # restarted over the same ledger
        again = client.post("/", headers=gen1[0], content=gen1[1])
        assert again.status_code == 200 and again.json()["jobs"] == [job_id]
        write_scene(scene, size=56, seed=2)  # the object is replaced: generation 2
        gen2 = eventarc_binary(object_resource("landing", "Scene_01.tif", 2, path=scene))
        accepted = client.post("/", headers=gen2[0], content=gen2[1])
        assert accepted.status_code == 202, accepted.text
        (job2,) = accepted.json()["jobs"]
        assert job2 != job_id
        assert _wait(client, job2)["state"] == "succeeded"
        assert len(client.get("/jobs").json()["jobs"]) == 2
    item = json.loads(item_path.read_text())
    assert item["properties"]["tessera:source"]["size"] == scene.stat().st_size
    assert item["properties"]["proj:shape"] == [56, 56]
