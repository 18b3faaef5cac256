"""Benchmark inputs: synthetic 4-band uint16 scenes and a light model bundle, cached.

Scenes are written block by block (one 512 x 512 window at a time), tiled and
deflate-compressed like a delivered SPOT 6/7 product, so a 16k x 16k scene (2 GiB of
pixels) never sits in memory and stays small on disk. Generated files are cached under
``bench-output/scenes`` and reused when the same size and pattern are asked again.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

BLOCK = 512
BANDS = 4


def _textured_block(row: int, col: int, size: int, seed: int) -> np.ndarray:
    """Smooth structure plus sensor-like noise: compresses like real imagery (~1.5x)."""
    rng = np.random.default_rng((seed, row, col))
    yy, xx = np.mgrid[row : row + size, col : col + size].astype(np.float32)
    out = np.empty((BANDS, size, size), dtype=np.uint16)
    for b in range(BANDS):
        field = 1000 + 600 * np.sin(xx / (37 + 11 * b)) * np.cos(yy / (53 + 7 * b))
        field += rng.normal(0, 60, (size, size)).astype(np.float32)
        out[b] = np.clip(field, 1, 4000).astype(np.uint16)
    return out


class _CheapPattern:
    """One precomputed textured block shifted per block: near-free to make, so the
    16k/32k memory scenes are generated at disk speed."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:BLOCK, 0:BLOCK].astype(np.float32)
        self.base = np.empty((BANDS, BLOCK, BLOCK), dtype=np.uint16)
        for b in range(BANDS):
            field = 1000 + 600 * np.sin(xx / (37 + 11 * b)) * np.cos(yy / (53 + 7 * b))
            self.base[b] = field.astype(np.uint16) + rng.integers(0, 4, (BLOCK, BLOCK), dtype=np.uint16)

    def block(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        shift = np.uint16((row // BLOCK * 7 + col // BLOCK * 13) % 200)
        return self.base[:, :height, :width] + shift


def scene_path(cache: Path, side: int, kind: str) -> Path:
    return cache / f"bench-{kind}-{side}.tif"


def make_scene(cache: Path, side: int, *, kind: str = "textured", seed: int = 0) -> Path:
    """A ``side x side`` 4-band uint16 GeoTIFF (tiled 512, deflate); cached by name.

    ``kind="textured"`` computes every block (throughput scenes: realistic decode
    cost); ``kind="cheap"`` reuses one block (memory scenes up to 32k a side).
    """
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    path = scene_path(cache, side, kind)
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.getpid()}.tif")
    profile = {
        "driver": "GTiff", "width": side, "height": side, "count": BANDS, "dtype": "uint16",
        "crs": "EPSG:2154", "transform": from_origin(650000, 6860000, 1.5, 1.5), "nodata": 0,
        "tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK, "compress": "deflate",
        "zlevel": 1, "interleave": "pixel", "bigtiff": "IF_SAFER",
    }
    cheap = _CheapPattern(seed) if kind == "cheap" else None
    if cheap is not None:
        profile["predictor"] = 2  # smooth pattern: differencing makes it ~5x smaller
    with rasterio.Env(GDAL_CACHEMAX=64 * 2**20), rasterio.open(tmp, "w", **profile) as ds:
        for row in range(0, side, BLOCK):
            for col in range(0, side, BLOCK):
                h, w = min(BLOCK, side - row), min(BLOCK, side - col)
                if cheap is not None:
                    block = cheap.block(row, col, h, w)
                else:
                    block = _textured_block(row, col, BLOCK, seed)[:, :h, :w]
                ds.write(block, window=Window(col, row, w, h))
    os.replace(tmp, path)
    return path


def light_bundle(cache: Path) -> str:
    """A near-free bundle for the memory runs: normalisation, one 3x3 convolution
    dilated by 11 (receptive field 23, like the reference network) and a softmax.

    Peak RSS against scene size is a property of the pipeline (what it buffers,
    caches and materialises), not of the model's FLOPs; this keeps a 16k x 16k run
    within ``--quick``'s budget. Exported once and cached.
    """
    path = cache / "light-bundle"
    if (path / "assets" / "tessera.json").exists():
        return str(path)
    import keras
    from keras import layers

    from models.export import export_bundle
    from models.receptive_field import measure_receptive_field
    from models.reference import DEFAULT_BANDS, DEFAULT_CLASSES

    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, BANDS), name="image")
    x = layers.Normalization(mean=[1000.0] * BANDS, variance=[500.0**2] * BANDS, name="normalise")(inputs)
    outputs = layers.Conv2D(len(DEFAULT_CLASSES), 3, dilation_rate=11, padding="same",
                            activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="bench_light")
    alignment = 4
    rf = measure_receptive_field(lambda a: np.asarray(model(a, training=False)), BANDS, alignment)
    meta = {
        "name": "tessera-bench-light",
        "architecture": "dilated-conv-1",
        "bands": DEFAULT_BANDS,
        "classes": DEFAULT_CLASSES,
        "receptive_field": rf,
        "alignment": alignment,
        "tile_size": 512,
        "normalisation": {"mean": [1000.0] * BANDS, "std": [500.0] * BANDS, "source": "fixed (benchmark)"},
        "trained_on": {"note": "untrained: memory benchmark only"},
    }
    export_bundle(model, meta, str(path))
    return str(path)
