"""Read windows: each tile task becomes the model's mirrored input array."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam import pvalue, typehints
from apache_beam.metrics import Metrics

from transforms.background import InOrder, windowed
from transforms.core.buffers import MODEL_INPUTS
from transforms.core.errors import SceneError
from transforms.core.grid import fill_model_input
from transforms.core.rasterio_io import SceneReader
from transforms.core.stitch import decode_array, encode_array
from transforms.plan import FAILED, TileTask


@dataclass(frozen=True)
class TileInput:
    """The key that travels with a tile through the model: the task and its core's
    validity mask (cropping needs it; it never crosses a shuffle)."""

    task: TileTask
    valid: np.ndarray

    def __hash__(self) -> int:
        return hash(self.task)


class NdarrayCoder(beam.coders.Coder):  # type: ignore[misc]
    """numpy arrays as ``.npy`` bytes, with a size estimate that does not encode.

    Beam estimates the size of the first elements of every PCollection with its coder;
    for ``Any`` that means pickling each 100+ MB tile in full (see the README's notes).
    Tile arrays never cross a shuffle here, but a runner that does move them gets a
    compact, pickle-free encoding.
    """

    def encode(self, value: np.ndarray) -> bytes:
        return encode_array(value)

    def decode(self, encoded: bytes) -> np.ndarray:
        return decode_array(encoded)

    def estimate_size(self, value: np.ndarray) -> int:
        return int(np.asarray(value).nbytes) + 128

    def is_deterministic(self) -> bool:
        return True

    def to_type_hint(self) -> Any:
        return np.ndarray


beam.coders.registry.register_coder(np.ndarray, NdarrayCoder)
# (TileInput | TileTask, array): what flows between reading, the model and cropping
TILE_ARRAY = typehints.Tuple[Any, np.ndarray]


@dataclass
class _Read:
    """What the reading thread found for one task; counters are updated by the caller
    (Beam's metrics live on the thread that runs the DoFn)."""

    task: TileTask
    outcome: str  # "tile", SKIPPED or FAILED
    value: Any
    seconds: float = 0.0
    pixels: int = 0


def read_tile(reader: SceneReader, task: TileTask) -> _Read:
    """The tile's ``(T+2h, T+2h, C)`` float32 model input and its core's validity."""
    grid, index = task.job.grid, task.index
    start = time.perf_counter()
    window = grid.read_window(index)
    scratch: list[np.ndarray] = []

    def take(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        scratch.append(MODEL_INPUTS.take(shape, dtype))
        return scratch[-1]

    try:
        values, mask = reader.read(window, raw=True, scratch=take)
        seconds = time.perf_counter() - start
        core = grid.core(index)
        r0 = int(core.row_off - window.row_off)
        c0 = int(core.col_off - window.col_off)
        valid = np.ascontiguousarray(mask[r0 : r0 + int(core.height), c0 : c0 + int(core.width)])
        if not valid.any():
            return _Read(task, SKIPPED, task, seconds)
        side = grid.padded_size
        # aligned (the model takes it without a copy) and reused once the model has answered
        out = fill_model_input(values, grid, index, MODEL_INPUTS.take((side, side, values.shape[-1])))
    except SceneError as exc:
        return _Read(task, FAILED, (task.job.key, task.job.scene.url, str(exc)))
    finally:  # the raw pixels are in the model input now (or not needed)
        for array in scratch:
            MODEL_INPUTS.give_back(array)
    if task.job.scale != 1.0:
        out *= np.float32(task.job.scale)
    value = (TileInput(task, valid), out)
    return _Read(task, "tile", value, seconds, int(core.height * core.width))


class _ReadTiles(beam.DoFn):
    """Reads the in-scene window covering a tile's mirrored input, once per tile.

    Reads run one tile ahead on a low-priority background thread: while the model
    works on tile k (downstream, in the same fused stage), GDAL fetches and
    decompresses the next tile with the GIL released. Open datasets are kept on that
    thread (a few scenes at a time): opening a remote GeoTIFF costs round trips. Tiles
    with no valid pixel are counted and emitted as empty records so the finaliser
    knows they were not lost.
    """

    MAX_OPEN = 4
    READ_AHEAD = 1

    def __init__(self) -> None:
        self.read_tiles = Metrics.counter("tessera", "tiles_read")
        self.skipped = Metrics.counter("tessera", "tiles_skipped_nodata")
        self.failed = Metrics.counter("tessera", "tiles_failed")
        self.pixels = Metrics.counter("tessera", "pixels_read")
        self.latency = Metrics.distribution("tessera", "read_ms")

    def setup(self) -> None:
        self._readers: OrderedDict[str, SceneReader] = OrderedDict()
        self._reads = InOrder("tessera-read", ahead=self.READ_AHEAD)

    def _reader(self, task: TileTask) -> SceneReader:  # on the reading thread only
        job = task.job
        reader = self._readers.pop(job.scene.url, None)
        if reader is None:
            reader = SceneReader(job.scene.url, list(job.bands), job.scale)
        self._readers[job.scene.url] = reader
        while len(self._readers) > self.MAX_OPEN:
            self._readers.popitem(last=False)[1].close()
        return reader

    def _read(self, task: TileTask) -> _Read:
        try:
            reader = self._reader(task)
        except SceneError as exc:
            return _Read(task, FAILED, (task.job.key, task.job.scene.url, str(exc)))
        return read_tile(reader, task)

    def start_bundle(self) -> None:
        self._reads.clear()

    def process(
        self, task: TileTask, timestamp: Any = beam.DoFn.TimestampParam, window: Any = beam.DoFn.WindowParam
    ) -> Iterator[object]:
        self._reads.submit(self._read, task, timestamp=timestamp, window=window)
        yield from self._emit_ready(self._reads.ready())

    def finish_bundle(self) -> Iterator[object]:
        yield from self._emit_ready(self._reads.drain())

    def _emit_ready(self, reads: Iterator[tuple[_Read, Any, Any]]) -> Iterator[object]:
        for read, timestamp, window in reads:
            for out in self._emit(read):
                yield windowed(out, timestamp, window)

    def _emit(self, read: _Read) -> Iterator[object]:
        if read.outcome == FAILED:
            self.failed.inc()
            yield pvalue.TaggedOutput(FAILED, read.value)
            return
        self.latency.update(int(read.seconds * 1000))
        if read.outcome == SKIPPED:
            self.skipped.inc()
            yield pvalue.TaggedOutput(SKIPPED, read.value)
            return
        self.read_tiles.inc()
        self.pixels.inc(read.pixels)
        yield read.value

    def teardown(self) -> None:
        self._reads.shutdown()
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()


SKIPPED = "skipped"


@dataclass
class ReadTiles(beam.PTransform):
    """``TileTask`` -> ``(TileInput, float32 (T+2h, T+2h, C))``; outputs ``skipped``
    (tasks with no valid pixel) and ``failed`` (``(job key, url, reason)``)."""

    def expand(self, tasks: beam.PCollection) -> pvalue.DoOutputsTuple:
        return tasks | beam.ParDo(_ReadTiles()).with_output_types(TILE_ARRAY).with_outputs(
            SKIPPED, FAILED, main="tiles"
        )
