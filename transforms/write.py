"""Where tiles are put back: crop halos, stage tile results, finalise each scene."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import fsspec
import numpy as np
from apache_beam import typehints
from apache_beam.metrics import Metrics
from apache_beam.utils.windowed_value import WindowedValue

from transforms.background import InOrder, windowed
from transforms.core.errors import TesseraError
from transforms.core.outputs import (
    SceneJob,
    TileRecord,
    finalise_scene,
    remove_tree,
    update_catalog,
)
from transforms.core.postprocess import value_counts
from transforms.core.stitch import crop_prediction, encode_array
from transforms.plan import TileTask
from transforms.read import TileInput


def crop_halo(element: tuple[TileInput, np.ndarray]) -> tuple[TileTask, np.ndarray]:
    key, planes = element
    return key.task, crop_prediction(np.asarray(planes), key.valid, key.task.job.grid, key.task.index)


def stage_tile(task: TileTask, planes: np.ndarray) -> tuple[TileTask, TileRecord, int]:
    """Write one cropped tile's planes to its staging object; its task, record and size."""
    data = encode_array(planes)
    with fsspec.open(task.job.tile_url(task.index), "wb", auto_mkdir=True) as f:
        f.write(data)
    return task, TileRecord(task.index, True, value_counts(planes[0])), len(data)


class _WriteTiles(beam.DoFn):
    """Stages each cropped tile under the job's deterministic temp prefix, so a
    retried or replayed bundle overwrites the same object with the same bytes.

    Staging runs on a low-priority background thread, so the model starts on the next
    tile instead of waiting for the encode, the class counts and the write (~0.1 s a
    3072^2 tile). A tile's record is emitted only once its write has finished, at the
    latest when the bundle finishes; a failed write fails the bundle, which Beam retries.
    """

    MAX_PENDING = 2

    def __init__(self, progress: bool) -> None:
        self.progress = progress
        self.written = Metrics.counter("tessera", "tiles_written")
        self.bytes = Metrics.counter("tessera", "bytes_staged")

    def setup(self) -> None:
        self._done: dict[str, int] = {}
        self._writes = InOrder("tessera-write", ahead=self.MAX_PENDING)

    def start_bundle(self) -> None:
        self._writes.clear()

    def process(
        self,
        element: tuple[TileTask, np.ndarray],
        timestamp: Any = beam.DoFn.TimestampParam,
        window: Any = beam.DoFn.WindowParam,
    ) -> Iterator[WindowedValue]:
        task, planes = element
        self._writes.submit(stage_tile, task, planes, timestamp=timestamp, window=window)
        yield from self._emit(self._writes.ready(eager=True))

    def finish_bundle(self) -> Iterator[WindowedValue]:
        yield from self._emit(self._writes.drain())

    def _emit(self, staged: Iterator[tuple[tuple[TileTask, TileRecord, int], Any, Any]]) -> Iterator[WindowedValue]:
        for (task, record, nbytes), timestamp, window in staged:
            self.written.inc()
            self.bytes.inc(nbytes)
            if self.progress:
                self._report(task)
            yield windowed((task.job.key, record), timestamp, window)

    def teardown(self) -> None:
        self._writes.shutdown()

    def _report(self, task: TileTask) -> None:
        key = task.job.key
        self._done[key] = self._done.get(key, 0) + 1
        done, total = self._done[key], task.job.grid.count
        step = max(1, total // 20)
        if done == total or done % step == 0:
            print(f"  {key}: {done}/{total} tiles", file=sys.stderr, flush=True)


@dataclass
class WriteTiles(beam.PTransform):
    """``(TileTask, planes)`` -> ``(job key, TileRecord)`` (small records only)."""

    progress: bool = False

    def expand(self, tiles: beam.PCollection) -> beam.PCollection:
        return tiles | beam.ParDo(_WriteTiles(self.progress)).with_output_types(typehints.Tuple[str, TileRecord])


@dataclass(frozen=True)
class SceneResult:
    key: str
    url: str
    ok: bool
    message: str
    item_url: str | None = None


class _Finalise(beam.DoFn):
    def __init__(self, metadata: dict[str, Any], postprocess: Any) -> None:
        self.metadata = metadata
        self.postprocess = postprocess
        self.ok = Metrics.counter("tessera", "scenes_succeeded")
        self.failed = Metrics.counter("tessera", "scenes_failed")
        self.failures = Metrics.string_set("tessera", "failed_scenes")
        self.items = Metrics.string_set("tessera", "items")

    def process(self, element: tuple[str, dict[str, list[Any]]]) -> Iterator[SceneResult]:
        key, groups = element
        jobs: list[SceneJob] = groups["jobs"]
        problems: list[tuple[str, str]] = groups["failed"]
        if not jobs:  # rejected before planning
            for url, reason in problems[:1]:
                yield self._fail(key, url, reason)
            return
        job = jobs[0]
        if problems:
            reasons = sorted({reason for _, reason in problems})
            more = f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
            yield self._fail(key, job.scene.url, reasons[0] + more)
            return
        records = [r for r in groups["tiles"]]
        try:
            post = self.postprocess(job) if self.postprocess else None
            item_url = finalise_scene(job, records, self.metadata, postprocess=post)
        except TesseraError as exc:
            yield self._fail(key, job.scene.url, str(exc))
            return
        self.ok.inc()
        self.items.add(item_url)
        yield SceneResult(key, job.scene.url, True, "ok", item_url)

    def _fail(self, key: str, url: str, reason: str) -> SceneResult:
        self.failed.inc()
        self.failures.add(f"{key}\t{url}\t{reason}")
        return SceneResult(key, url, False, reason)


@dataclass
class FinaliseScenes(beam.PTransform):
    """Group the small per-tile records by scene; assemble COGs + Item per scene.

    A scene is published only if every tile is accounted for and none failed.
    """

    metadata: dict[str, Any]
    postprocess: Any = None

    def expand(self, inputs: dict[str, beam.PCollection]) -> beam.PCollection:
        return (
            inputs
            | "ByScene" >> beam.CoGroupByKey()
            | "Publish" >> beam.ParDo(_Finalise(self.metadata, self.postprocess))
        )


@dataclass
class UpdateCatalog(beam.PTransform):
    """Once every scene is final, rebuild collections and ``catalog.json``, then drop
    the job's staging prefix. Staged tiles outlive the finalise step so that a retried
    or replayed finalise bundle still finds them."""

    output: str
    staging: str

    def expand(self, results: beam.PCollection) -> beam.PCollection:
        output, staging = self.output, self.staging

        def publish(_: None, grouped: Any) -> list[SceneResult]:
            outcomes = list(grouped)
            if any(r.ok for r in outcomes):
                update_catalog(output)
            remove_tree(staging)
            return outcomes

        # one group of every scene's result (each planned scene yields exactly one);
        # a keyed GroupByKey is 3 steps where ToList's CombineGlobally is 10, and each
        # step costs Beam ~20 ms of start-up per run
        return (
            results
            | "Key" >> beam.Map(lambda r: (None, r))
            | "All" >> beam.GroupByKey()
            | "Catalog" >> beam.MapTuple(publish)
        )
