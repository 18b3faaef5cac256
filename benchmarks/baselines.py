"""What users write today, each end to end from the scene to a GeoTIFF of classes.

Written fairly: one model load, the same tile size, halo and batch size as tessera,
a float32 batch buffer filled in place, one open dataset, block-aligned output.

- :func:`hand_loop`: a rasterio window loop. Each tile's input is its core grown by
  the halo, mirrored across the scene edges (``numpy.pad(mode="reflect")``
  semantics, computed here independently of tessera's grid module), so its classes
  equal tessera's: the test suite checks it.
- :func:`overlap_average`: Raster Vision's stitching: chips of ``T`` at stride
  ``T/2`` (50 % overlap) inside the scene, probabilities summed into a whole-scene
  buffer and divided by the hit count, then argmax.
- :func:`beam_runinference`: Beam's stock ``RunInference`` with
  ``TFModelHandlerNumpy``: Create windows -> read -> RunInference -> classes ->
  collect -> write.

Each returns ``{"seconds", "pixels", "output"}``; ``seconds`` includes loading the model.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

INPUT, OUTPUT, SIGNATURE = "image", "probabilities", "serving_default"


def mirror(start: int, stop: int, size: int) -> np.ndarray:
    """Indices ``start..stop-1`` folded into ``[0, size)`` like ``numpy.pad(mode="reflect")``."""
    idx = np.arange(start, stop)
    if size == 1:
        return np.zeros_like(idx)
    period = 2 * (size - 1)
    idx = np.abs(idx) % period
    return np.where(idx >= size, period - idx, idx)


def read_padded(src: Any, row: int, col: int, tile: int, halo: int, out: np.ndarray) -> None:
    """Fill ``out`` (``(T+2h, T+2h, C)`` float32) with the tile's mirrored input."""
    from rasterio.windows import Window

    rows = mirror(row - halo, row + tile + halo, src.height)
    cols = mirror(col - halo, col + tile + halo, src.width)
    r0, c0 = int(rows.min()), int(cols.min())
    window = Window(c0, r0, int(cols.max()) - c0 + 1, int(rows.max()) - r0 + 1)
    data = src.read(window=window)  # (C, h, w) in the scene's dtype
    inside = (rows[0] == r0 and np.all(np.diff(rows) == 1)) and (cols[0] == c0 and np.all(np.diff(cols) == 1))
    if inside:
        out[...] = np.moveaxis(data, 0, -1)
    else:
        out[...] = np.moveaxis(data[:, (rows - r0)[:, None], (cols - c0)[None, :]], 0, -1)


def load(model_path: str) -> Any:
    import tensorflow as tf

    loaded = tf.saved_model.load(model_path)
    fn = loaded.signatures[SIGNATURE]

    def predict(batch: np.ndarray) -> np.ndarray:
        return fn(**{INPUT: tf.constant(batch)})[OUTPUT].numpy()

    predict.keep = loaded  # type: ignore[attr-defined]  # the variables live as long as fn
    return predict


def _out_profile(src: Any) -> dict[str, Any]:
    return {
        "driver": "GTiff", "width": src.width, "height": src.height, "count": 1, "dtype": "uint8",
        "crs": src.crs, "transform": src.transform, "nodata": 255, "tiled": True,
        "blockxsize": 512, "blockysize": 512, "compress": "deflate",
    }


def _tiles(height: int, width: int, tile: int) -> list[tuple[int, int]]:
    return [(r, c) for r in range(0, height, tile) for c in range(0, width, tile)]


def hand_loop(scene: str, model_path: str, output: str, *, tile: int, halo: int, batch_size: int) -> dict[str, Any]:
    import rasterio
    from rasterio.windows import Window

    start = time.perf_counter()
    predict = load(model_path)
    with rasterio.open(scene) as src, rasterio.open(output, "w", **_out_profile(src)) as dst:
        side = tile + 2 * halo
        tiles = _tiles(src.height, src.width, tile)
        batch = np.empty((batch_size, side, side, src.count), dtype=np.float32)
        for i in range(0, len(tiles), batch_size):
            chunk = tiles[i : i + batch_size]
            for k, (r, c) in enumerate(chunk):
                read_padded(src, r, c, tile, halo, batch[k])
            probs = predict(batch[: len(chunk)])
            for k, (r, c) in enumerate(chunk):
                h, w = min(tile, src.height - r), min(tile, src.width - c)
                classes = probs[k, halo : halo + h, halo : halo + w].argmax(-1).astype(np.uint8)
                dst.write(classes, 1, window=Window(c, r, w, h))
        pixels = src.height * src.width
    return {"seconds": time.perf_counter() - start, "pixels": pixels, "output": output}


def _chip_starts(size: int, chip: int, stride: int) -> list[int]:
    if size <= chip:
        return [0]
    starts = list(range(0, size - chip + 1, stride))
    if starts[-1] != size - chip:
        starts.append(size - chip)
    return starts


