"""``tessera watch URL``: poll any fsspec URL and feed new objects to the trigger's path.

Each listed object becomes an ``Arrival`` (generation: the GCS generation, or the file's
mtime in nanoseconds), then goes through the same admission, ledger claim and launcher
as ``POST /``; the ledger makes a restarted watcher skip what it already submitted.
Local files younger than ``--settle`` seconds are left for the next poll (they may still
be being written; GCS objects appear only once finalised).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem
from pydantic import ValidationError

from services.trigger.admission import Admitter
from services.trigger.events import Arrival
from services.trigger.launchers import LocalLauncher
from services.trigger.ledger import open_ledger
from services.trigger.service import Outcome, TriggerService
from transforms.core.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_PATTERNS = ("*.tif", "*.tiff", "*.jp2")


def _generation(fs: Any, path: str, info: dict[str, Any]) -> str:
    if info.get("generation") is not None:
        return str(info["generation"])
    if isinstance(fs, LocalFileSystem):
        return str(os.stat(path).st_mtime_ns)
    mtime: Any = info.get("mtime") or info.get("updated") or info.get("LastModified") or info.get("created")
    if hasattr(mtime, "timestamp"):
        mtime = mtime.timestamp()
    if isinstance(mtime, int | float):
        return str(int(mtime * 1e9))
    raise ConfigError(f"{fs.unstrip_protocol(path)}: this filesystem reports neither a "
                      "generation nor a modification time; tessera watch cannot tell versions apart")


def _age_s(info: dict[str, Any]) -> float:
    mtime: Any = info.get("mtime")
    if hasattr(mtime, "timestamp"):
        mtime = mtime.timestamp()
    return time.time() - float(mtime) if isinstance(mtime, int | float) else float("inf")


class Watcher:
    def __init__(self, url: str, service: TriggerService, *, patterns: Sequence[str] = DEFAULT_PATTERNS,
                 settle_s: float = 2.0, exclude: Sequence[str] = ()) -> None:
        self.url = url
        self.service = service
        self.patterns = [p.lower() for p in patterns]
        self.settle_s = settle_s
        self.fs, self.root = fsspec.core.url_to_fs(url)
        self.exclude = [fsspec.core.url_to_fs(e)[1].rstrip("/") + "/" for e in exclude]
        self._seen: set[str] = set()  # keys handled by this process: skip without a ledger read

    def scan(self) -> list[Arrival]:
        """Objects under the URL that match the patterns and have settled."""
        self.fs.invalidate_cache()
        listing = self.fs.find(self.root, detail=True)
        local = isinstance(self.fs, LocalFileSystem)
        arrivals = []
        for path, info in sorted(listing.items()):
            name = path.rsplit("/", 1)[-1].lower()
            if info.get("type") != "file" or not any(fnmatch.fnmatch(name, p) for p in self.patterns):
                continue
            if any(path.startswith(e) for e in self.exclude):
                continue
            if local and _age_s(info) < self.settle_s:
                continue
            bucket, _, obj = path.partition("/") if not local else ("", "", path)
            arrivals.append(Arrival(
                bucket=bucket, name=obj, generation=_generation(self.fs, path, info),
                size=int(info.get("size") or 0), crc32c=info.get("crc32c"),
                url=self.fs.unstrip_protocol(path), kind="watch",
            ))
        return arrivals

    def poll_once(self) -> list[tuple[Arrival, Outcome]]:
        results = []
        for arrival in self.scan():
            if arrival.key in self._seen:
                continue
            self.service.metrics.events.labels("watch").inc()
            outcome = self.service.handle(arrival)
            self._seen.add(arrival.key)
            results.append((arrival, outcome))
        return results

    def run(self, interval_s: float, *, once: bool = False, stop: threading.Event | None = None,
            report: Any = None) -> None:
        stop = stop or threading.Event()
        while not stop.is_set():
            for arrival, outcome in self.poll_once():
                if report:
                    report(arrival, outcome)
            if once:
                return
            stop.wait(interval_s)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tessera watch", description=__doc__.split("\n")[0],
                                epilog="Unknown --options are passed to every job as Beam options.")
    p.add_argument("url", metavar="URL", help="folder or bucket prefix to watch (file://, gs://, ...)")
    p.add_argument("--interval", type=float, default=10.0, metavar="S", help="seconds between polls")
    p.add_argument("--once", action="store_true", help="one poll, wait for its jobs, exit")
    p.add_argument("--output", default="tessera-output", help="where jobs write")
    p.add_argument("--ledger", default="sqlite:///tessera-trigger.db")
    p.add_argument("--products", nargs="+", default=["landcover"], metavar="P")
    p.add_argument("--max-workers", type=int, default=2)
    p.add_argument("--max-pixels", type=int)
    p.add_argument("--pattern", nargs="+", default=list(DEFAULT_PATTERNS), metavar="GLOB")
    p.add_argument("--settle", type=float, default=2.0, metavar="S",
                   help="skip local files modified less than S seconds ago")
    p.add_argument("--log-level", default=os.environ.get("TESSERA_LOG_LEVEL", "WARNING"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args, beam_args = _parser().parse_known_args(list(sys.argv[1:] if argv is None else argv))
    logging.getLogger("services.trigger").setLevel(args.log_level.upper())
    if os.environ.get("STORAGE_EMULATOR_HOST"):  # gcsfs' gRPC probe hangs on emulators
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    output = args.output if "://" in args.output else os.path.abspath(args.output)
    try:
        admitter = (Admitter.for_products(args.products, args.max_pixels) if args.max_pixels
                    else Admitter.for_products(args.products))
    except ValidationError as exc:
        raise ConfigError(f"invalid product: {exc}") from None
    launcher = LocalLauncher(output, max_workers=args.max_workers, beam_args=beam_args)
    service = TriggerService(open_ledger(args.ledger), launcher, admitter)
    service.resume()
    watcher = Watcher(args.url, service, patterns=args.pattern, settle_s=args.settle, exclude=[output])
    submitted: list[str] = []

    def report(arrival: Arrival, outcome: Outcome) -> None:
        if outcome.status == "duplicate":  # e.g. everything already there after a restart
            return
        print(json.dumps({"url": arrival.url, "generation": arrival.generation, **outcome.to_dict()}),
              flush=True)
        if outcome.status == "accepted":
            submitted.extend(j.id for j in outcome.jobs)

    try:
        watcher.run(args.interval, once=args.once, report=report)
    finally:
        launcher.close(timeout_s=None if args.once else 10.0)  # --once: wait for its jobs
    jobs = [service.ledger.get(i) for i in submitted]
    failed = [j for j in jobs if j is not None and j.state == "failed"]
    for job in failed:
        print(f"tessera watch: job {job.id} for {job.url} failed: {job.error}", file=sys.stderr)
    service.ledger.close()
    return 1 if failed else 0
