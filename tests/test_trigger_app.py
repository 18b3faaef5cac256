"""The HTTP service: one job per URL#generation, quarantine, status codes, /jobs, /metrics."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from trigger_util import (
    RecordingLauncher,
    eventarc_binary,
    eventarc_structured,
    object_resource,
    pubsub_push,
    write_scene,
)

from services.trigger.admission import Admitter
from services.trigger.app import create_app, settings_from_argv, status_for
from services.trigger.config import TriggerSettings
from services.trigger.errors import StorageUnavailableError
from services.trigger.ledger import SqliteLedger
from transforms.core.errors import ConfigError


@pytest.fixture(scope="module")
def admitter() -> Admitter:
    return Admitter.for_products(["landcover"], max_pixels=1_000_000)


@pytest.fixture()
def env(tmp_path: Path, admitter: Admitter):
    root = tmp_path / "buckets"
    write_scene(root / "landing" / "a.tif")
    write_scene(root / "landing" / "b.tif")
    settings = TriggerSettings(auth="none", storage_root=f"file://{root}", output=str(tmp_path / "out"),
                               ledger=f"sqlite:///{tmp_path}/ledger.db")
    launcher = RecordingLauncher()

    def client(**kw) -> TestClient:
        ledger = SqliteLedger(tmp_path / "ledger.db")
        return TestClient(create_app(settings, ledger=ledger, launcher=kw.get("launcher", launcher),
                                     admitter=admitter))

    return root / "landing", launcher, client


def _metric(client: TestClient, name: str) -> float:
    """One sample by its exact name and labels (as exposed), 0 if absent."""
    for line in client.get("/metrics").text.splitlines():
        if line.rsplit(" ", 1)[0] == name:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_each_shape_accepted_once_and_duplicates_refused(env) -> None:
    landing, launcher, client = env
    data = object_resource("landing", "a.tif", 11, path=landing / "a.tif")
    with client() as c:
        first = c.post("/", headers=(h := eventarc_binary(data))[0], content=h[1])
        assert first.status_code == 202, first.text
        assert first.json()["status"] == "accepted" and len(first.json()["jobs"]) == 1
        for make in (eventarc_binary, eventarc_structured, pubsub_push):
            headers, body = make(data)
            again = c.post("/", headers=headers, content=body)
            assert again.status_code == 200 and again.json()["status"] == "duplicate"
            assert again.json()["jobs"] == first.json()["jobs"]
        newer = c.post("/", headers=(h := pubsub_push({**data, "generation": "12"}))[0], content=h[1])
        assert newer.status_code == 202 and newer.json()["jobs"] != first.json()["jobs"]
        assert len(launcher.submitted) == 2
        job = c.get(f"/jobs/{first.json()['jobs'][0]}").json()
        assert job["state"] == "succeeded" and job["url"] == f"file://{landing}/a.tif"
        assert job["key"] == f"file://{landing}/a.tif#11" and job["product"] == "landcover"
        assert job["source"]["size"] == (landing / "a.tif").stat().st_size
        assert _metric(c, "tessera_trigger_duplicates_total") == 3
        assert _metric(c, 'tessera_trigger_events_received_total{kind="pubsub"}') == 2
        assert _metric(c, 'tessera_trigger_jobs{state="succeeded"}') == 2
        assert _metric(c, "tessera_trigger_admission_seconds_count") == 5


def test_concurrent_duplicates_make_one_job(env) -> None:
    landing, launcher, client = env
    events = [eventarc_binary(object_resource("landing", n, 5, path=landing / n)) for n in ("a.tif", "b.tif")]
    with client() as c, ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: c.post("/", headers=events[i % 2][0], content=events[i % 2][1]).status_code,
                              range(40)))
    assert sorted(set(codes)) == [200, 202] and codes.count(202) == 2
    assert sorted(k for k, _ in launcher.claimed_keys()) == [f"file://{landing}/a.tif#5", f"file://{landing}/b.tif#5"]


def test_restart_does_not_resubmit(env) -> None:
    landing, launcher, client = env
    headers, body = pubsub_push(object_resource("landing", "a.tif", 9, path=landing / "a.tif"))
    with client() as c:
        assert c.post("/", headers=headers, content=body).status_code == 202
    with client() as c:  # a new app over the same ledger file
        again = c.post("/", headers=headers, content=body)
        assert again.json()["status"] == "duplicate"
        assert len(c.get("/jobs").json()["jobs"]) == 1
    assert len(launcher.submitted) == 1


def test_quarantine_is_2xx_recorded_and_counted(env) -> None:
    landing, launcher, client = env
    (landing / "junk.tif").write_bytes(b"not a tiff at all")
    bad_crc = object_resource("landing", "a.tif", 3, path=landing / "a.tif",
                              crc32c=base64.b64encode(b"\1\2\3\4").decode())
    with client() as c:
        for data in (object_resource("landing", "junk.tif", 1, path=landing / "junk.tif"), bad_crc,
                     object_resource("landing", "missing.tif", 1)):
            response = c.post("/", headers=(h := eventarc_binary(data))[0], content=h[1])
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "quarantined" and response.json()["reason"]
        again = c.post("/", headers=(h := eventarc_binary(bad_crc))[0], content=h[1])
        assert again.json()["status"] == "duplicate"
        jobs = c.get("/jobs", params={"state": "quarantined"}).json()["jobs"]
        assert len(jobs) == 3 and all(j["error"] for j in jobs)
        assert {j["error"].split(":")[0] for j in jobs} == {"header", "crc32c", "missing"}
        assert _metric(c, 'tessera_trigger_quarantined_total{reason="crc32c"}') == 1
    assert launcher.submitted == []


def test_malformed_and_oversized_are_4xx_and_change_nothing(env) -> None:
    _, launcher, client = env
    with client() as c:
        for headers, body in [({"content-type": "application/json"}, b"{"), ({}, b'{"x": 1}'),
                              ({"ce-specversion": "1.0"}, b"{}"),
                              eventarc_binary(object_resource("landing", "../x.tif", 1)),
                              pubsub_push(object_resource("landing", "a.tif", "nope"))]:
            response = c.post("/", headers=headers, content=body)
            assert response.status_code == 400, response.text
            assert response.json()["error"] == "MalformedEventError"
        assert c.post("/", content=b"x" * (2 << 20)).status_code == 413
        assert c.get("/jobs").json() == {"jobs": []}
        assert c.get("/jobs/nope").status_code == 404
        assert c.get("/jobs", params={"state": "bogus"}).status_code == 422
        assert _metric(c, 'tessera_trigger_requests_rejected_total{status="400"}') == 5
        ignored = c.post("/", headers=(h := pubsub_push(object_resource("landing", "a.tif", 1),
                                                        event_type="OBJECT_DELETE"))[0], content=h[1])
        assert ignored.status_code == 200 and ignored.json()["status"] == "ignored"
        assert c.get("/healthz").json()["status"] == "ok"
    assert launcher.submitted == []


def test_two_apps_have_separate_registries(env) -> None:
    _, _, client = env
    with client() as a, client() as b:
        assert "tessera_trigger_events_received" in a.get("/metrics").text
        assert "tessera_trigger_events_received" in b.get("/metrics").text


def test_status_mapping_and_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert status_for(StorageUnavailableError("x")) == 503
    assert status_for(RuntimeError("bug")) == 500
    settings, _ = settings_from_argv(["--auth", "none", "--products", "landcover", "landsat-rgb",
                                      "--max-workers", "3", "--experiments=use_runner_v2"])
    assert settings.products == ["landcover", "landsat-rgb"] and settings.max_workers == 3
    assert settings.beam_args == ["--experiments=use_runner_v2"]
    with pytest.raises(ConfigError, match="--audience"):
        settings_from_argv(["--auth", "oidc"])
    with pytest.raises(ValidationError):
        TriggerSettings(auth="none", launcher="spark")
    monkeypatch.setenv("TESSERA_PRODUCTS", "landcover, landsat-rgb")
    monkeypatch.setenv("TESSERA_AUTH", "oidc")
    monkeypatch.setenv("TESSERA_AUDIENCE", "https://trigger.example")
    monkeypatch.setenv("TESSERA_ALLOWED_SA", "a@p.iam.gserviceaccount.com,b@p.iam.gserviceaccount.com")
    from_env = TriggerSettings()
    assert from_env.products == ["landcover", "landsat-rgb"] and len(from_env.allowed_sa) == 2
    assert settings_from_argv(["--port", "9000"])[0].port == 9000  # flags over env
