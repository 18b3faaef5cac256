"""Read windows: each tile task becomes the model's mirrored input array."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
from apache_beam import pvalue
from apache_beam.metrics import Metrics

from transforms.core.errors import SceneError
from transforms.core.grid import expand_window
from transforms.core.rasterio_io import SceneReader
from transforms.plan import FAILED, TileTask


@dataclass(frozen=True)
class TileInput:
    """The key that travels with a tile through the model: the task and its core's
    validity mask (cropping needs it; it never crosses a shuffle)."""

    task: TileTask
    valid: np.ndarray

    def __hash__(self) -> int:
        return hash(self.task)


class _ReadTiles(beam.DoFn):
    """Reads the in-scene window covering a tile's mirrored input, once per tile.

    Open datasets are kept per worker (a few scenes at a time): opening a remote
    GeoTIFF costs round trips. Tiles with no valid pixel are counted and emitted as
    empty records so the finaliser knows they were not lost.
    """

    MAX_OPEN = 4

    def __init__(self) -> None:
        self.read_tiles = Metrics.counter("tessera", "tiles_read")
        self.skipped = Metrics.counter("tessera", "tiles_skipped_nodata")
        self.failed = Metrics.counter("tessera", "tiles_failed")
        self.pixels = Metrics.counter("tessera", "pixels_read")
        self.latency = Metrics.distribution("tessera", "read_ms")

    def setup(self) -> None:
        self._readers: OrderedDict[str, SceneReader] = OrderedDict()

    def _reader(self, task: TileTask) -> SceneReader:
        job = task.job
        reader = self._readers.pop(job.scene.url, None)
        if reader is None:
            reader = SceneReader(job.scene.url, list(job.bands), job.scale)
        self._readers[job.scene.url] = reader
        while len(self._readers) > self.MAX_OPEN:
            self._readers.popitem(last=False)[1].close()
        return reader

    def process(self, task: TileTask) -> Iterator[object]:
        grid, index = task.job.grid, task.index
        start = time.perf_counter()
        try:
            values, mask = self._reader(task).read(grid.read_window(index))
        except SceneError as exc:
            self.failed.inc()
            yield pvalue.TaggedOutput(FAILED, (task.job.key, task.job.scene.url, str(exc)))
            return
        self.latency.update(int((time.perf_counter() - start) * 1000))
        core = grid.core(index)
        window = grid.read_window(index)
        r0 = int(core.row_off - window.row_off)
        c0 = int(core.col_off - window.col_off)
        valid = mask[r0 : r0 + int(core.height), c0 : c0 + int(core.width)]
        if not valid.any():
            self.skipped.inc()
            yield pvalue.TaggedOutput(SKIPPED, task)
            return
        self.read_tiles.inc()
        self.pixels.inc(int(core.height * core.width))
        image = expand_window(values, grid, index)
        yield TileInput(task, np.ascontiguousarray(valid)), np.ascontiguousarray(np.moveaxis(image, 0, -1))

    def teardown(self) -> None:
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()


SKIPPED = "skipped"


@dataclass
class ReadTiles(beam.PTransform):
    """``TileTask`` -> ``(TileInput, float32 (T+2h, T+2h, C))``; outputs ``skipped``
    (tasks with no valid pixel) and ``failed`` (``(job key, url, reason)``)."""

    def expand(self, tasks: beam.PCollection) -> pvalue.DoOutputsTuple:
        return tasks | beam.ParDo(_ReadTiles()).with_outputs(SKIPPED, FAILED, main="tiles")
