"""The SQLite ledger: the claim is exactly-once across threads, processes and restarts."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from services.trigger.ledger import Job, SqliteLedger, job_id_for, open_ledger
from transforms.core.errors import ConfigError


def _claim_in_process(args: tuple[str, str]) -> bool:
    path, key = args
    return SqliteLedger(path).claim(Job.new(key, key.split("#")[0], "landcover"))


def test_claim_once_then_duplicate(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.db")
    job = Job.new("file:///a.tif#1", "file:///a.tif", "landcover")
    assert ledger.claim(job)
    assert not ledger.claim(Job.new("file:///a.tif#1", "file:///a.tif", "landcover"))
    assert ledger.claim(Job.new("file:///a.tif#1", "file:///a.tif", "water"))  # another product
    assert ledger.claim(Job.new("file:///a.tif#2", "file:///a.tif", "landcover"))  # new generation
    assert [j.product for j in ledger.find("file:///a.tif#1")] == ["landcover", "water"]
    assert ledger.get(job.id) == job
    assert job.id == job_id_for("file:///a.tif#1", "landcover")


def test_concurrent_claims_threads(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.db")
    keys = [f"file:///s{i % 10}.tif#1" for i in range(200)]
    with ThreadPoolExecutor(16) as pool:
        won = list(pool.map(lambda k: ledger.claim(Job.new(k, k[:-2], "landcover")), keys))
    assert sum(won) == 10
    assert ledger.counts()["queued"] == 10


def test_concurrent_claims_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "l.db")
    SqliteLedger(path)  # schema
    ctx = multiprocessing.get_context("fork")  # spawn re-imports rasterio: 7 s
    with ctx.Pool(3) as pool:
        won = pool.map(_claim_in_process, [(path, "file:///same.tif#7")] * 12)
    assert sum(won) == 1


def test_restart_keeps_claims_and_updates(tmp_path: Path) -> None:
    first = SqliteLedger(tmp_path / "l.db")
    job = Job.new("gs://b/a.tif#3", "gs://b/a.tif", "landcover")
    assert first.claim(job)
    first.update(job.id, state="failed", error="boom")
    first.close()
    again = open_ledger(f"sqlite:///{tmp_path}/l.db")
    assert not again.claim(job)
    got = again.get(job.id)
    assert got is not None and (got.state, got.error) == ("failed", "boom")
    assert [j.id for j in again.list(state="failed")] == [job.id]
    assert again.counts() == {"queued": 0, "running": 0, "succeeded": 0, "failed": 1, "quarantined": 0}
    with pytest.raises(ValueError, match="unknown job state"):
        again.update(job.id, state="exploded")
    with pytest.raises(ValueError, match="cannot update"):
        again.update(job.id, key="other")
    with pytest.raises(KeyError):
        again.update("nope", state="failed")


def test_open_ledger_urls(tmp_path: Path) -> None:
    assert isinstance(open_ledger(str(tmp_path / "x.db")), SqliteLedger)
    with pytest.raises(ConfigError, match="sqlite:///"):
        open_ledger("postgres://db")
