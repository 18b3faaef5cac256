"""The trigger against a real GCS JSON API (fake-gcs-server on loopback): the marker-object
ledger, admission of gs:// objects and the gs:// watcher."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from gcs_server import gcs_filesystem, run_fake_gcs, use_emulator
from trigger_util import RecordingLauncher, write_scene

from services.trigger.admission import Admitted, Admitter, Rejected
from services.trigger.events import Arrival
from services.trigger.ledger import GcsLedger, Job, open_ledger
from services.trigger.service import TriggerService
from services.trigger.watch import Watcher


@pytest.fixture(scope="module")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with run_fake_gcs(tmp_path_factory.mktemp("gcs")) as endpoint, use_emulator(endpoint):
        fs = gcs_filesystem(endpoint)
        for bucket in ("state", "landing"):
            fs.mkdir(bucket)
        yield fs


def test_marker_create_is_exclusive(gcs: Any) -> None:
    gcs.pipe_file("state/raw/marker.json", b"{}", mode="create")
    with pytest.raises(FileExistsError):  # HTTP 412 from ifGenerationMatch=0
        gcs.pipe_file("state/raw/marker.json", b"{}", mode="create")


def test_gcs_ledger_claims_once(gcs: Any) -> None:
    ledger = open_ledger("gs://state/ledger-a")
    assert isinstance(ledger, GcsLedger)
    job = Job.new("gs://landing/a.tif#1", "gs://landing/a.tif", "landcover")
    assert ledger.claim(job)
    assert not ledger.claim(Job.new("gs://landing/a.tif#1", "gs://landing/a.tif", "landcover"))
    assert ledger.claim(Job.new("gs://landing/a.tif#2", "gs://landing/a.tif", "landcover"))
    ledger.update(job.id, state="succeeded", output="gs://out/x.json")
    again = GcsLedger("gs://state/ledger-a")  # a restarted replica
    assert again.get(job.id).state == "succeeded" and not again.claim(job)
    assert [j.id for j in again.find("gs://landing/a.tif#1")] == [job.id]
    assert again.counts()["succeeded"] == 1 and again.counts()["queued"] == 1
    assert len(again.list()) == 2 and [j.id for j in again.list(state="succeeded")] == [job.id]


def test_gcs_ledger_concurrent_claims(gcs: Any) -> None:
    ledgers = [GcsLedger("gs://state/ledger-b") for _ in range(4)]
    keys = [f"gs://landing/s{i % 5}.tif#9" for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda ik: ledgers[ik[0] % 4].claim(Job.new(ik[1], ik[1][:-2], "landcover")),
                            enumerate(keys)))
    assert sum(won) == 5


def test_gcs_ledger_own_retried_create_is_a_win(gcs: Any) -> None:
    """gcsfs retries a create whose response was lost; the 412 it then gets is our own write."""
    ledger = GcsLedger("gs://state/ledger-c")
    real_pipe = ledger.fs.pipe_file

    def pipe_then_lose_response(path: str, data: bytes, **kw: Any) -> None:
        real_pipe(path, data, **kw)
        raise FileExistsError(path)  # what the retry would have seen

    ledger.fs = type("Fs", (), {"pipe_file": staticmethod(pipe_then_lose_response),
                                "cat_file": staticmethod(gcs.cat_file)})()
    assert ledger.claim(Job.new("gs://landing/r.tif#1", "gs://landing/r.tif", "landcover"))
    assert not ledger.claim(Job.new("gs://landing/r.tif#1", "gs://landing/r.tif", "landcover"))


@pytest.fixture(scope="module")
def admitter() -> Admitter:
    return Admitter.for_products(["landcover"])


def _upload(gcs: Any, tmp_path: Path, name: str, **kw: Any) -> dict[str, Any]:
    local = write_scene(tmp_path / Path(name).name, **kw)
    gcs.put_file(str(local), f"landing/{name}")
    gcs.invalidate_cache()
    return gcs.info(f"landing/{name}")


def test_admission_of_gs_objects(gcs: Any, tmp_path: Path, admitter: Admitter) -> None:
    info = _upload(gcs, tmp_path, "adm/a.tif")
    arrival = Arrival("landing", "adm/a.tif", str(info["generation"]), info["size"], info["crc32c"],
                      "gs://landing/adm/a.tif", "cloudevent-binary")
    result = admitter.admit(arrival)
    assert isinstance(result, Admitted), result
    assert result.info.identity["generation"] == str(info["generation"])
    stale = admitter.admit(Arrival(**{**arrival.__dict__, "generation": "1"}))
    assert isinstance(stale, Rejected) and stale.code == "stale"
    wrong = admitter.admit(Arrival(**{**arrival.__dict__, "crc32c": "AAAAAA=="}))
    assert isinstance(wrong, Rejected) and wrong.code == "crc32c"


def test_watch_gs_prefix_submits_once_across_restarts(gcs: Any, tmp_path: Path, admitter: Admitter) -> None:
    _upload(gcs, tmp_path, "w/one.tif")
    _upload(gcs, tmp_path, "w/two.tif", bands=3)  # too few bands for landcover: quarantined
    gcs.pipe_file("landing/w/readme.txt", b"hello")
    launcher = RecordingLauncher()
    service = TriggerService(GcsLedger("gs://state/ledger-watch"), launcher, admitter)
    results = Watcher("gs://landing/w", service).poll_once()
    assert sorted((a.url, o.status) for a, o in results) == [
        ("gs://landing/w/one.tif", "accepted"), ("gs://landing/w/two.tif", "quarantined")]
    assert Watcher("gs://landing/w", service).poll_once()[0][1].status == "duplicate"
    restarted = TriggerService(GcsLedger("gs://state/ledger-watch"), launcher, admitter)
    assert all(o.status == "duplicate" for _, o in Watcher("gs://landing/w", restarted).poll_once())
    info = _upload(gcs, tmp_path, "w/one.tif", seed=3)  # a new generation of the same name
    new = Watcher("gs://landing/w", restarted).poll_once()
    assert [(a.generation, o.status) for a, o in new if o.status != "duplicate"] == [
        (str(info["generation"]), "accepted")]
    assert len(launcher.submitted) == 2
    stored = json.loads(gcs.cat_file(f"state/ledger-watch/jobs/{launcher.submitted[0].id}.json"))
    assert stored["state"] == "succeeded" and stored["claim_token"]