def overlap_average(scene: str, model_path: str, output: str, *, tile: int, batch_size: int) -> dict[str, Any]:
    """Raster Vision's sliding window: chips of ``tile`` at stride ``tile/2``, averaged."""
    import rasterio
    from rasterio.windows import Window

    start = time.perf_counter()
    predict = load(model_path)
    with rasterio.open(scene) as src:
        height, width = src.height, src.width
        chip_h, chip_w = min(tile, height), min(tile, width)
        stride = max(1, tile // 2)
        chips = [(r, c) for r in _chip_starts(height, chip_h, stride) for c in _chip_starts(width, chip_w, stride)]
        scores: np.ndarray | None = None
        hits = np.zeros((height, width), dtype=np.uint8)
        batch = np.empty((batch_size, chip_h, chip_w, src.count), dtype=np.float32)
        for i in range(0, len(chips), batch_size):
            chunk = chips[i : i + batch_size]
            for k, (r, c) in enumerate(chunk):
                batch[k] = np.moveaxis(src.read(window=Window(c, r, chip_w, chip_h)), 0, -1)
            probs = predict(batch[: len(chunk)])
            if scores is None:
                scores = np.zeros((height, width, probs.shape[-1]), dtype=np.float32)
            for k, (r, c) in enumerate(chunk):
                scores[r : r + chip_h, c : c + chip_w] += probs[k]
                hits[r : r + chip_h, c : c + chip_w] += 1
        assert scores is not None
        scores /= hits[..., None]
        with rasterio.open(output, "w", **_out_profile(src)) as dst:
            dst.write(scores.argmax(-1).astype(np.uint8), 1)
    return {"seconds": time.perf_counter() - start, "pixels": height * width, "output": output,
            "model_calls_pixels": len(chips) * chip_h * chip_w}


HUB_NOTE: list[str] = []


def import_tf_handler() -> Any:
    """``TFModelHandlerNumpy``. Beam's module imports ``tensorflow_hub`` at the top
    only for ``hub.resolve(uri)`` in its Keras loader (unused here); tensorflow_hub
    0.16 needs tf_keras and ``pkg_resources`` (gone from setuptools >= 81). When it
    cannot be imported, a stand-in with ``resolve`` is registered and the fact is
    recorded in ``HUB_NOTE`` for the report."""
    import sys
    import types

    try:
        import tensorflow_hub  # noqa: F401
    except Exception as exc:  # ImportError, or tensorflow_hub's own version check
        stub = types.ModuleType("tensorflow_hub")
        stub.resolve = lambda uri: uri  # type: ignore[attr-defined]
        sys.modules["tensorflow_hub"] = stub
        HUB_NOTE[:] = [f"tensorflow_hub not importable ({type(exc).__name__}: {exc}); "
                       "a stand-in for hub.resolve was registered (that code path is unused here)"]
    from apache_beam.ml.inference.tensorflow_inference import TFModelHandlerNumpy

    return TFModelHandlerNumpy


def beam_runinference(
    scene: str, model_path: str, output: str, *, tile: int, halo: int, batch_size: int,
    beam_args: list[str] | None = None,
) -> dict[str, Any]:
    """Stock ``RunInference`` + ``TFModelHandlerNumpy`` over the same padded tiles.

    ``TFModelHandlerNumpy`` loads models with ``tf.keras.models.load_model``, which in
    Keras 3 no longer reads SavedModels; the documented way out is what users do:
    subclass ``load_model`` and pass an ``inference_fn`` that calls the signature.
    """
    import apache_beam as beam
    import rasterio
    import tensorflow as tf
    from apache_beam.ml.inference import utils
    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

    from beam_pipelines.runner import make_pipeline, pipeline_options

    TFModelHandlerNumpy = import_tf_handler()

    def signature_fn(model: Any, batch: Any, inference_args: Any, model_id: Any = None) -> Any:
        out = model.signatures[SIGNATURE](**{INPUT: tf.constant(np.stack(batch))})[OUTPUT].numpy()
        return utils._convert_to_result(batch, out, model_id)

    class SavedModelHandler(TFModelHandlerNumpy):
        def load_model(self) -> Any:
            return tf.saved_model.load(self._model_uri)

    class ReadTile(beam.DoFn):
        def setup(self) -> None:
            self.src = rasterio.open(scene)

        def process(self, rc: tuple[int, int]) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
            side = tile + 2 * halo
            buf = np.empty((side, side, self.src.count), dtype=np.float32)
            read_padded(self.src, rc[0], rc[1], tile, halo, buf)
            yield rc, buf

        def teardown(self) -> None:
            self.src.close()

    def classes(element: tuple[tuple[int, int], Any]) -> tuple[tuple[int, int], np.ndarray]:
        (r, c), result = element
        probs = np.asarray(result.inference)
        return (r, c), probs[halo : halo + tile, halo : halo + tile].argmax(-1).astype(np.uint8)

    def write(tiles: list[tuple[tuple[int, int], np.ndarray]]) -> int:
        from rasterio.windows import Window

        with rasterio.open(scene) as src, rasterio.open(output, "w", **_out_profile(src)) as dst:
            for (r, c), cls in tiles:
                h, w = min(tile, src.height - r), min(tile, src.width - c)
                dst.write(cls[:h, :w], 1, window=Window(c, r, w, h))
        return len(tiles)

    start = time.perf_counter()
    with rasterio.open(scene) as src:
        height, width = src.height, src.width
    handler = SavedModelHandler(model_path, inference_fn=signature_fn, min_batch_size=1, max_batch_size=batch_size)
    # the runner tessera gets (Beam's DirectRunner minus its Prism attempt): the
    # comparison is RunInference's batching and copies against tessera's, not runners
    with make_pipeline(pipeline_options(beam_args)) as p:
        _ = (
            p
            | "Windows" >> beam.Create(_tiles(height, width, tile))
            | "Read" >> beam.ParDo(ReadTile())
            | "RunInference" >> RunInference(KeyedModelHandler(handler))
            | "Classes" >> beam.Map(classes)
            | "Collect" >> beam.combiners.ToList()
            | "Write" >> beam.Map(write)
        )
    return {"seconds": time.perf_counter() - start, "pixels": height * width, "output": output}
