"""``tessera watch`` over local folders: same admission and ledger as POST /, restart-safe."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from trigger_util import RecordingLauncher, write_scene

from services.trigger import watch
from services.trigger.admission import Admitter
from services.trigger.ledger import SqliteLedger
from services.trigger.service import TriggerService
from services.trigger.watch import Watcher


@pytest.fixture(scope="module")
def admitter() -> Admitter:
    return Admitter.for_products(["landcover"])


def _service(tmp_path: Path, admitter: Admitter, launcher: RecordingLauncher) -> TriggerService:
    return TriggerService(SqliteLedger(tmp_path / "ledger.db"), launcher, admitter)


def test_watch_folder_once_restart_and_new_mtime(tmp_path: Path, admitter: Admitter) -> None:
    inbox = tmp_path / "inbox"
    a = write_scene(inbox / "a.tif")
    write_scene(inbox / "sub" / "B.TIF")
    (inbox / "notes.txt").write_text("not a scene")
    write_scene(tmp_path / "inbox" / "out" / "landcover" / "x" / "classes.tif")  # our own output
    launcher = RecordingLauncher()
    watcher = Watcher(f"file://{inbox}", _service(tmp_path, admitter, launcher), settle_s=0,
                      exclude=[f"file://{inbox}/out"])
    first = watcher.poll_once()
    assert sorted((Path(arr.url).name, o.status) for arr, o in first) == [("B.TIF", "accepted"), ("a.tif", "accepted")]
    arrival = next(arr for arr, _ in first if arr.url.endswith("a.tif"))
    assert arrival.url == f"file://{a}" and arrival.generation == str(a.stat().st_mtime_ns)
    assert watcher.poll_once() == []  # seen in this process: not even a ledger read
    restarted = Watcher(f"file://{inbox}", _service(tmp_path, admitter, launcher), settle_s=0,
                        exclude=[f"file://{inbox}/out"])
    assert [o.status for _, o in restarted.poll_once()] == ["duplicate", "duplicate"]
    stamp = a.stat().st_mtime_ns - 5_000_000_000
    os.utime(a, ns=(stamp, stamp))  # rewritten in place: a new version
    again = restarted.poll_once()
    assert [(arr.generation, o.status) for arr, o in again] == [(str(stamp), "accepted")]
    assert len(launcher.submitted) == 3


def test_watch_settle_skips_files_being_written(tmp_path: Path, admitter: Admitter) -> None:
    write_scene(tmp_path / "in" / "fresh.tif")
    launcher = RecordingLauncher()
    watcher = Watcher(f"file://{tmp_path}/in", _service(tmp_path, admitter, launcher), settle_s=60)
    assert watcher.poll_once() == [] and launcher.submitted == []


def test_watch_cli_once_quarantines_and_exits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inbox = tmp_path / "inbox"
    write_scene(inbox / "nocrs.tif", crs=None)
    argv = [f"file://{inbox}", "--once", "--settle", "0", "--output", str(tmp_path / "out"),
            "--ledger", f"sqlite:///{tmp_path}/w.db"]
    assert watch.main(argv) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["status"] == "quarantined" and "CRS" in line["reason"]
    assert watch.main(argv) == 0 and capsys.readouterr().out == ""  # restart: already in the ledger
    assert SqliteLedger(tmp_path / "w.db").counts()["quarantined"] == 1
